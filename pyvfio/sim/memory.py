"""The caller's memory as the kernel reaches it: ``copy_from_user``/``copy_to_user`` and DMA by user VA.

The simulated kernel never dereferences a raw pointer.  It reads and writes
another process's memory -- or its own -- with ``process_vm_readv`` and
``process_vm_writev``, which fail with ``EFAULT`` on an unmapped address
instead of crashing.  That is the same contract the real kernel gives, and it
is what lets a DMA mapping made by one process be served after that process
hands its memory to a new one (CPR): the mapping records the *process*, not
a Python object.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Optional

from .errno import EFAULT, EPERM, ESRCH, KernelError


class _iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc: Optional[Any] = None


def _libc_fns() -> Any:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        for name in ("process_vm_readv", "process_vm_writev"):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_ssize_t
            fn.argtypes = [ctypes.c_int, ctypes.POINTER(_iovec), ctypes.c_ulong,
                           ctypes.POINTER(_iovec), ctypes.c_ulong, ctypes.c_ulong]
        _libc = lib
    return _libc


class ProcessMemory:
    """The address space of process ``pid`` (the kernel's ``mm``), reached by pid.

    ``pid`` is what DMA mappings and CPR track: ``VFIO_DMA_MAP_FLAG_VADDR`` and
    ``IOMMU_IOAS_CHANGE_PROCESS`` replace it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __repr__(self) -> str:
        return f"ProcessMemory(pid={self.pid})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessMemory) and other.pid == self.pid

    def __hash__(self) -> int:
        return hash(self.pid)

    def _transfer(self, addr: int, buf: Any, length: int, write: bool) -> None:
        if length == 0:
            return
        if addr < 0 or addr + length > 1 << 64:
            raise KernelError(EFAULT, f"user address {addr:#x}+{length:#x} is out of range")
        local = _iovec(ctypes.cast(buf, ctypes.c_void_p), length)
        remote = _iovec(addr, length)
        fn = _libc_fns().process_vm_writev if write else _libc_fns().process_vm_readv
        done = fn(self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if done == length:
            return
        err = ctypes.get_errno() if done < 0 else EFAULT
        if err == EPERM:
            raise KernelError(EFAULT, f"cannot reach memory of pid {self.pid}: ptrace access denied "
                                      "(Yama ptrace_scope: the process must allow it with prctl(PR_SET_PTRACER))")
        if err == ESRCH:
            raise KernelError(EFAULT, f"process {self.pid} no longer exists")
        raise KernelError(EFAULT, f"user address range {addr:#x}+{length:#x} is not mapped in pid {self.pid}")

    def read(self, addr: int, length: int) -> bytes:
        buf = ctypes.create_string_buffer(length)
        self._transfer(addr, buf, length, write=False)
        return buf.raw

    def write(self, addr: int, data: bytes) -> None:
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        self._transfer(addr, buf, len(data), write=True)

    def check(self, addr: int, length: int, page_size: int = 4096) -> None:
        """Fault in (read) one byte per page, as pinning would; EFAULT if any page is missing."""
        if length <= 0:
            return
        # One readv per 1024 pages (IOV_MAX), reading one byte of each page.
        first = addr - addr % page_size
        for chunk in range(first, addr + length, page_size * 1024):
            pages = range(chunk, min(chunk + page_size * 1024, addr + length), page_size)
            n = len(pages)
            scratch = ctypes.create_string_buffer(n)
            local = _iovec(ctypes.cast(scratch, ctypes.c_void_p), n)
            remote = (_iovec * n)(*[_iovec(max(p, addr), 1) for p in pages])
            done = _libc_fns().process_vm_readv(self.pid, ctypes.byref(local), 1, remote, n, 0)
            if done != n:
                raise KernelError(EFAULT, f"user range {addr:#x}+{length:#x} is not fully mapped in pid {self.pid}")

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        out = b""
        while len(out) < limit:
            chunk = self.read(addr + len(out), min(64, limit - len(out)))
            if b"\0" in chunk:
                return out + chunk[: chunk.index(b"\0")]
            out += chunk
        return out


def current() -> ProcessMemory:
    return ProcessMemory(os.getpid())
