"""The :class:`Kernel` protocol and the naming of ioctls for error messages."""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
from typing import Any, Optional, Protocol, Union, runtime_checkable

#: What an ioctl takes: a UAPI struct (updated in place, as the kernel writes it back),
#: a ctypes scalar or array passed by pointer, or a plain int passed by value.
IoctlArg = Union["ctypes._CData", int, None]


@runtime_checkable
class Kernel(Protocol):
    """The six calls pyvfio needs from a kernel.

    Descriptors are real ones of the calling process on both implementations,
    so they can be polled, passed with ``SCM_RIGHTS`` and inherited.  Every
    failure raises :class:`pyvfio.errors.VfioError` (an ``OSError``) carrying
    the kernel's errno and the call's name.
    """

    def open(self, path: str, flags: int = os.O_RDWR) -> int: ...

    def close(self, fd: int) -> None: ...

    def ioctl(self, fd: int, request: int, arg: IoctlArg = 0) -> int: ...

    def pread(self, fd: int, size: int, offset: int) -> bytes: ...

    def pwrite(self, fd: int, data: bytes, offset: int) -> int: ...

    def mmap(self, fd: int, length: int, offset: int,
             prot: int = _mmap.PROT_READ | _mmap.PROT_WRITE) -> Any: ...


_NAMES: Optional[dict[int, list[tuple[str, str]]]] = None


def _table() -> dict[int, list[tuple[str, str]]]:
    global _NAMES
    if _NAMES is None:
        from ..uapi import iommufd, vfio

        table: dict[int, list[tuple[str, str]]] = {}
        for d in (*vfio.IOCTLS, *iommufd.IOCTLS):
            table.setdefault(d.request, []).append((d.name, d.fd))
        _NAMES = table
    return _NAMES


def ioctl_name(request: int, fd_kind: str = "") -> str:
    """The kernel name of ``request``; ``fd_kind`` ("container", "device", ...) picks among shared numbers.

    Numbers no VFIO/iommufd ioctl uses come back as hex, so a message never lies.
    """
    candidates = _table().get(request, [])
    if fd_kind:
        chosen = [name for name, kind in candidates if kind.startswith(fd_kind) and "spapr" not in kind]
        if len(chosen) == 1:
            return chosen[0]
    if len(candidates) == 1:
        return candidates[0][0]
    if candidates:
        return "/".join(name for name, kind in candidates if "spapr" not in kind)
    return f"ioctl {request:#x}"
