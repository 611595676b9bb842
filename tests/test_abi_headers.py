"""ABI test, kind (b): a C program generated from the Python mirror, compiled against real headers.

Independent of the golden file: the facts come from gcc reading the kernel's own
``linux/vfio.h`` and ``linux/iommufd.h``.  ``PYVFIO_UAPI_INCLUDE`` names the
directory holding ``linux/vfio.h`` (``tools/fetch-uapi-headers.sh`` prints it;
``.ci/run`` sets it).  A symbol the headers lack is reported by name -- the
generator drops the lines gcc rejects and the test fails listing them -- so an
older header can never pass silently.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from abi_facts import MODULES, python_facts, struct_classes, struct_fields

INCLUDE = os.environ.get("PYVFIO_UAPI_INCLUDE", "")
GCC = shutil.which("gcc")

PRELUDE = """\
#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#ifndef __user
#define __user
#endif
#ifndef __counted_by
#define __counted_by(m)
#endif
"""


def kernel_constants() -> dict[str, object]:
    """Module-level kernel names with int or str values (ioctls included)."""
    out: dict[str, object] = {}
    for module in MODULES:
        for name, value in vars(module).items():
            if re.match(r"^(__)?(VFIO|IOMMU)", name) and type(value) in (int, str):
                out[name] = value
    return out


def c_program(headers: list[str]) -> tuple[list[str], dict[int, str]]:
    """Source lines and, per printf line, the fact key it produces (to map gcc errors back)."""
    lines = PRELUDE.splitlines() + [f'#include "{h}"' for h in headers] + ["int main(void) {"]
    owner: dict[int, str] = {}

    def emit(key: str, stmt: str) -> None:
        owner[len(lines) + 1] = key
        lines.append(stmt)

    for name, value in kernel_constants().items():
        if isinstance(value, str):
            emit(f"strconst {name}", f'printf("strconst {name} \\"%s\\"\\n", {name});')
        else:
            emit(f"const {name}", f'printf("const {name} %lld\\n", (long long)({name}));')
    for cls in struct_classes():
        kw = "union" if issubclass(cls, ctypes.Union) else "struct"
        t = f"{kw} {cls.__name__}"
        emit(f"struct {cls.__name__} sizeof", f'printf("struct {cls.__name__} sizeof %zu\\n", sizeof({t}));')
        emit(f"struct {cls.__name__} alignof", f'printf("struct {cls.__name__} alignof %zu\\n", _Alignof({t}));')
        for field, _attr, flex in struct_fields(cls):
            key = f"struct {cls.__name__}.{field} _"
            m = f"(({t} *)0)->{field}"
            if flex is None:
                emit(key, f'printf("struct {cls.__name__}.{field} _ offsetof %zu size %zu\\n", '
                          f"offsetof({t}, {field}), sizeof({m}));")
            else:
                emit(key, f'printf("struct {cls.__name__}.{field} _ offsetof %zu size 0 flex elemsize %zu\\n", '
                          f"offsetof({t}, {field}), sizeof({m}[0]));")
    lines += ["return 0;", "}"]
    return lines, owner


def compile_and_run(headers: list[str], workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Compile, dropping lines gcc rejects; return (facts printed, keys the headers lack)."""
    assert GCC is not None
    lines, owner = c_program(headers)
    missing: list[str] = []
    for _ in range(50):
        src = workdir / "abi.c"
        src.write_text("\n".join(lines) + "\n")
        exe = workdir / "abi"
        proc = subprocess.run([GCC, "-w", "-std=gnu11", "-o", str(exe), str(src)],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
            facts = {}
            for line in out.splitlines():
                parts = line.split(" ")
                if parts[0] == "struct" and parts[2] in ("sizeof", "alignof"):
                    facts[" ".join(parts[:3])] = " ".join(parts[3:])
                elif parts[0] == "struct":
                    facts[" ".join(parts[:3])] = " ".join(parts[3:])
                else:
                    facts[" ".join(parts[:2])] = " ".join(parts[2:])
            return facts, missing
        bad_lines = {int(n) for n in re.findall(r"abi\.c:(\d+):\d+: error", proc.stderr)}
        culprits = sorted(n for n in bad_lines if n in owner)
        if not culprits:
            raise AssertionError("gcc failed outside the generated facts:\n" + proc.stderr[-4000:])
        for n in culprits:
            missing.append(owner.pop(n))
            lines[n - 1] = "/* missing from these headers */"
    raise AssertionError("gave up after 50 compile rounds")


def expected_facts() -> dict[str, str]:
    facts = python_facts()
    for name, value in kernel_constants().items():
        if isinstance(value, str):
            facts[f"strconst {name}"] = f'"{value}"'
        else:
            facts[f"const {name}"] = str(value)
    for key in [k for k in facts if k.startswith("ioctl ")]:
        del facts[key]  # ioctl values are checked as constants of the same name
    return facts


needs_headers = pytest.mark.skipif(
    not INCLUDE or not Path(INCLUDE, "linux", "iommufd.h").exists() or GCC is None,
    reason="PYVFIO_UAPI_INCLUDE does not name a directory with linux/vfio.h and linux/iommufd.h "
           "(run tools/fetch-uapi-headers.sh and export what it prints), or gcc is missing",
)


@needs_headers
def test_mirror_matches_compiled_linux_7_3_headers(tmp_path: Path) -> None:
    headers = [str(Path(INCLUDE, "linux", "vfio.h")), str(Path(INCLUDE, "linux", "iommufd.h"))]
    facts, missing = compile_and_run(headers, tmp_path)
    assert missing == [], f"symbols the 7.3 headers do not have: {missing}"
    expected = expected_facts()
    diffs = [f"{k}: python {expected[k]!r} != gcc {facts.get(k)!r}" for k in expected if facts.get(k) != expected[k]]
    assert diffs == []
    assert len(expected) > 700  # 258 constants + 56 ioctls + 5 strings + 90 structs x2 + 381 fields


@pytest.mark.skipif(GCC is None or not Path("/usr/include/linux/vfio.h").exists(),
                    reason="needs gcc and the system's own /usr/include/linux/vfio.h")
def test_older_system_header_reports_missing_symbols(tmp_path: Path) -> None:
    """Against an older vfio.h (this distribution ships Linux 6.1's), newer symbols are named, not skipped."""
    facts, missing = compile_and_run(["/usr/include/linux/vfio.h"], tmp_path)
    assert "const VFIO_DEVICE_BIND_IOMMUFD" in missing or "const VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2" in missing
    assert any(k.startswith("const IOMMU_") for k in missing)  # no iommufd.h included at all
    # What the old header does define still agrees with the mirror: constants keep their values and
    # fields never move (structs may have grown since, so sizeof/alignof are not compared).
    expected = expected_facts()
    diffs = [k for k in facts if k in expected and facts[k] != expected[k] and not k.endswith(("sizeof", "alignof"))]
    assert diffs == []
