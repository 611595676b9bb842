"""The simulated kernel, in-process: the :class:`pyvfio.kernel.Kernel` surface over the model.

Descriptors are real: each open file of the model is backed by an empty
memfd of the calling process, named after the node (``/proc/self/fd`` shows
``/memfd:pyvfio-sim:/dev/vfio/vfio``), and found again by its inode.  So a
descriptor can be polled, ``dup``-ed, passed over a socket within the process
or closed by number, and a leaked one shows up in ``/proc/self/fd`` like any
other.  Eventfds and memfds the caller hands in are the caller's real ones.

A memfd always polls readable, which is wrong for a file whose readiness
means something (the iommufd fault queue: ``poll`` says EPOLLIN only while a
fault waits).  Such a file declares ``attach_poll``; it then gets a pipe
instead, reopened read-write through ``/proc/self/fd`` so the caller's end
polls writable always and readable only while the model keeps a byte in it
(see :meth:`Kernel._install`).
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
import threading
from typing import Any, Optional

from ..errors import VfioError
from ..kernel.base import IoctlArg, ioctl_name
from .errno import EBADF, ENOTTY, KernelError
from .file import File, Task, UserArg
from .vfio_main import Vfio, VfioDevice


class _InProcessTask(Task):
    def __init__(self, kernel: "Kernel") -> None:
        super().__init__(os.getpid(), os.getuid())
        self.kernel = kernel

    def fget(self, fd: int) -> File:
        file = self.kernel._lookup(fd)
        if file is None:
            raise KernelError(EBADF, f"fd {fd} is not a descriptor of the simulated kernel")
        return file

    def fget_raw(self, fd: int) -> int:
        try:
            return os.dup(fd) if fd >= 0 else _raise_ebadf(fd)
        except OSError:
            raise KernelError(EBADF, f"fd {fd} is not open") from None

    def fd_install(self, file: File) -> int:
        return self.kernel._install(file)


def _raise_ebadf(fd: int) -> int:
    raise KernelError(EBADF, f"fd {fd} is negative")


class Kernel:
    """A whole simulated machine in this process: VFIO, type1, iommufd and vfio-pci devices.

    >>> k = Kernel(); edu = k.add_device("edu")
    >>> fd = k.open(f"/dev/vfio/{edu.group}")
    """

    def __init__(self) -> None:
        self.vfio = Vfio()
        self._files: dict[tuple[int, int], File] = {}
        self._refs: dict[tuple[int, int], int] = {}
        self._handed_out: set[int] = set()  # descriptor numbers given to the caller, not yet closed by it
        self._lock = threading.RLock()
        self.task = _InProcessTask(self)

    def __repr__(self) -> str:
        return f"<pyvfio.sim.Kernel: {len(self.vfio.devices)} devices, {len(self._files)} open files>"

    # -- devices ---------------------------------------------------------------------------------
    def add_device(self, kind: str, **options: Any) -> VfioDevice:
        """Plug in a simulated device ("edu", "mtty") bound to vfio-pci; returns it (.group, .cdev, .address).

        Behind it sits the VM lane's IOMMU (QEMU intel-iommu: 39-bit IOVA, no dirty tracking);
        ``iommu_dirty_tracking=True`` gives this device an IOMMU that can track dirty pages instead."""
        with self._lock:
            return self.vfio.add_device(kind, **options)

    @property
    def devices(self) -> dict[str, VfioDevice]:
        return self.vfio.devices

    # -- descriptor table --------------------------------------------------------------------------
    def _key(self, fd: int) -> Optional[tuple[int, int]]:
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _lookup(self, fd: int) -> Optional[File]:
        key = self._key(fd)
        return None if key is None else self._files.get(key)

    def _install(self, file: File) -> int:
        attach = getattr(file, "attach_poll", None)
        fd = os.memfd_create(f"pyvfio-sim:{file.name}", os.MFD_CLOEXEC) if attach is None else self._pipe()
        key = self._key(fd)
        assert key is not None
        if attach is not None:
            attach(lambda: self._reopen(key))
        self._files[key] = file
        self._refs[key] = 1
        self._handed_out.add(fd)
        return fd

    @staticmethod
    def _pipe() -> int:
        """The caller's descriptor for a file whose readiness the model drives: a pipe opened read-write.

        Every pipe has its own inode, so the descriptor table finds it as it finds a memfd."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            return os.open(f"/proc/self/fd/{r}", os.O_RDWR | os.O_CLOEXEC)
        finally:
            os.close(r)
            os.close(w)

    def _reopen(self, key: tuple[int, int]) -> Optional[int]:
        """A short-lived non-blocking descriptor of the pipe behind ``key`` (the model closes it after use),
        reopened from one the caller still holds; None once the caller holds none.  The model keeps no
        descriptor of its own, so the caller's ``/proc/self/fd`` counts stay exact."""
        for fd in sorted(self._handed_out):
            if self._key(fd) == key:
                return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        return None

    def descriptors(self) -> set[int]:
        """Descriptor numbers this kernel gave the caller (open, GET_DEVICE_FD, data_fd...) and not yet closed."""
        return set(self._handed_out)

    def open_files(self) -> list[File]:
        """Files of the model with a descriptor still open (for leak checks)."""
        return list(self._files.values())

    def check_invariants(self) -> None:
        """Assert the model is consistent: every open file's own invariants, and the descriptor table's."""
        with self._lock:
            assert set(self._files) == set(self._refs) and all(n > 0 for n in self._refs.values())
            for file in self._files.values():
                check = getattr(file, "check_invariants", None)
                if check is not None:
                    check()
            for vdev in self.vfio.devices.values():
                assert vdev.open_count >= 0 and vdev.cdev_open >= 0, vdev

    def _file(self, fd: int, call: str) -> File:
        file = self._lookup(fd)
        if file is None:
            raise VfioError(EBADF, call, f"fd {fd} is not a descriptor of the simulated kernel")
        return file

    # -- the surface -------------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        with self._lock:
            try:
                file = self.vfio.open(self.task, path, flags)
            except KernelError as e:
                raise VfioError(e.errno, "open", e.reason, path) from None
            return self._install(file)

    def close(self, fd: int) -> None:
        with self._lock:
            key = self._key(fd)
            if key is None:
                raise VfioError(EBADF, "close", f"fd {fd} is not open")
            os.close(fd)
            self._handed_out.discard(fd)
            if key in self._files:
                self._refs[key] -= 1
                if self._refs[key] == 0:
                    file = self._files.pop(key)
                    del self._refs[key]
                    file.release()

    def ioctl(self, fd: int, request: int, arg: IoctlArg = 0) -> int:
        with self._lock:
            file = self._lookup(fd)
            if file is None:
                if self._key(fd) is None:
                    raise VfioError(EBADF, ioctl_name(request), f"fd {fd} is not open")
                raise VfioError(ENOTTY, ioctl_name(request), f"fd {fd} is not a VFIO or iommufd descriptor")
            if arg is None or isinstance(arg, int):
                uarg = UserArg(value=arg or 0)
                obj = None
            else:
                obj = arg
                size = ctypes.sizeof(obj)
                uarg = UserArg(value=ctypes.addressof(obj),
                               buf=bytearray(ctypes.string_at(ctypes.addressof(obj), size)))
            try:
                return file.ioctl(self.task, request, uarg)
            except KernelError as e:
                raise VfioError(e.errno, ioctl_name(request, file.kind), e.reason) from None
            finally:
                if obj is not None and uarg.buf is not None:
                    # copy_to_user of what the model wrote (never past what the caller passed)
                    ctypes.memmove(ctypes.addressof(obj), bytes(uarg.buf[: uarg.user_len]), uarg.user_len)

    def _io(self, fd: int, call: str, fn: Any) -> Any:
        with self._lock:
            file = self._file(fd, call)
            try:
                return fn(file)
            except KernelError as e:
                raise VfioError(e.errno, call, e.reason) from None

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return bytes(self._io(fd, "pread", lambda f: f.read(self.task, size, offset)))

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        return int(self._io(fd, "pwrite", lambda f: f.write(self.task, bytes(data), offset)))

    def read(self, fd: int, size: int) -> bytes:
        return bytes(self._io(fd, "read", lambda f: f.read(self.task, size, None)))

    def write(self, fd: int, data: bytes) -> int:
        return int(self._io(fd, "write", lambda f: f.write(self.task, bytes(data), None)))

    def mmap(self, fd: int, length: int, offset: int, prot: int = _mmap.PROT_READ | _mmap.PROT_WRITE) -> Any:
        return self._io(fd, "mmap", lambda f: f.mmap(self.task, length, offset, prot))
