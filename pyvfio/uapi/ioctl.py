"""The ioctl request-number encoding of ``include/uapi/asm-generic/ioctl.h``.

A request number packs four fields: the transfer direction, the size of the
argument, a "type" byte that names the subsystem and a per-command number.
VFIO and iommufd define *every* command with plain ``_IO(';', nr)``: the
direction and size bits are zero and the argument size travels inside the
argument itself (``argsz`` or ``size``).  The ``_IOR``/``_IOW``/``_IOWR`` forms
here exist for KVM and for decoding other subsystems' numbers; using them for a
VFIO command yields a number the kernel does not know (``ENOTTY``).
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Union

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_DIRBITS = 2

_IOC_NRMASK = (1 << _IOC_NRBITS) - 1
_IOC_TYPEMASK = (1 << _IOC_TYPEBITS) - 1
_IOC_SIZEMASK = (1 << _IOC_SIZEBITS) - 1
_IOC_DIRMASK = (1 << _IOC_DIRBITS) - 1

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS

_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2

SizeArg = Union[int, "type[ctypes._CData]"]


def _type_byte(type_: Union[int, str]) -> int:
    """Accept the type as the kernel writes it (a character such as ``';'``) or as a number."""
    value = ord(type_) if isinstance(type_, str) else type_
    if not 0 <= value <= _IOC_TYPEMASK:
        raise ValueError(f"ioctl type {type_!r} does not fit in {_IOC_TYPEBITS} bits")
    return value


def _size_of(size: SizeArg) -> int:
    return size if isinstance(size, int) else ctypes.sizeof(size)


def _IOC(direction: int, type_: Union[int, str], nr: int, size: int) -> int:
    """Pack the four fields; out-of-range values are refused rather than silently masked."""
    if not 0 <= direction <= _IOC_DIRMASK:
        raise ValueError(f"ioctl direction {direction} out of range")
    if not 0 <= nr <= _IOC_NRMASK:
        raise ValueError(f"ioctl nr {nr} does not fit in {_IOC_NRBITS} bits")
    if not 0 <= size <= _IOC_SIZEMASK:
        raise ValueError(f"ioctl size {size} does not fit in {_IOC_SIZEBITS} bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (_type_byte(type_) << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IO(type_: Union[int, str], nr: int) -> int:
    """A command without an encoded argument: the form every VFIO and iommufd ioctl uses."""
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: Union[int, str], nr: int, size: SizeArg) -> int:
    """The kernel writes an argument of ``size`` bytes back to the caller."""
    return _IOC(_IOC_READ, type_, nr, _size_of(size))


def _IOW(type_: Union[int, str], nr: int, size: SizeArg) -> int:
    """The caller passes an argument of ``size`` bytes to the kernel."""
    return _IOC(_IOC_WRITE, type_, nr, _size_of(size))


def _IOWR(type_: Union[int, str], nr: int, size: SizeArg) -> int:
    """The argument travels both ways."""
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, _size_of(size))


class IocFields(NamedTuple):
    """A request number taken apart: what ``_IOC_DIR``/``_IOC_TYPE``/``_IOC_NR``/``_IOC_SIZE`` return."""

    direction: int
    type: int
    nr: int
    size: int

    @property
    def direction_name(self) -> str:
        return {_IOC_NONE: "none", _IOC_WRITE: "write", _IOC_READ: "read"}.get(
            self.direction, "read|write"
        )

    @property
    def type_char(self) -> str:
        return chr(self.type) if 0x20 < self.type < 0x7F else f"0x{self.type:02x}"


def ioc_decode(request: int) -> IocFields:
    """Split a request number; refuses numbers that do not fit in 32 bits."""
    if not 0 <= request <= 0xFFFFFFFF:
        raise ValueError(f"ioctl request {request:#x} is not a 32-bit number")
    return IocFields(
        (request >> _IOC_DIRSHIFT) & _IOC_DIRMASK,
        (request >> _IOC_TYPESHIFT) & _IOC_TYPEMASK,
        (request >> _IOC_NRSHIFT) & _IOC_NRMASK,
        (request >> _IOC_SIZESHIFT) & _IOC_SIZEMASK,
    )


class IoctlDef(NamedTuple):
    """One command of a UAPI header, with what a reader needs to use it.

    VFIO reuses request numbers across descriptor kinds (``VFIO_BASE + 12`` is a
    device's hot-reset query and a container's IOMMU info), so a number alone
    never names a command: ``fd`` says which descriptor kind gives it meaning.
    ``arg`` names the argument as the kernel declares it (a struct name, an
    integer passed by value, or ``None`` for no argument).
    """

    name: str
    request: int
    fd: str
    arg: str
    header: str
