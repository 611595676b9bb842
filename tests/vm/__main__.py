"""``python3 -m tests.vm``: run the real-kernel tests in a QEMU guest and print a summary.

    python3 -m tests.vm                         # tests/test_real_kernel_*.py on the real kernel
    python3 -m tests.vm -- -k dma               # pytest options (after --) with the default files
    python3 -m tests.vm tests/test_real_kernel_smoke.py::test_irq_info
    python3 -m tests.vm --cmd -- uname -a       # any command in the guest (cwd: the current folder)

Kernel: ``PYVFIO_VM_KERNEL`` (+ ``PYVFIO_VM_MODULES``) when set, else Debian's stock 6.12 (downloaded once).
Exit status: 0 when the guest command passed (or the lane was skipped because QEMU cannot be installed,
with the reason printed), 1 when it failed, 2 when the VM itself failed (hang, panic, QEMU abort, setup).
Run from the repository root (``tests`` is a namespace package found through the current folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .harness import REPO, default_test_files, pytest_argv, run_in_vm


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
    opts = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[vm-lane {time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    t0 = time.monotonic()
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
    if result.status == "passed":
        return 0
    if result.status == "failed" and opts.quiet:
        print("\n".join(result.output.splitlines()[-80:]))
    return 1 if result.status == "failed" else 2


if __name__ == "__main__":
    sys.exit(main())
