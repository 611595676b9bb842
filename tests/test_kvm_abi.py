"""ABI test of ``pyvfio.uapi.kvm``: a C program generated from the Python mirror, compiled against real headers.

Every constant (ioctl numbers included), every struct's ``sizeof``/``_Alignof``,
and the offset and size of every member -- nested ones too, down through the
named unions (``u.msi.data``, ``chip.ioapic.redirtbl[0].fields.dest_id``) --
are printed by gcc reading ``linux/kvm.h`` and compared with what ctypes
computes.  Bit-fields have no ``offsetof``: each is set to all ones in a
zeroed struct on both sides and the bytes compared, which pins its storage
unit, bit position and width.

Two header sets: the system's ``/usr/include/linux/kvm.h`` (this machine's
libc headers, Linux 6.1) and, when ``PYVFIO_UAPI_INCLUDE`` names the fetched
Linux 7.3 UAPI tree, its ``linux/kvm.h`` with the x86 ``asm/kvm.h`` next to it.
The mirrored subset is identical in both.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from pyvfio.uapi import kvm as uk

GCC = shutil.which("gcc")
SYSTEM_HEADER = Path("/usr/include/linux/kvm.h")
INCLUDE_73 = os.environ.get("PYVFIO_UAPI_INCLUDE", "")


def constants() -> dict[str, int]:
    """Module-level kernel names with plain int values (the ioctl numbers among them)."""
    return {name: value for name, value in vars(uk).items()
            if re.match(r"^(__)?KVM", name) and type(value) is int}


def _is_bitfield(entry: tuple[Any, ...]) -> bool:
    return len(entry) == 3


def members(cls: type, prefix: str = "", base: int = 0) -> Iterator[tuple[str, str, int, int, int]]:
    """(kind, C member path, offset, size, bit width) for every member as C names it.

    Anonymous unions are flattened (C reaches their members directly);
    named struct/union members and the first element of arrays of structs
    are descended into, so nested layouts are checked too.
    """
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for entry in cls._fields_:  # type: ignore[attr-defined]
        name, ctype = entry[0], entry[1]
        attr = getattr(cls, name)
        offset = base + attr.offset
        if name in anonymous:
            yield from members(ctype, prefix, offset)
            continue
        path = prefix + name
        if _is_bitfield(entry):
            yield "bitfield", path, offset, 0, entry[2]
            continue
        if isinstance(ctype, type) and issubclass(ctype, ctypes.Array) and ctype._length_ == 0:
            yield "flex", path, offset, ctypes.sizeof(ctype._type_), 0
            continue
        yield "field", path, offset, attr.size, 0
        if isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            yield from members(ctype, path + ".", offset)
        elif (isinstance(ctype, type) and issubclass(ctype, ctypes.Array)
              and isinstance(ctype._type_, type) and issubclass(ctype._type_, (ctypes.Structure, ctypes.Union))):
            yield from members(ctype._type_, path + "[0].", offset)


def _c_type(cls: type) -> str:
    return f"{'union' if issubclass(cls, ctypes.Union) else 'struct'} {cls.__name__}"


def _set_path(obj: Any, path: str, value: int) -> None:
    tokens = re.findall(r"\w+|\[\d+\]", path)
    for tok in tokens[:-1]:
        obj = obj[int(tok[1:-1])] if tok.startswith("[") else getattr(obj, tok)
    setattr(obj, tokens[-1], value)


def python_facts() -> dict[str, str]:
    facts = {f"const {n}": str(v) for n, v in constants().items()}
    for cls in uk.STRUCTS:
        t = _c_type(cls)
        facts[f"{t} sizeof"] = str(ctypes.sizeof(cls))
        facts[f"{t} alignof"] = str(ctypes.alignment(cls))
        for kind, path, offset, size, width in members(cls):
            if kind == "bitfield":
                obj = cls()
                _set_path(obj, path, (1 << width) - 1)
                facts[f"{t} .{path}"] = f"bits {bytes(obj).hex()}"
            elif kind == "flex":
                facts[f"{t} .{path}"] = f"offsetof {offset} flex elemsize {size}"
            else:
                facts[f"{t} .{path}"] = f"offsetof {offset} size {size}"
    return facts


def c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <string.h>", "#include <linux/kvm.h>",
             "int main(void) {", "unsigned char *b; size_t i;"]
    for name in constants():
        if name.startswith("__KVM_HAVE"):  # an empty macro: defined or not
            lines += [f"#ifdef {name}", f'printf("const {name} 1\\n");', "#else",
                      f'printf("const {name} 0\\n");', "#endif"]
        else:
            lines.append(f'printf("const {name} %lld\\n", (long long)({name}));')
    for cls in uk.STRUCTS:
        t = _c_type(cls)
        lines.append(f'printf("{t} sizeof %zu\\n", sizeof({t}));')
        lines.append(f'printf("{t} alignof %zu\\n", _Alignof({t}));')
        for kind, path, _offset, _size, _width in members(cls):
            m = f"(({t} *)0)->{path}"
            if kind == "bitfield":
                lines.append(f"{{ {t} x; memset(&x, 0, sizeof x); x.{path} = ~0ULL; b = (unsigned char *)&x; "
                             f'printf("{t} .{path} bits "); for (i = 0; i < sizeof x; i++) printf("%02x", b[i]); '
                             f'printf("\\n"); }}')
            elif kind == "flex":
                lines.append(f'printf("{t} .{path} offsetof %zu flex elemsize %zu\\n", '
                             f"offsetof({t}, {path}), sizeof({m}[0]));")
            else:
                lines.append(f'printf("{t} .{path} offsetof %zu size %zu\\n", offsetof({t}, {path}), sizeof({m}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines) + "\n"


def compiled_facts(workdir: Path, include_dirs: list[str]) -> dict[str, str]:
    assert GCC is not None
    src = workdir / "kvm_abi.c"
    exe = workdir / "kvm_abi"
    src.write_text(c_program())
    cmd = [GCC, "-w", "-std=gnu11", *[f"-I{d}" for d in include_dirs], "-o", str(exe), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, "gcc rejected the generated program:\n" + proc.stderr[-4000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    facts: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("const "):
            _, name, value = line.split(" ")
            facts[f"const {name}"] = value
        else:
            kw, name, member, rest = line.split(" ", 3)
            facts[f"{kw} {name} {member}"] = rest
    return facts


def compare(facts: dict[str, str]) -> list[str]:
    expected = python_facts()
    return [f"{k}: python {v!r} != gcc {facts.get(k)!r}" for k, v in expected.items() if facts.get(k) != v]


def tree_73_dirs(workdir: Path) -> list[str]:
    """Include path for the 7.3 source tree's UAPI headers.

    In the kernel tree they still include ``<linux/compiler.h>`` and use
    ``__user`` (``make headers_install`` strips both), so a one-line stand-in
    is put first.
    """
    dirs = tree_73()
    assert dirs is not None
    shim = workdir / "shim" / "linux"
    shim.mkdir(parents=True)
    (shim / "compiler.h").write_text("#define __user\n#define __force\n#define __counted_by(m)\n")
    return [str(workdir / "shim"), *dirs]


def tree_73() -> Optional[list[str]]:
    if not INCLUDE_73:
        return None
    inc = Path(INCLUDE_73)
    arch = inc.parent.parent / "arch" / "x86" / "include" / "uapi"
    if not (inc / "linux" / "kvm.h").exists() or not (arch / "asm" / "kvm.h").exists():
        return None
    return [str(inc), str(arch)]


@pytest.mark.skipif(GCC is None or not SYSTEM_HEADER.exists(), reason="needs gcc and /usr/include/linux/kvm.h")
def test_mirror_matches_the_system_kvm_header(tmp_path: Path) -> None:
    facts = compiled_facts(tmp_path, [])
    assert compare(facts) == []
    expected = python_facts()
    assert sum(k.startswith("const ") for k in expected) == 48  # 15 of them ioctl numbers
    # the 8 bit-fields of an IOAPIC redirection entry, seen in kvm_ioapic_state and through kvm_irqchip
    assert sum(v.startswith("bits ") for v in expected.values()) == 16
    assert len(expected) >= 200


@pytest.mark.skipif(GCC is None or tree_73() is None,
                    reason="PYVFIO_UAPI_INCLUDE does not name the fetched Linux 7.3 UAPI tree "
                           "(tools/fetch-uapi-headers.sh), or gcc is missing")
def test_mirror_matches_the_linux_7_3_kvm_header(tmp_path: Path) -> None:
    assert compare(compiled_facts(tmp_path, tree_73_dirs(tmp_path))) == []


def test_ioctl_numbers_encode_direction_and_size() -> None:
    """KVM, unlike VFIO, encodes its argument in the number: a few values as the header spells them."""
    assert uk.KVM_GET_API_VERSION == 0xAE00
    assert uk.KVM_CREATE_VM == 0xAE01 and uk.KVM_CHECK_EXTENSION == 0xAE03
    assert uk.KVM_CREATE_VCPU == 0xAE41 and uk.KVM_CREATE_IRQCHIP == 0xAE60
    assert uk.KVM_IRQFD == 0x4020AE76  # _IOW, 32 bytes
    assert uk.KVM_SET_GSI_ROUTING == 0x4008AE6A  # _IOW, 8 bytes: the header without entries
    assert uk.KVM_GET_LAPIC == 0x8400AE8E and uk.KVM_SET_LAPIC == 0x4400AE8F  # 1 KiB page
    assert uk.KVM_GET_IRQCHIP == 0xC208AE62 and uk.KVM_SET_IRQCHIP == 0x8208AE63  # _IOR: the header's
    assert uk.KVM_SIGNAL_MSI == 0x4020AEA5
    assert {d.request for d in uk.IOCTLS} == {v for n, v in constants().items() if n in {d.name for d in uk.IOCTLS}}
