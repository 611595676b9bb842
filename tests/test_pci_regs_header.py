"""``pyvfio/uapi/pci_regs.py`` against ``linux/pci_regs.h``, compiled by gcc.

Every upper-case constant of the mirror becomes a ``printf`` of the C expression of the same name,
and every function-like macro is evaluated on a few inputs; the program runs and its output must
equal the Python values.  Against the 7.3 headers (``PYVFIO_UAPI_INCLUDE``, from
``tools/fetch-uapi-headers.sh``) every name must exist; against the distribution's older header the
names it lacks are listed and the rest must agree except where the header itself changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvfio.uapi import pci_regs

INCLUDE = os.environ.get("PYVFIO_UAPI_INCLUDE", "")
GCC = shutil.which("gcc")
SAMPLES = (0, 0x1, 0x0001_3010, 0x1481_000B, 0xFFFF_FFFF, 0x2000_0023, 0x7FF0_0000)


def constants() -> dict[str, int]:
    return {name: value for name, value in vars(pci_regs).items()
            if re.match(r"^(PCI|HT)_[A-Z0-9_]+$", name) and type(value) is int}


def expected() -> dict[str, str]:
    facts = {f"const {name}": str(value) for name, value in constants().items()}
    for fn in pci_regs.MACROS:
        for x in SAMPLES:
            facts[f"macro {fn.__name__}({x:#x})"] = str(fn(x))
    return facts


def compile_facts(header: Path, workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Run the generated program; names gcc rejects are dropped and returned."""
    assert GCC is not None
    stmts: list[tuple[str, str]] = []
    for name in constants():
        stmts.append((f"const {name}", f'printf("const {name} %lld\\n", (long long)({name}));'))
    for fn in pci_regs.MACROS:
        for x in SAMPLES:
            key = f"macro {fn.__name__}({x:#x})"
            stmts.append((key, f'printf("{key} %lld\\n", (long long)({fn.__name__}({x:#x}U)));'))
    missing: list[str] = []
    for _ in range(60):
        lines = ["#include <stdio.h>", f'#include "{header}"', "int main(void) {"]
        first = len(lines) + 1
        lines += [s for _, s in stmts] + ["return 0;", "}"]
        src = workdir / "regs.c"
        src.write_text("\n".join(lines) + "\n")
        exe = workdir / "regs"
        proc = subprocess.run([GCC, "-w", "-o", str(exe), str(src)], capture_output=True, text=True)
        if proc.returncode == 0:
            out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
            return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in out.splitlines()}, missing
        bad = sorted({int(n) - first for n in re.findall(r"regs\.c:(\d+):\d+: error", proc.stderr)
                      if 0 <= int(n) - first < len(stmts)}, reverse=True)
        if not bad:
            raise AssertionError("gcc failed outside the generated lines:\n" + proc.stderr[-3000:])
        for i in bad:
            missing.append(stmts.pop(i)[0])
    raise AssertionError("gave up after 60 compile rounds")


@pytest.mark.skipif(not INCLUDE or not Path(INCLUDE, "linux", "pci_regs.h").exists() or GCC is None,
                    reason="PYVFIO_UAPI_INCLUDE does not name the 7.3 UAPI headers (tools/fetch-uapi-headers.sh) "
                           "or gcc is missing")
def test_pci_regs_match_linux_7_3_header(tmp_path: Path) -> None:
    facts, missing = compile_facts(Path(INCLUDE, "linux", "pci_regs.h"), tmp_path)
    assert missing == []
    want = expected()
    diffs = [f"{k}: python {want[k]} != C {facts.get(k)}" for k in want if facts.get(k) != want[k]]
    assert diffs == []
    assert len(want) > 300


# Values the header itself changed since the distribution's older copy (Linux 6.1 on Debian 12).
CHANGED_SINCE_OLDER_HEADER = {"const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2", "const PCI_EXT_CAP_ID_MAX"}


@pytest.mark.skipif(GCC is None or not Path("/usr/include/linux/pci_regs.h").exists(),
                    reason="needs gcc and the system's /usr/include/linux/pci_regs.h")
def test_pci_regs_agree_with_older_system_header(tmp_path: Path) -> None:
    facts, missing = compile_facts(Path("/usr/include/linux/pci_regs.h"), tmp_path)
    want = expected()
    diffs = sorted(k for k in facts if facts[k] != want[k] and k not in CHANGED_SINCE_OLDER_HEADER)
    assert diffs == []
    # what an older header lacks is named (newer capability IDs), never silently skipped
    assert all(k in want for k in missing)
    assert len(facts) > 250
