"""``python3 -m tests.vm``: run the real-kernel tests in a QEMU guest and print a summary.

    python3 -m tests.vm                         # tests/test_real_kernel_*.py on the real kernel
    python3 -m tests.vm -- -k dma               # pytest options (after --) with the default files
    python3 -m tests.vm tests/test_real_kernel_smoke.py::test_irq_info
    python3 -m tests.vm --cmd -- uname -a       # any command in the guest (cwd: the current folder)
    python3 -m tests.vm --differential          # the same files on the simulated kernel (host) first, then
                                                # a table of both outcomes per scenario; a disagreement fails

Differential mode: every scenario's outcome on ``pyvfio.sim`` and on the real kernel side by side.  The
errno level needs no separate column: the negative tests assert the exact errno (``e.value.errno ==
errno.EBUSY``) on whichever kernel runs them, so "passed" on both sides means the same errno on both.

Kernel: ``PYVFIO_VM_KERNEL`` (+ ``PYVFIO_VM_MODULES``) when set, else Debian's stock 6.12 (downloaded once).
Exit status: 0 when the guest command passed (or the lane was skipped because QEMU cannot be installed,
with the reason printed), 1 when it failed, 2 when the VM itself failed (hang, panic, QEMU abort, setup).
Run from the repository root (``tests`` is a namespace package found through the current folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .harness import (REPO, Differential, VmResult, compare_outcomes, default_test_files, junit_outcomes, pytest_argv,
                      run_host_tests, run_in_vm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.vm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("args", nargs="*", help="test files and pytest options (default: the real-kernel tests); "
                                                "with --cmd, the command")
    parser.add_argument("--cmd", action="store_true", help="run ARGS as a plain command instead of pytest")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before the guest is killed "
                                                                      "(default $PYVFIO_VM_TIMEOUT or 600)")
    parser.add_argument("--require", action="store_true", help="fail (exit 2) instead of skipping when QEMU "
                                                               "cannot be installed")
    parser.add_argument("--quiet", action="store_true", help="do not stream the guest's output")
    parser.add_argument("--differential", action="store_true",
                        help="also run the same tests on the simulated kernel here and compare per scenario: "
                             "any disagreement fails (exit 1)")
    opts = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[vm-lane {time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    t0 = time.monotonic()
    sim_junit, sim_rc, sim_output = Path(), 0, ""
    if opts.cmd and opts.differential:
        parser.error("--differential compares pytest runs; it does not combine with --cmd")
    if opts.cmd:
        if not opts.args:
            parser.error("--cmd needs a command")
        command = list(opts.args)
    else:
        # ARGS go to pytest as given; without a test path among them, the real-kernel files are added
        given = [a for a in opts.args if not a.startswith("-") and (REPO / a.split("::")[0]).exists()]
        files = [] if given else default_test_files()
        if not given and not files:
            print("VM lane: no real-kernel test files (tests/test_real_kernel_*.py)", file=sys.stderr)
            return 2
        command = pytest_argv(files, extra=list(opts.args))
        if opts.differential:
            sim_junit = Path(tempfile.mkdtemp(prefix="pyvfio-differential-")) / "junit-sim.xml"
            log(f"host pytest on the simulated kernel: {' '.join([*opts.args, *files])}")
            t_sim = time.monotonic()
            sim_rc, sim_output = run_host_tests(files, sim_junit, extra=list(opts.args))
            log(f"simulated kernel: pytest exit status {sim_rc} in {time.monotonic() - t_sim:.1f} s")
        log(f"guest pytest: {' '.join([*opts.args, *files])}")
    result = run_in_vm(command, cwd=REPO if not opts.cmd else Path.cwd(), timeout=opts.timeout,
                       echo=None if opts.quiet else echo, log=log)
    print()
    print(result.summary())
    if result.status == "error":
        if result.console_tail:
            print("--- tail of the guest console:")
            print(result.console_tail)
        if opts.quiet and result.output:
            print("--- tail of the guest command's output:")
            print("\n".join(result.output.splitlines()[-60:]))
    if result.status == "skipped":
        print(f"VM lane skipped: {result.reason}")
        return 2 if opts.require else 0
    if result.counts is not None:
        print(f"vm-lane: {result.counts.line()}")
    if opts.differential:
        return _differential(result, sim_junit, sim_rc, sim_output)
    if result.status == "passed":
        return 0
    if result.status == "failed" and opts.quiet:
        print("\n".join(result.output.splitlines()[-80:]))
    return 1 if result.status == "failed" else 2


def _differential(result: VmResult, sim_junit: Path, sim_rc: int, sim_output: str) -> int:
    """Print the per-scenario table and the summary line; 0 only when both kernels agree and nothing failed."""
    sim = junit_outcomes(sim_junit)
    out = result.out_dir
    real = junit_outcomes(out / "junit.xml") if out is not None else None
    if sim is None:
        print("differential: the simulated-kernel run left no JUnit XML; its output:")
        print("\n".join(sim_output.splitlines()[-40:]))
        return 2
    if real is None or out is None:
        print("differential: the guest run left no JUnit XML (see above)")
        return 2 if result.status != "failed" else 1
    diff = Differential(compare_outcomes(sim, real))
    shutil.copy(sim_junit, out / "junit-sim.xml")
    shutil.rmtree(sim_junit.parent, ignore_errors=True)
    (out / "differential.json").write_text(json.dumps(diff.to_json(), indent=2) + "\n")
    print()
    print("differential report: each scenario on the simulated kernel (host) and on the real kernel (guest)")
    print(diff.table())
    print()
    for row in diff.disagreements:
        print(f"DISAGREEMENT {row.scenario}: {row.why}")
        for side, o in (("simulated", row.sim), ("real", row.real)):
            if o is not None and o.message:
                print(f"    {side}: {o.status}: {o.message.splitlines()[0][:300]}")
    print("note: the errno rules are asserted exactly by the tests on both kernels (e.errno == errno.X), so "
          "'passed' on both sides means the same errno on both")
    print(f"differential: {diff.summary()}")
    if result.status == "error":
        return 2
    if sim_rc not in (0, 5) and not diff.failures:  # pytest itself failed (usage, collection) on the host
        print(f"differential: the simulated-kernel pytest exited {sim_rc}")
        return 1
    return 0 if diff.ok and result.status == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
