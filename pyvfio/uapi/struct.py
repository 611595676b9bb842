"""Base classes for the UAPI structs and the one helper for flexible arrays.

The headers end many structs with a flexible array member (``__u8 data[]``,
``struct vfio_iova_range iova_ranges[]``).  ctypes cannot express "n more
elements after the fixed part", so the mirrors declare them as zero-length
arrays -- which gives the right offset and leaves ``sizeof`` equal to the C
one -- and :func:`alloc_flex` grows an instance in place (``ctypes.resize``)
to carry ``n`` trailing elements.  :func:`flex_array` then views those
elements as a normal ctypes array, and ``ctypes.sizeof(obj)`` reports the
whole allocation, which is exactly what ``argsz``/``size`` must say.
"""

from __future__ import annotations

import ctypes
from typing import Any, ClassVar, TypeVar

__all__ = [
    "Struct", "Union", "alloc_flex", "flex_array", "flex_field", "struct_bytes", "offsetof", "offsetofend",
    "sizeof_field",
    "u8", "u16", "u32", "u64", "s32", "s64", "aligned_u64", "c_char",
]

# The header's fixed-width types.  Names without the kernel's leading "__"
# because a double-underscore name inside a class body is mangled by Python.
# __aligned_u64 only differs from __u64 on 32-bit x86, which pyvfio does not
# target; it keeps its own name so the mirror reads like the header.
u8 = ctypes.c_uint8
u16 = ctypes.c_uint16
u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
s32 = ctypes.c_int32
s64 = ctypes.c_int64
aligned_u64 = ctypes.c_uint64
c_char = ctypes.c_char


def _field_repr(value: Any) -> str:
    if isinstance(value, int):
        return hex(value) if value > 9 else str(value)
    if isinstance(value, ctypes.Array):
        if len(value) == 0:
            return "[]"
        items = list(value)
        if all(isinstance(i, int) for i in items) and len(items) > 8:
            return bytes(value).hex() if ctypes.sizeof(value) == len(items) else repr(items)
        return "[" + ", ".join(_field_repr(i) for i in items) + "]"
    return repr(value)


class _ReprMixin:
    """A repr listing every field by name, so a struct printed in a test failure or a log says what it holds."""

    _fields_: ClassVar[Any]

    def __repr__(self) -> str:
        parts = []
        for entry in self._fields_:
            name = entry[0]
            parts.append(f"{name}={_field_repr(getattr(self, name))}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Struct(_ReprMixin, ctypes.Structure):
    """A C ``struct`` of a UAPI header (natural x86_64/gcc layout, no packing)."""


class Union(_ReprMixin, ctypes.Union):
    """A C ``union`` of a UAPI header."""


_S = TypeVar("_S", bound=ctypes.Structure)


def flex_field(cls: type[ctypes.Structure]) -> tuple[str, Any]:
    """Name and element type of the struct's flexible array: its last field, declared with length 0."""
    name, ctype = cls._fields_[-1][0], cls._fields_[-1][1]
    if not (isinstance(ctype, type) and issubclass(ctype, ctypes.Array) and getattr(ctype, "_length_") == 0):
        raise TypeError(f"struct {cls.__name__} has no flexible array member")
    return name, ctype._type_


def alloc_flex(cls: type[_S], n: int, **fields: Any) -> _S:
    """Allocate ``cls`` with room for ``n`` trailing flexible-array elements.

    The first field is set to the total size when it is the header's length
    field (``argsz`` in vfio.h, ``size`` in iommufd.h), so the result can go
    straight to the kernel.  Keyword arguments initialise fixed fields.  The
    total is ``offsetof(flex) + n * sizeof(elem)`` but never less than
    ``sizeof(cls)``: the kernel measures a struct from its start, and tail
    padding belongs to the fixed part.
    """
    if n < 0:
        raise ValueError(f"negative flexible-array length {n}")
    name, elem = flex_field(cls)
    offset = getattr(cls, name).offset
    total = max(ctypes.sizeof(cls), offset + n * ctypes.sizeof(elem))
    obj = cls(**fields)
    if total > ctypes.sizeof(cls):
        ctypes.resize(obj, total)
    first = cls._fields_[0][0]
    if first in ("argsz", "size"):
        setattr(obj, first, total)
    return obj


def flex_array(obj: ctypes.Structure, n: int | None = None) -> Any:
    """The trailing elements of ``obj`` as a ctypes array that shares its memory.

    ``n`` defaults to as many whole elements as the allocation holds.  The
    returned array keeps ``obj`` alive.
    """
    cls = type(obj)
    name, elem = flex_field(cls)
    offset = getattr(cls, name).offset
    room = (ctypes.sizeof(obj) - offset) // ctypes.sizeof(elem)
    if n is None:
        n = max(room, 0)
    if n > room:
        raise ValueError(f"{cls.__name__} holds {room} trailing elements, not {n}")
    return (elem * n).from_buffer(obj, offset)


def offsetof(cls: type[ctypes.Structure] | type[ctypes.Union], field: str) -> int:
    """C's ``offsetof``: where ``field`` starts (members of anonymous unions included)."""
    return int(getattr(cls, field).offset)


def sizeof_field(cls: type[ctypes.Structure] | type[ctypes.Union], field: str) -> int:
    """``sizeof(((struct S *)0)->field)``."""
    return int(getattr(cls, field).size)


def offsetofend(cls: type[ctypes.Structure] | type[ctypes.Union], field: str) -> int:
    """The kernel's ``offsetofend``: the first byte after ``field``, the usual ``minsz`` of an ioctl."""
    return offsetof(cls, field) + sizeof_field(cls, field)


def struct_bytes(obj: ctypes._CData) -> bytes:
    """The bytes of ``obj`` including any space grown by :func:`alloc_flex`."""
    return ctypes.string_at(ctypes.addressof(obj), ctypes.sizeof(obj))
