"""Files, the calling task, and ioctl arguments as the simulated kernel sees them.

These three types are the seam between the model (``vfio_main``, ``group``,
``container``, ``vfio_iommu_type1``, ``iommufd``, ``vfio_pci_core``) and the
transport that delivers calls to it: in-process (:mod:`pyvfio.sim.kernel`) or
a server process reached over a socket.  The model never sees a Python object
of the caller -- only bytes of the argument (:class:`UserArg`), the caller's
memory by address, and descriptors by number (:class:`Task`) -- so both
transports drive the same model.
"""

from __future__ import annotations

import builtins
import ctypes
import os
from typing import Any, Optional, TypeVar

from .errno import EBADF, EFAULT, EINVAL, ENODEV, ENOTTY, ESPIPE, KernelError
from .memory import ProcessMemory

_T = TypeVar("_T", bound=ctypes.Structure)


class UserArg:
    """The third argument of ``ioctl(2)``: an integer, or the bytes a pointer points at.

    ``buf`` is a private copy of the caller's argument bytes; the model reads
    and writes it through :meth:`view`, and the transport copies it back
    (``copy_to_user``).  ``value`` is the raw integer for by-value arguments
    (``VFIO_CHECK_EXTENSION``, ``VFIO_SET_IOMMU``).
    """

    def __init__(self, value: int = 0, buf: Optional[bytearray] = None) -> None:
        self.value = value
        self.buf = buf
        self.user_len = len(buf) if buf is not None else 0

    def __repr__(self) -> str:
        if self.buf is None:
            return f"UserArg(value={self.value})"
        return f"UserArg({self.user_len} bytes)"

    def view(self, cls: type[_T]) -> _T:
        """The argument as struct ``cls`` sharing ``buf`` (grown with zeros if the caller passed less).

        Bytes beyond what the caller passed are never copied back.
        """
        if self.buf is None:
            raise KernelError(EFAULT, "this ioctl takes a pointer, not an integer")
        need = ctypes.sizeof(cls)
        if len(self.buf) < need:
            self.buf.extend(bytes(need - len(self.buf)))
        return cls.from_buffer(self.buf)

    def u32(self, offset: int = 0) -> int:
        return int.from_bytes(self.bytes(offset, 4), "little")

    def s32(self, offset: int = 0) -> int:
        return int.from_bytes(self.bytes(offset, 4), "little", signed=True)

    def bytes(self, offset: int, length: int) -> builtins.bytes:
        """``length`` bytes at ``offset``: EFAULT when the caller's buffer is shorter (the kernel would fault)."""
        if self.buf is None or offset + length > self.user_len:
            raise KernelError(EFAULT, f"argument holds {self.user_len} bytes, the ioctl reads "
                                      f"{length} at offset {offset}")
        return bytes(self.buf[offset: offset + length])

    def write(self, offset: int, data: builtins.bytes) -> None:
        if self.buf is None or offset + len(data) > self.user_len:
            raise KernelError(EFAULT, f"argument holds {self.user_len} bytes, the ioctl writes "
                                      f"{len(data)} at offset {offset}")
        self.buf[offset: offset + len(data)] = data

    def cstring(self, limit: int = 256) -> str:
        if self.buf is None:
            raise KernelError(EFAULT, "expected a pointer to a string")
        raw = bytes(self.buf[: min(self.user_len, limit)])
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class Task:
    """The calling process ("current"): who it is, its memory, and its descriptor table.

    Transport-specific subclasses decide how a descriptor number of the
    caller turns into a model file or a real descriptor the model can keep.
    """

    def __init__(self, pid: int, uid: int = 0) -> None:
        self.pid = pid
        self.uid = uid
        self.mm = ProcessMemory(pid)

    def capable(self, cap: str) -> bool:
        """CAP_SYS_RAWIO, CAP_IPC_LOCK, CAP_SYS_RESOURCE: root has them all."""
        return self.uid == 0

    def fget(self, fd: int) -> "File":
        """The model file behind the caller's ``fd``; EBADF when it is not one of ours."""
        raise KernelError(EBADF, f"fd {fd} is not open")

    def fget_raw(self, fd: int) -> int:
        """A descriptor the model owns for the caller's real ``fd`` (an eventfd, a memfd); EBADF if invalid."""
        raise KernelError(EBADF, f"fd {fd} is not open")

    def fd_install(self, file: "File") -> int:
        """Give the caller a new descriptor for ``file`` (O_CLOEXEC) and return its number."""
        raise KernelError(EINVAL, "this transport cannot create descriptors")


class File:
    """An open file of the model: ``struct file`` with its ``file_operations``.

    ``kind`` names the descriptor kind the way :mod:`pyvfio.uapi` tables do
    ("container", "group", "device", "iommufd", "migration data fd") so errors
    can name the ioctl unambiguously.  Subclasses override what their fops
    implement; the defaults fail as a file without that op does.
    """

    kind = "file"
    name = "anon_inode:[pyvfio-sim]"

    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        raise KernelError(ENOTTY, f"{self.name} has no ioctl {request:#x}")

    def read(self, task: Task, size: int, offset: Optional[int]) -> bytes:
        raise KernelError(EINVAL, f"{self.name} cannot be read")

    def write(self, task: Task, data: bytes, offset: Optional[int]) -> int:
        raise KernelError(EINVAL, f"{self.name} cannot be written")

    def mmap(self, task: Task, length: int, offset: int, prot: int) -> Any:
        raise KernelError(ENODEV, f"{self.name} cannot be mmapped")

    def release(self) -> None:
        """The last descriptor closed."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def stream_offset(offset: Optional[int]) -> None:
    """Stream files (migration data, eventfd-like) refuse positioned I/O as ``stream_open`` makes them."""
    if offset is not None:
        raise KernelError(ESPIPE, "positioned read/write on a stream file")


def eventfd_signal(fd: int) -> None:
    """Add 1 to an eventfd the model holds (what ``eventfd_signal`` does in the kernel)."""
    os.eventfd_write(fd, 1)
