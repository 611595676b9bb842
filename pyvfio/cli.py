"""``python -m pyvfio``: small tools for people learning or debugging VFIO.

``decode`` answers "which ioctl is 0x3b71?" -- a question with several answers,
because VFIO reuses numbers across descriptor kinds -- and ``abi`` prints a
struct's layout the way ``pahole`` would, for readers checking their own
bindings against the kernel's.  Bad input exits with status 2 and a sentence
saying what was expected.
"""

from __future__ import annotations

import argparse
import ctypes
import difflib
import sys
from typing import Any, Iterator, Optional, Sequence

USAGE_ERROR = 2


def _uapi_modules() -> tuple[Any, ...]:
    from .uapi import iommufd, vfio

    return (vfio, iommufd)


class UsageError(Exception):
    """Input the command cannot act on; the message says what it expected."""


def _parse_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"{text!r} is neither an ioctl name nor a number (try 0x3b71 or 15217)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"{text} is not a 32-bit ioctl request number")
    return value


def cmd_decode(args: argparse.Namespace) -> int:
    from .uapi.ioctl import ioc_decode

    table = [d for m in _uapi_modules() for d in m.IOCTLS]
    text: str = args.request
    by_name = {d.name: d for d in table}
    if text.upper() in by_name or text in by_name:
        d = by_name.get(text, by_name.get(text.upper()))
        assert d is not None
        request = d.request
    elif text[:1].isdigit():
        request = _parse_number(text)
    else:
        close = difflib.get_close_matches(text.upper(), list(by_name), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"no VFIO or iommufd ioctl is named {text!r}{hint}")
    f = ioc_decode(request)
    print(f"{request:#06x}  dir={f.direction_name} type={f.type_char!r} nr={f.nr} ({f.nr:#x}) size={f.size}")
    matches = [d for d in table if d.request == request]
    if not matches:
        near = ""
        if f.type == ord(";") and f.size:
            plain = request & 0xFFFF
            if any(d.request == plain for d in table):
                near = (f"; VFIO/iommufd ioctls are plain _IO with no size bits -- "
                        f"did you mean {plain:#06x}?")
        raise UsageError(f"no VFIO or iommufd ioctl has request number {request:#x}{near}")
    if len(matches) > 1:
        print(f"  {len(matches)} ioctls share this number; the descriptor decides which one runs:")
    for d in matches:
        print(f"  {d.name:<40} on a {d.fd} fd ({d.header}), argument: {d.arg}")
    return 0


_C_NAMES = {
    ctypes.c_uint8: "__u8", ctypes.c_uint16: "__u16", ctypes.c_uint32: "__u32", ctypes.c_uint64: "__u64",
    ctypes.c_int8: "__s8", ctypes.c_int16: "__s16", ctypes.c_int32: "__s32", ctypes.c_int64: "__s64",
    ctypes.c_char: "char",
}


def c_type_name(ctype: Any) -> str:
    """How the header spells a field's type (``__aligned_u64`` reads as ``__u64``: same layout on x86_64)."""
    if ctype in _C_NAMES:
        return _C_NAMES[ctype]
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        return f"{c_type_name(ctype._type_)}[{getattr(ctype, '_length_') or ''}]"
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Union):
        return "union" if ctype.__name__.startswith("_") else f"union {ctype.__name__}"
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
        return "struct" if ctype.__name__.startswith("_") else f"struct {ctype.__name__}"
    return getattr(ctype, "__name__", str(ctype))


def layout_rows(cls: Any, base: int = 0, depth: int = 0) -> Iterator[tuple[int, int, str, str]]:
    """(offset, size, field, C type) rows, descending into anonymous unions as C lets you name them."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for entry in cls._fields_:
        name, ctype = entry[0], entry[1]
        attr = getattr(cls, name)
        if name in anonymous:
            yield base + attr.offset, attr.size, "{" if depth >= 0 else "", c_type_name(ctype) + " (anonymous)"
            yield from layout_rows(ctype, base + attr.offset, depth + 1)
            continue
        yield base + attr.offset, attr.size, "  " * depth + name, c_type_name(ctype)


def find_struct(name: str) -> Any:
    name = name.removeprefix("struct ").removeprefix("union ").strip()
    structs = {cls.__name__: cls for m in _uapi_modules() for cls in m.STRUCTS}
    if name in structs:
        return structs[name]
    close = difflib.get_close_matches(name, list(structs), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else " (python -m pyvfio abi --list shows them all)"
    raise UsageError(f"no struct named {name!r} in vfio.h or iommufd.h{hint}")


def cmd_abi(args: argparse.Namespace) -> int:
    if args.list or not args.struct:
        for m in _uapi_modules():
            for cls in m.STRUCTS:
                print(f"{cls.__name__:<48} {ctypes.sizeof(cls):>4} bytes  ({m.__name__.rsplit('.', 1)[1]}.h)")
        return 0
    cls = find_struct(args.struct)
    kind = "union" if issubclass(cls, ctypes.Union) else "struct"
    print(f"{kind} {cls.__name__}: sizeof {ctypes.sizeof(cls)}, alignof {ctypes.alignment(cls)}")
    print(f"{'offset':>6} {'size':>5}  {'field':<28} C type")
    end = 0
    for offset, size, field, ctype in layout_rows(cls):
        if field == "{":
            print(f"{offset:>6} {size:>5}  {'':<28} {ctype}")
            continue
        if offset > end and not field.startswith(" "):
            print(f"{end:>6} {offset - end:>5}  {'(hole)':<28}")
        flex = ctype.endswith("[]")
        print(f"{offset:>6} {size:>5}  {field:<28} {ctype}{'  (flexible array)' if flex else ''}")
        if not field.startswith(" "):
            end = max(end, offset + size)
    if ctypes.sizeof(cls) > end:
        print(f"{end:>6} {ctypes.sizeof(cls) - end:>5}  {'(tail padding)':<28}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyvfio", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("decode", help="name the ioctl(s) behind a request number, or the number of a name")
    p.add_argument("request", help="a request number (0x3b71, 15217) or an ioctl name")
    p.set_defaults(func=cmd_decode)
    p = sub.add_parser("abi", help="print a UAPI struct's layout: offset, size, field, C type")
    p.add_argument("struct", nargs="?", help="a struct name, e.g. vfio_region_info")
    p.add_argument("--list", action="store_true", help="list every struct of vfio.h and iommufd.h")
    p.set_defaults(func=cmd_abi)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except UsageError as e:
        print(f"pyvfio {args.command}: {e}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
