"""Shared reader for ABI fact files and the matching facts computed from pyvfio.uapi.

The golden file (tests/data/abi-x86_64.txt) and the C program compiled against real
headers both speak the same line format, so one comparison serves both test kinds:

    const NAME VALUE | strconst NAME "TEXT" | ioctl NAME VALUE
    struct S sizeof N | struct S alignof N
    struct S.FIELD offsetof O size Z [flex elemsize E]
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from types import ModuleType
from typing import Iterator

from pyvfio.uapi import iommufd, vfio

MODULES: tuple[ModuleType, ...] = (vfio, iommufd)
GOLDEN = Path(__file__).parent / "data" / "abi-x86_64.txt"


def read_facts(text: str) -> dict[str, str]:
    """Map "kind name[ attr]" -> value text, e.g. "struct vfio_region_info sizeof" -> "32"."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, rest = line.split(" ", 1)
        if kind in ("const", "ioctl"):
            # "const NAME VALUE [width W]", "ioctl NAME VALUE dir D type T nr N size S": the value is what counts
            name, value = rest.split(" ")[:2]
            facts[f"{kind} {name}"] = value
        elif kind == "strconst":
            name, value = rest.split(" ", 1)
            facts[f"{kind} {name}"] = value
        elif kind == "struct":
            name, attr, value = rest.split(" ", 2)
            facts[f"struct {name} {attr}"] = value
        else:
            raise ValueError(f"unknown fact line: {line!r}")
    return facts


def find(name: str) -> object:
    for module in MODULES:
        if hasattr(module, name):
            return getattr(module, name)
    raise KeyError(name)


def struct_classes() -> Iterator[type]:
    for module in MODULES:
        yield from module.STRUCTS


def python_facts() -> dict[str, str]:
    """The same facts, computed from the Python mirror (what the C program must agree with)."""
    facts: dict[str, str] = {}
    for module in MODULES:
        for d in module.IOCTLS:
            facts[f"ioctl {d.name}"] = str(d.request)
    for cls in struct_classes():
        name = cls.__name__
        facts[f"struct {name} sizeof"] = str(ctypes.sizeof(cls))
        facts[f"struct {name} alignof"] = str(ctypes.alignment(cls))
        for field, attr, flex in struct_fields(cls):
            value = f"offsetof {attr.offset} size {attr.size}"
            if flex is not None:
                value += f" flex elemsize {flex}"
            facts[f"struct {name}.{field} _"] = value
    return facts


def struct_fields(cls: type) -> Iterator[tuple[str, "ctypes._CField", "int | None"]]:
    """Every C-visible field, with members of anonymous unions/structs flattened as C sees them."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for entry in cls._fields_:  # type: ignore[attr-defined]
        fname, ftype = entry[0], entry[1]
        if fname in anonymous:
            for sub, _attr, flex in struct_fields(ftype):
                yield sub, getattr(cls, sub), flex
            continue
        flex = None
        if isinstance(ftype, type) and issubclass(ftype, ctypes.Array) and ftype._length_ == 0:
            flex = ctypes.sizeof(ftype._type_)
        yield fname, getattr(cls, fname), flex


def golden_field_facts(facts: dict[str, str]) -> dict[str, str]:
    """Golden facts for fields, keyed like python_facts() ("struct S.F _")."""
    out = {}
    for key, value in facts.items():
        if key.startswith("struct ") and key.endswith(" offsetof"):
            out[key[: -len(" offsetof")] + " _"] = "offsetof " + value
    return out
