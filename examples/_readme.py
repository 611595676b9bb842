"""Regenerate the index table of ``examples/README.md``: ioctl -> example -> results -> tests.

    python3 examples/_readme.py            # rewrite the table in README.md
    python3 examples/_readme.py --check    # exit 1 if README.md is out of date

For each ioctl of vfio.h and iommufd.h (``pyvfio.uapi.*.IOCTLS``, header
order) the row holds: its example, what the example printed as its
``result:`` on the simulated kernel (run here, in this process), what it
printed on a real Linux 7.3.4 (read from ``_real_kernel_results.txt``, the
``examples-results.txt`` a VM-lane run of ``tests/test_real_kernel_examples.py``
leaves in its run folder), and the test files under ``tests/`` that name the
ioctl.  Everything between the two table markers in README.md is replaced.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from pyvfio.uapi import iommufd, vfio  # noqa: E402

BEGIN, END = "<!-- index -->", "<!-- /index -->"
SKIP_TESTS = {"test_examples.py", "test_real_kernel_examples.py"}
REAL_RESULTS = HERE / "_real_kernel_results.txt"


def short(result: str) -> str:
    """``result: kernel answered ENOTTY: ...`` -> ``answered ENOTTY``; ``result: ran (...)`` -> ``ran``."""
    m = re.match(r"result: (ran|kernel answered (E[A-Z0-9]+)|reference only|cannot run here)", result)
    if not m:
        return "?"
    if m.group(2):
        return f"answered {m.group(2)}"
    return m.group(1)


def sim_result(name: str) -> str:
    path = HERE / f"{name.lower()}.py"
    out = io.StringIO()
    argv, sys.argv = sys.argv, [str(path)]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit:
        pass
    finally:
        sys.argv = argv
    lines = [line for line in out.getvalue().splitlines() if line.startswith("result:")]
    return short(lines[-1]) if lines else "?"


def real_results() -> dict[str, str]:
    found: dict[str, str] = {}
    if REAL_RESULTS.exists():
        for line in REAL_RESULTS.read_text().splitlines():
            m = re.match(r"(\w+) \[(\w+)\]: (result: .*)", line)
            if m:
                found[m.group(1)] = short(m.group(3)) + (" (mtty)" if m.group(2) == "mtty" else "")
    return found


def tests_naming(name: str) -> list[str]:
    pattern = re.compile(rf"\b{name}\b")
    hits = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        if path.name in SKIP_TESTS or "vm" in path.relative_to(REPO / "tests").parts[:-1]:
            continue
        if pattern.search(path.read_text(errors="replace")):
            hits.append(str(path.relative_to(REPO)))
    return hits


def table() -> str:
    real = real_results()
    rows = ["| ioctl | example | simulated kernel | Linux 7.3.4 (VM lane) | tests |",
            "|---|---|---|---|---|"]
    counts: dict[str, int] = {}
    for d in (*vfio.IOCTLS, *iommufd.IOCTLS):
        sim = sim_result(d.name)
        counts[sim.split()[0]] = counts.get(sim.split()[0], 0) + 1
        tests = ", ".join(f"[{Path(t).name}](../{t})" for t in tests_naming(d.name)) or "--"
        rows.append(f"| `{d.name}` | [{d.name.lower()}.py]({d.name.lower()}.py) | {sim} | "
                    f"{real.get(d.name, 'not run')} | {tests} |")
    total = sum(counts.values())
    rows.append("")
    rows.append(f"On the simulated kernel: {counts.get('ran', 0)} of {total} run fully, "
                f"{counts.get('answered', 0)} are answered with an errno, "
                f"{counts.get('reference', 0)} are reference only.")
    return "\n".join(rows)


def main() -> int:
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + table() + "\n" + text[end:]
    if "--check" in sys.argv[1:]:
        if new != text:
            print("examples/README.md is out of date: run python3 examples/_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
