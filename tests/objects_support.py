"""Helpers for the object-layer tests: kernels that fail on purpose or add capabilities, and descriptor counting.

``FailingKernel`` wraps any kernel (simulated or real) and raises at its Nth call, which is how the tests
prove every object undoes what it did when a later step fails.  ``SparseKernel`` makes a region report a
sparse-mmap capability the simulated devices never report (real ones do, for the MSI-X table on old
kernels), following the kernel's argsz protocol exactly.  ``open_fds`` counts ``/proc/self/fd``.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from pyvfio.errors import VfioError
from pyvfio.uapi import vfio as uv


def open_fds() -> int:
    """How many descriptors this process has open (the listing's own descriptor cancels out between calls)."""
    return len(os.listdir("/proc/self/fd"))


class InjectedFailure(VfioError):
    """The failure :class:`FailingKernel` raises: an EIO from a call it never forwarded."""


class FailingKernel:
    """``inner`` with its ``fail_at``-th counted call (open/ioctl/pread/pwrite/mmap/read/write) failing.

    ``close`` is never failed and always forwarded: a failure must never stop the clean-up under test.
    Everything else (``devices``, ``add_device``...) passes through, so discovery still sees a simulated
    kernel as simulated.  ``fail_at = 0`` never fails; ``calls`` counts what was asked.
    """

    COUNTED = ("open", "ioctl", "pread", "pwrite", "mmap", "read", "write")

    def __init__(self, inner: Any, fail_at: int = 0) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0
        self.failed_call = ""

    def _count(self, name: str, detail: str) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            self.failed_call = f"{name} {detail}"
            raise InjectedFailure(errno.EIO, name, f"injected failure at call {self.calls} ({detail})")

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        self._count("open", path)
        return int(self.inner.open(path, flags))

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        from pyvfio.kernel.base import ioctl_name

        self._count("ioctl", ioctl_name(request))
        return int(self.inner.ioctl(fd, request, arg))

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._count("pread", f"{size}@{offset:#x}")
        return bytes(self.inner.pread(fd, size, offset))

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        self._count("pwrite", f"{len(data)}@{offset:#x}")
        return int(self.inner.pwrite(fd, data, offset))

    def mmap(self, fd: int, length: int, offset: int, *args: Any) -> Any:
        self._count("mmap", f"{length:#x}@{offset:#x}")
        return self.inner.mmap(fd, length, offset, *args)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("read", "write"):
            def counted(*args: Any) -> Any:
                self._count(name, "")
                return attr(*args)
            return counted
        return attr


class SparseKernel:
    """``inner``, except that region ``index`` of every device reports a SPARSE_MMAP capability with ``areas``.

    The capability is added the way ``vfio_info_cap_add`` + ``copy_to_user`` do it: when the caller's
    ``argsz`` is too small the call succeeds with ``CAPS`` set, ``cap_offset`` 0 and ``argsz`` raised;
    otherwise the chain is written after the fixed struct and ``cap_offset`` points at it.
    """

    def __init__(self, inner: Any, index: int, areas: list[tuple[int, int]], extra_unknown_cap: bool = False) -> None:
        self.inner = inner
        self.index = index
        self.areas = areas
        self.extra_unknown_cap = extra_unknown_cap
        self.region_info_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _chain(self, base: int) -> bytes:
        cap = uv.vfio_region_info_cap_sparse_mmap(nr_areas=len(self.areas))
        cap.header.id, cap.header.version = uv.VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1
        body = bytes(cap) + b"".join(bytes(uv.vfio_region_sparse_mmap_area(offset=o, size=s)) for o, s in self.areas)
        if not self.extra_unknown_cap:
            return body
        cap.header.next = base + len(body)
        body = bytes(cap) + body[ctypes.sizeof(cap):]
        unknown = uv.vfio_info_cap_header(id=0x77, version=3, next=0)
        return body + bytes(unknown) + b"\xab\xcd\xef\x01"

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        ret = int(self.inner.ioctl(fd, request, arg))
        if request != uv.VFIO_DEVICE_GET_REGION_INFO or not isinstance(arg, uv.vfio_region_info):
            return ret
        self.region_info_calls += 1
        if arg.index != self.index:
            return ret
        fixed = ctypes.sizeof(uv.vfio_region_info)
        chain = self._chain(fixed)
        arg.flags |= uv.VFIO_REGION_INFO_FLAG_CAPS
        if arg.argsz < fixed + len(chain):
            arg.argsz = fixed + len(chain)
            arg.cap_offset = 0
        else:
            ctypes.memmove(ctypes.addressof(arg) + fixed, chain, len(chain))
            arg.cap_offset = fixed
        return ret
