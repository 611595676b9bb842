#!/usr/bin/env python3
"""Generate ``stubs/pyvfio/uapi/*.pyi`` from the ctypes mirror in ``pyvfio/uapi``.

ctypes declares fields in a ``_fields_`` list that type checkers cannot read,
so every struct field looks like ``Any`` to mypy.  These stubs restate each
struct with typed attributes (``argsz: int``, ``areas: ctypes.Array[...]``),
letting code that fills and reads the structs type-check under ``--strict``.
The stubs are derived, never edited: ``tests/test_stubs.py`` regenerates them
in memory and fails on any difference.

usage: python3 tools/gen_stubs.py [--check]
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "stubs"
MIRRORS = ("vfio", "iommufd", "kvm")

_SCALARS = {
    ctypes.c_uint8: "int", ctypes.c_uint16: "int", ctypes.c_uint32: "int", ctypes.c_uint64: "int",
    ctypes.c_int8: "int", ctypes.c_int16: "int", ctypes.c_int32: "int", ctypes.c_int64: "int",
    ctypes.c_char: "bytes",
}
_CTYPE_NAMES = {t: f"ctypes.{t.__name__}" for t in _SCALARS}


def field_type(ctype: type) -> str:
    """The Python type an attribute access returns for a field of this ctypes type."""
    if ctype in _SCALARS:
        return _SCALARS[ctype]
    if issubclass(ctype, ctypes._Pointer):
        inner = _CTYPE_NAMES.get(ctype._type_, getattr(ctype._type_, "__name__", "ctypes._CData"))
        return f"ctypes._Pointer[{inner}]"
    if issubclass(ctype, ctypes.Array):
        elem = ctype._type_
        if elem is ctypes.c_char:
            return "bytes"  # ctypes returns char arrays as bytes
        inner = _CTYPE_NAMES.get(elem, getattr(elem, "__name__", "ctypes._CData"))
        return f"ctypes.Array[{inner}]"
    return ctype.__name__


def struct_stub(cls: type) -> list[str]:
    base = "Union" if issubclass(cls, ctypes.Union) else "Struct"
    lines = [f"class {cls.__name__}({base}):"]
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for entry in cls._fields_:  # type: ignore[attr-defined]
        name, ctype = entry[0], entry[1]
        if name.startswith("__"):
            continue  # mangled inside a class body; reach these with getattr()
        lines.append(f"    {name}: {field_type(ctype)}")
        if name in anonymous:
            for sub in ctype._fields_:
                if not sub[0].startswith("__"):
                    lines.append(f"    {sub[0]}: {field_type(sub[1])}")
    kwargs = ", ".join(
        f"{e[0]}: {field_type(e[1])} = ..." for e in cls._fields_  # type: ignore[attr-defined]
        if not e[0].startswith("__") and e[0] not in anonymous
    )
    lines.append(f"    def __init__(self{', ' if kwargs else ''}{kwargs}) -> None: ...")
    return lines


def enum_stub(cls: type[enum.Enum]) -> list[str]:
    base = next(b for b in (enum.IntFlag, enum.IntEnum, enum.Flag, enum.Enum) if issubclass(cls, b))
    lines = [f"class {cls.__name__}(enum.{base.__name__}):"]
    for member in cls:
        lines.append(f"    {member.name} = {member.value!r}")
    return lines


def _annotation(a: object) -> str:
    return a if isinstance(a, str) else getattr(a, "__name__", repr(a))


def function_stub(name: str, fn: object) -> list[str]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {_annotation(p.annotation)}" for p in sig.parameters.values())
    return [f"def {name}({params}) -> {_annotation(sig.return_annotation)}: ..."]


def module_stub(module: ModuleType) -> str:
    out = [
        f'"""Generated from {module.__name__} by tools/gen_stubs.py: do not edit."""',
        "",
        "import ctypes",
        "import enum",
        "",
        "from pyvfio.uapi.ioctl import IoctlDef",
        "from pyvfio.uapi.struct import Struct, Union",
        "",
    ]
    for name, value in vars(module).items():
        if name.startswith("__") and not name.startswith("__VFIO"):
            continue
        if isinstance(value, ModuleType):
            continue
        if isinstance(value, type) and issubclass(value, (ctypes.Structure, ctypes.Union)):
            if value.__module__ != module.__name__:
                continue
            out += struct_stub(value) + [""]
        elif isinstance(value, type) and issubclass(value, enum.Enum):
            if value.__module__ != module.__name__:
                continue
            out += enum_stub(value) + [""]
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            out += function_stub(name, value)
        elif type(value) is int:
            out.append(f"{name}: int")
        elif type(value) is str:
            out.append(f"{name}: str")
    out += [
        "",
        "IOCTLS: tuple[IoctlDef, ...]",
        "STRUCTS: tuple[type[Struct] | type[Union], ...]",
        "",
    ]
    return "\n".join(out)


def generate() -> dict[Path, str]:
    sys.path.insert(0, str(ROOT))
    import importlib

    files = {
        STUBS / "pyvfio" / "__init__.pyi": '"""Package marker for the generated stubs (see tools/gen_stubs.py)."""\n',
        STUBS / "pyvfio" / "uapi" / "__init__.pyi": '"""Package marker for the generated stubs."""\n',
    }
    for name in MIRRORS:
        module = importlib.import_module(f"pyvfio.uapi.{name}")
        files[STUBS / "pyvfio" / "uapi" / f"{name}.pyi"] = module_stub(module)
    return files


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale stubs (run python3 tools/gen_stubs.py):", *stale, file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
