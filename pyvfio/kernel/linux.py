"""The real kernel, through libc's ``ioctl`` and Python's own ``os``/``mmap``.

Only ``ioctl`` needs ctypes: ``os`` has no ioctl that takes a pointer to a
struct the caller owns.  Errors are translated to :class:`VfioError` naming
the ioctl as the *descriptor* sees it -- VFIO reuses request numbers, so the
fd's kind (read from ``/proc/self/fd``) decides whether 0x3b71 was a DMA map
or a hot reset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap as _mmap
import os
from typing import Any, Optional

from ..errors import VfioError
from .base import IoctlArg, ioctl_name

_ioctl: Any = None


def _ioctl_fn() -> Any:
    """libc's ``ioctl`` with a fixed prototype: (int fd, unsigned long request, void *arg).

    Declaring ``argtypes`` once lets ctypes convert plain ints directly, so a call costs one
    foreign-function hop and no per-call wrapper objects -- most of pyvfio's overhead over C.
    """
    global _ioctl
    if _ioctl is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.ioctl
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        _ioctl = fn
    return _ioctl


def fd_kind(fd: int) -> str:
    """What a VFIO/iommufd descriptor is, from the path the kernel shows for it."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
    if target == "/dev/vfio/vfio":
        return "container"
    if target == "/dev/iommu":
        return "iommufd"
    if target.startswith("/dev/vfio/devices/") or target == "anon_inode:[vfio-device]":
        return "device"
    if target.startswith("/dev/vfio/"):
        return "group"
    if "vfio-mig" in target or "vfio_mig" in target:
        return "migration data fd"
    return ""


class Linux:
    """The running kernel.  Stateless: several instances may share descriptors."""

    def __repr__(self) -> str:
        return f"Linux({os.uname().release})"

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        try:
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError as e:
            raise VfioError(e.errno or 0, "open", _open_hint(path, e.errno or 0), path) from None

    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as e:
            raise VfioError(e.errno or 0, "close", f"fd {fd}") from None

    def ioctl(self, fd: int, request: int, arg: IoctlArg = 0) -> int:
        fn = _ioctl or _ioctl_fn()
        if arg is None:
            ret = fn(fd, request, None)
        elif isinstance(arg, int):
            ret = fn(fd, request, arg & 0xFFFFFFFFFFFFFFFF)  # by value, as the kernel reads an unsigned long
        else:
            ret = fn(fd, request, ctypes.addressof(arg))
        if ret < 0:
            err = ctypes.get_errno()
            raise VfioError(err, ioctl_name(request, fd_kind(fd)), f"fd {fd}")
        return int(ret)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        try:
            return os.pread(fd, size, offset)
        except OSError as e:
            raise VfioError(e.errno or 0, "pread", f"fd {fd}, {size} bytes at {offset:#x}") from None

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        try:
            return os.pwrite(fd, data, offset)
        except OSError as e:
            raise VfioError(e.errno or 0, "pwrite", f"fd {fd}, {len(data)} bytes at {offset:#x}") from None

    def mmap(self, fd: int, length: int, offset: int,
             prot: int = _mmap.PROT_READ | _mmap.PROT_WRITE) -> _mmap.mmap:
        try:
            return _mmap.mmap(fd, length, _mmap.MAP_SHARED, prot, offset=offset)
        except OSError as e:
            raise VfioError(e.errno or 0, "mmap", f"fd {fd}, {length:#x} bytes at {offset:#x}") from None


def _open_hint(path: str, err: int) -> str:
    """Say what to do about the usual reasons an open of a VFIO node fails."""
    import errno

    if err == errno.ENOENT and path.startswith("/dev/vfio/devices/"):
        return "no such VFIO cdev: is the device bound to vfio-pci, and the kernel built with VFIO_DEVICE_CDEV?"
    if err == errno.ENOENT and path == "/dev/iommu":
        return "no /dev/iommu: the kernel lacks CONFIG_IOMMUFD (or the iommufd module is not loaded)"
    if err == errno.ENOENT and path.startswith("/dev/vfio"):
        return "no such VFIO node: load vfio-pci and bind the device to it"
    if err in (errno.EACCES, errno.EPERM):
        return "no permission: run as root or give your user access to the VFIO node"
    if err == errno.EBUSY:
        return "already in use: a group opens once, and an open cdev blocks the group path"
    return ""
