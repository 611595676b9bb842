"""The iommufd path: ``/dev/iommu`` and the objects it allocates -- IOAS, HWPT, fault queue.

iommufd replaces the container with an object table behind one descriptor.
An :class:`Ioas` is an IO address space (the map of IOVAs to memory); a
:class:`Hwpt` is a hardware page table built from one (made explicitly here,
or implicitly when a device attaches straight to an IOAS); a
:class:`FaultQueue` is a descriptor that delivers I/O page faults.  Devices
join through their cdev: :meth:`Iommufd.device` (or
:meth:`pyvfio.device.Device.from_cdev`) binds and attaches them.

An :class:`Ioas` is an IOMMU context like the legacy
:class:`~pyvfio.container.Container`: both inherit the safe mapping API from
:class:`pyvfio.dma.DmaMapper`, so code that only maps memory runs unchanged on
either backend.  What iommufd adds is reachable too: mapping a memfd by file
(``IOAS_MAP_FILE``, what CPR needs), copying mappings between address spaces,
pinning the allowed IOVA ranges, dirty tracking per page table.

Closing an :class:`Iommufd` closes its devices first (a device holds its page
table), then the fault queues, then forgets the objects: closing the
descriptor destroys them all in the kernel, so no ``IOMMU_DESTROY`` is spent
on them.  Closing one object on its own destroys it (``EBUSY`` while
something still uses it, with the reason in the message).
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from ._resource import Resource
from .device import Device
from .dma import DmaMapper
from .errors import VfioError
from .info import IovaRange, flag_names
from .kernel.base import Kernel
from .uapi import iommufd as ui

__all__ = ["Iommufd", "Ioas", "Hwpt", "FaultQueue", "HwInfo", "PageFault", "U64_MAX"]

U64_MAX = (1 << 64) - 1


def _cmd(cls: type[Any], **fields: Any) -> Any:
    """An iommufd command struct with ``size`` set to the struct's own size."""
    return cls(size=ctypes.sizeof(cls), **fields)


def _fd_read(kernel: Kernel, fd: int, n: int) -> bytes:
    """``read(2)`` through the kernel surface (the simulated kernel has one; the real one is ``os.read``)."""
    reader = getattr(kernel, "read", None)
    return bytes(reader(fd, n)) if reader is not None else os.read(fd, n)


def _fd_write(kernel: Kernel, fd: int, data: bytes) -> int:
    writer = getattr(kernel, "write", None)
    return int(writer(fd, data)) if writer is not None else os.write(fd, data)


@dataclass(frozen=True)
class HwInfo:
    """``IOMMU_GET_HW_INFO`` for a bound device: the IOMMU's type, capabilities and raw driver data."""

    data_type: int
    capabilities: int
    max_pasid_log2: int
    data: bytes

    @property
    def dirty_tracking(self) -> bool:
        return bool(self.capabilities & ui.IOMMU_HW_CAP_DIRTY_TRACKING)

    @property
    def type_name(self) -> str:
        try:
            return ui.iommu_hw_info_type(self.data_type).name.removeprefix("IOMMU_HW_INFO_TYPE_")
        except ValueError:
            return str(self.data_type)

    @property
    def capability_names(self) -> str:
        return flag_names(ui.IommuHwCapabilities, self.capabilities)


@dataclass(frozen=True)
class PageFault:
    """One I/O page fault read from a :class:`FaultQueue` (``struct iommu_hwpt_pgfault``)."""

    flags: int
    dev_id: int
    pasid: int
    grpid: int
    perm: int
    addr: int
    length: int
    cookie: int


class Iommufd(Resource):
    """An open ``/dev/iommu``: allocates IOASes, page tables and fault queues, and binds devices."""

    def __init__(self, kernel: Kernel, *, path: str = "/dev/iommu") -> None:
        super().__init__()
        self.kernel = kernel
        self.path = path
        try:
            self.fd = kernel.open(path)
        except VfioError as e:
            if e.errno == errno.ENOENT:
                raise VfioError(e.errno, e.ioctl, "no /dev/iommu: this kernel lacks CONFIG_IOMMUFD (every Debian "
                                                  "kernel does); use the legacy Container instead", path) from None
            raise
        self._closing = False

    def __repr__(self) -> str:
        if self.closed:
            return "<Iommufd closed>"
        kinds: dict[str, int] = {}
        for c in self._children:
            kinds[type(c).__name__] = kinds.get(type(c).__name__, 0) + 1
        what = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "empty"
        return f"<Iommufd fd {self.fd}: {what}>"

    def _ioctl(self, request: int, arg: Any) -> int:
        self._check_open("run an iommufd command")
        return self.kernel.ioctl(self.fd, request, arg)

    # -- objects ------------------------------------------------------------------------------------------
    def ioas(self) -> "Ioas":
        """``IOMMU_IOAS_ALLOC``: a new, empty IO address space."""
        cmd = _cmd(ui.iommu_ioas_alloc, flags=0)
        self._ioctl(ui.IOMMU_IOAS_ALLOC, cmd)
        ioas = Ioas(self, int(cmd.out_ioas_id))
        self._adopt(ioas)
        return ioas

    def device(self, path: str, *, name: Optional[str] = None,
               attach: Union["Ioas", "Hwpt", int, None] = None) -> Device:
        """Open the cdev at ``path``, bind it here and optionally attach it (see :meth:`Device.from_cdev`)."""
        return Device.from_cdev(self.kernel, path, self, name=name, attach=attach)

    @property
    def devices(self) -> list[Device]:
        return [c for c in self._children if isinstance(c, Device)]

    def hwpt(self, device: Union[Device, int], pt: Union["Ioas", "Hwpt", int], *, flags: int = 0,
             fault: Optional["FaultQueue"] = None, data_type: int = ui.IOMMU_HWPT_DATA_NONE,
             data: bytes = b"") -> "Hwpt":
        """``IOMMU_HWPT_ALLOC``: a page table for ``device`` over an IOAS (or a nested one over a parent HWPT).

        ``flags``: ``IOMMU_HWPT_ALLOC_NEST_PARENT``, ``..._DIRTY_TRACKING``;
        ``fault`` attaches a fault queue (``IOMMU_HWPT_FAULT_ID_VALID``).
        """
        dev_id = device if isinstance(device, int) else device.devid
        pt_id = pt if isinstance(pt, int) else pt.id
        buf = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        cmd = _cmd(ui.iommu_hwpt_alloc, flags=flags | (ui.IOMMU_HWPT_FAULT_ID_VALID if fault is not None else 0),
                   dev_id=dev_id, pt_id=pt_id, data_type=data_type, data_len=len(data),
                   data_uptr=ctypes.addressof(buf) if data else 0, fault_id=fault.id if fault is not None else 0)
        try:
            self._ioctl(ui.IOMMU_HWPT_ALLOC, cmd)
        except VfioError as e:
            if e.errno == errno.EOPNOTSUPP and flags & ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING:
                raise VfioError(e.errno, e.ioctl, "the device's IOMMU cannot track dirty pages (see "
                                                  "hw_info(device).dirty_tracking)" + (f": {e.reason}" if e.reason
                                                                                       else "")) from None
            raise
        hwpt = Hwpt(self, int(cmd.out_hwpt_id), pt=pt, flags=flags, fault=fault)
        self._adopt(hwpt)
        return hwpt

    def fault_queue(self) -> "FaultQueue":
        """``IOMMU_FAULT_QUEUE_ALLOC``: an object id for HWPT_ALLOC and a descriptor that delivers page faults."""
        cmd = _cmd(ui.iommu_fault_alloc, flags=0)
        self._ioctl(ui.IOMMU_FAULT_QUEUE_ALLOC, cmd)
        try:
            q = FaultQueue(self, int(cmd.out_fault_id), int(cmd.out_fault_fd))
        except BaseException:
            self.kernel.close(int(cmd.out_fault_fd))
            raise
        self._adopt(q)
        return q

    def destroy(self, obj_id: int) -> None:
        """``IOMMU_DESTROY`` by id (objects made through this class destroy themselves on close)."""
        try:
            self._ioctl(ui.IOMMU_DESTROY, _cmd(ui.iommu_destroy, id=obj_id))
        except VfioError as e:
            hint = {errno.EBUSY: f"object {obj_id} is still in use (a device attached to it, or a page table "
                                 "built on it): detach or destroy the users first",
                    errno.ENOENT: f"no object has id {obj_id}"}.get(e.errno or 0)
            if hint is None:
                raise
            raise VfioError(e.errno or 0, e.ioctl, hint) from None

    # -- context-wide commands ------------------------------------------------------------------------------
    def hw_info(self, device: Union[Device, int]) -> HwInfo:
        """``IOMMU_GET_HW_INFO``: asks the data length first (``data_len = 0``), then the data."""
        dev_id = device if isinstance(device, int) else device.devid
        probe = _cmd(ui.iommu_hw_info, dev_id=dev_id, data_len=0, data_uptr=0)
        self._ioctl(ui.IOMMU_GET_HW_INFO, probe)
        n = int(probe.data_len)
        data = b""
        if n:
            buf = ctypes.create_string_buffer(n)
            cmd = _cmd(ui.iommu_hw_info, dev_id=dev_id, data_len=n, data_uptr=ctypes.addressof(buf))
            self._ioctl(ui.IOMMU_GET_HW_INFO, cmd)
            probe, data = cmd, buf.raw[: int(cmd.data_len)]
        return HwInfo(int(probe.out_data_type), int(probe.out_capabilities), int(probe.out_max_pasid_log2), data)

    def option(self, option_id: int, value: Optional[int] = None, *, object_id: int = 0) -> int:
        """``IOMMU_OPTION``: GET when ``value`` is None, else SET; returns the (new) value."""
        op = ui.IOMMU_OPTION_OP_GET if value is None else ui.IOMMU_OPTION_OP_SET
        cmd = _cmd(ui.iommu_option, option_id=option_id, op=op, object_id=object_id, val64=value or 0)
        self._ioctl(ui.IOMMU_OPTION, cmd)
        return int(cmd.val64)

    @property
    def rlimit_mode(self) -> int:
        """1: pinned memory is charged to the process; 0: to the user."""
        return self.option(ui.IOMMU_OPTION_RLIMIT_MODE)

    def change_process(self) -> None:
        """``IOMMU_IOAS_CHANGE_PROCESS``: charge every mapping to this process (CPR); only file maps may exist."""
        try:
            self._ioctl(ui.IOMMU_IOAS_CHANGE_PROCESS, _cmd(ui.iommu_ioas_change_process))
        except VfioError as e:
            if e.errno == errno.EINVAL:
                raise VfioError(e.errno, e.ioctl, "a mapping by user address exists; only IOAS_MAP_FILE mappings "
                                                  "(map(..., by_file=True)) can change process") from None
            raise

    def vfio_ioas(self, op: int = ui.IOMMU_VFIO_IOAS_GET, ioas: Union["Ioas", int, None] = None) -> int:
        """``IOMMU_VFIO_IOAS``: get, set or clear the IOAS that legacy groups attached here use."""
        ioas_id = 0 if ioas is None else ioas if isinstance(ioas, int) else ioas.id
        cmd = _cmd(ui.iommu_vfio_ioas, ioas_id=ioas_id, op=op)
        self._ioctl(ui.IOMMU_VFIO_IOAS, cmd)
        return int(cmd.ioas_id)

    # -- closing ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the devices (they hold their page tables), then everything else, then the descriptor."""
        if self.closed:
            return
        self._closing = True
        first: Optional[BaseException] = None
        for dev in reversed(self.devices):
            try:
                dev.close()
            except Exception as e:
                first = first or e
        try:
            Resource.close(self)
        except Exception as e:
            first = first or e
        if first is not None:
            raise first

    def _close_self(self) -> None:
        self.kernel.close(self.fd)


class _IommufdObject(Resource):
    """An object of the iommufd table: an ``id``, destroyed with ``IOMMU_DESTROY`` when closed on its own."""

    kind = "object"

    def __init__(self, iommufd: Iommufd, obj_id: int) -> None:
        super().__init__()
        self.iommufd = iommufd
        self.kernel = iommufd.kernel
        self.id = obj_id

    def _close_self(self) -> None:
        if not self.iommufd._closing and not self.iommufd.closed:
            self.iommufd.destroy(self.id)


class Ioas(DmaMapper, _IommufdObject):
    """An IO address space: map memory into it, attach devices (or page tables) to it.

    ``map(buf)``/``dma(size)`` (from :class:`~pyvfio.dma.DmaMapper`) pick the
    IOVA with pyvfio's allocator inside :meth:`iova_ranges`; :meth:`map_user`
    and :meth:`map_file` also let the kernel choose (``iova=None``).
    """

    kind = "IOAS"

    def __init__(self, iommufd: Iommufd, ioas_id: int) -> None:
        _IommufdObject.__init__(self, iommufd, ioas_id)
        DmaMapper.__init__(self)
        self._alignment: Optional[int] = None

    def __repr__(self) -> str:
        if self.closed:
            return f"<Ioas {self.id} closed>"
        return f"<Ioas {self.id} in iommufd fd {self.iommufd.fd}, {len(self._mappings)} mapping(s)>"

    def _ioctl(self, request: int, arg: Any) -> int:
        self._check_open("use the IOAS")
        return self.iommufd._ioctl(request, arg)

    # -- ranges ---------------------------------------------------------------------------------------------
    def iova_ranges(self) -> list[IovaRange]:
        """``IOMMU_IOAS_IOVA_RANGES`` (grown and asked again on ``EMSGSIZE``); also updates the alignment."""
        room = 8
        for _ in range(4):
            arr = (ui.iommu_iova_range * room)()
            cmd = _cmd(ui.iommu_ioas_iova_ranges, ioas_id=self.id, num_iovas=room,
                       allowed_iovas=ctypes.addressof(arr))
            try:
                self._ioctl(ui.IOMMU_IOAS_IOVA_RANGES, cmd)
            except VfioError as e:
                if e.errno == errno.EMSGSIZE and int(cmd.num_iovas) > room:
                    room = int(cmd.num_iovas)
                    continue
                raise
            self._alignment = int(cmd.out_iova_alignment) or 1
            return [IovaRange(int(r.start), int(r.last)) for r in arr[: int(cmd.num_iovas)]]
        raise VfioError(errno.EMSGSIZE, "IOMMU_IOAS_IOVA_RANGES", "the range count kept growing")

    @property
    def iova_alignment(self) -> int:
        """``out_iova_alignment``: every mapping's start and length must be a multiple of it."""
        if self._alignment is None:
            self.iova_ranges()
        return self._alignment or 1

    def allow_iovas(self, ranges: Sequence[Union[IovaRange, tuple[int, int]]]) -> None:
        """``IOMMU_IOAS_ALLOW_IOVAS``: only these (inclusive) ranges may be used, now and after later attaches."""
        rs = [r if isinstance(r, IovaRange) else IovaRange(r[0], r[1]) for r in ranges]
        arr = (ui.iommu_iova_range * max(len(rs), 1))()
        for i, r in enumerate(rs):
            arr[i].start, arr[i].last = r.start, r.last
        cmd = _cmd(ui.iommu_ioas_allow_iovas, ioas_id=self.id, num_iovas=len(rs), allowed_iovas=ctypes.addressof(arr))
        self._ioctl(ui.IOMMU_IOAS_ALLOW_IOVAS, cmd)

    # -- map/unmap --------------------------------------------------------------------------------------------
    @staticmethod
    def _flags(readable: bool, writable: bool, fixed: bool) -> int:
        return ((ui.IOMMU_IOAS_MAP_READABLE if readable else 0) | (ui.IOMMU_IOAS_MAP_WRITEABLE if writable else 0)
                | (ui.IOMMU_IOAS_MAP_FIXED_IOVA if fixed else 0))

    def map_user(self, vaddr: int, length: int, iova: Optional[int] = None, *, readable: bool = True,
                 writable: bool = True) -> int:
        """``IOMMU_IOAS_MAP`` of user memory; the kernel picks the IOVA when ``iova`` is None.  Returns the IOVA.

        The range is recorded in this IOAS's allocator either way, so later
        ``map(buf)`` calls never collide with it.
        """
        cmd = _cmd(ui.iommu_ioas_map, flags=self._flags(readable, writable, iova is not None), ioas_id=self.id,
                   user_va=vaddr, length=length, iova=iova or 0)
        self._ioctl(ui.IOMMU_IOAS_MAP, cmd)
        got = int(cmd.iova)
        if iova is None:
            self.iova_allocator.reserve(got, length)
        return got

    def map_file(self, fd: int, start: int, length: int, iova: Optional[int] = None, *, readable: bool = True,
                 writable: bool = True) -> int:
        """``IOMMU_IOAS_MAP_FILE``: map ``length`` bytes of file ``fd`` (a memfd) from offset ``start``."""
        cmd = _cmd(ui.iommu_ioas_map_file, flags=self._flags(readable, writable, iova is not None),
                   ioas_id=self.id, fd=fd, start=start, length=length, iova=iova or 0)
        try:
            self._ioctl(ui.IOMMU_IOAS_MAP_FILE, cmd)
        except VfioError as e:
            if e.errno == errno.ENOTTY:
                raise VfioError(e.errno, e.ioctl, "IOMMU_IOAS_MAP_FILE needs Linux 6.13 or later") from None
            raise
        got = int(cmd.iova)
        if iova is None:
            self.iova_allocator.reserve(got, length)
        return got

    def map_dma(self, vaddr: int, iova: int, size: int, *, readable: bool = True, writable: bool = True) -> None:
        """Map user memory at a fixed IOVA (the primitive :meth:`map` uses)."""
        cmd = _cmd(ui.iommu_ioas_map, flags=self._flags(readable, writable, True), ioas_id=self.id, user_va=vaddr,
                   length=size, iova=iova)
        self._ioctl(ui.IOMMU_IOAS_MAP, cmd)

    def _map_file(self, fd: int, start: int, iova: int, size: int, *, readable: bool, writable: bool) -> None:
        cmd = _cmd(ui.iommu_ioas_map_file, flags=self._flags(readable, writable, True), ioas_id=self.id, fd=fd,
                   start=start, length=size, iova=iova)
        self._ioctl(ui.IOMMU_IOAS_MAP_FILE, cmd)

    def unmap_dma(self, iova: int, size: int) -> int:
        """``IOMMU_IOAS_UNMAP``: whole mappings only (``ENOENT`` otherwise); returns the bytes unmapped."""
        cmd = _cmd(ui.iommu_ioas_unmap, ioas_id=self.id, iova=iova, length=size)
        self._ioctl(ui.IOMMU_IOAS_UNMAP, cmd)
        self._unmapped(iova, size + (1 if size == U64_MAX else 0))  # U64_MAX with iova 0 means everything
        return int(cmd.length)

    def unmap_all(self) -> int:
        """Empty the IOAS (``iova = 0``, ``length = U64_MAX``); every mapping object becomes unmapped."""
        return self.unmap_dma(0, U64_MAX)

    def copy_from(self, src: "Ioas", src_iova: int, length: int, dst_iova: Optional[int] = None, *,
                  readable: bool = True, writable: bool = True) -> int:
        """``IOMMU_IOAS_COPY``: map the pages of ``src``'s range here too (at ``dst_iova``, or one the kernel picks)."""
        cmd = _cmd(ui.iommu_ioas_copy, flags=self._flags(readable, writable, dst_iova is not None),
                   dst_ioas_id=self.id, src_ioas_id=src.id, length=length, dst_iova=dst_iova or 0, src_iova=src_iova)
        self._ioctl(ui.IOMMU_IOAS_COPY, cmd)
        got = int(cmd.dst_iova)
        self.iova_allocator.reserve(got, length)
        return got

    @property
    def huge_pages(self) -> bool:
        return bool(self.iommufd.option(ui.IOMMU_OPTION_HUGE_PAGES, object_id=self.id))

    @huge_pages.setter
    def huge_pages(self, enable: bool) -> None:
        self.iommufd.option(ui.IOMMU_OPTION_HUGE_PAGES, int(enable), object_id=self.id)
        self._alignment = None

    def _close_self(self) -> None:
        try:
            _IommufdObject._close_self(self)  # IOMMU_DESTROY unmaps everything (or the iommufd's close does)
        finally:
            self._release_mappings(ioctl=False)


class Hwpt(_IommufdObject):
    """A hardware page table (``IOMMU_HWPT_ALLOC``) over an IOAS, or nested over a parent page table."""

    kind = "HWPT"

    def __init__(self, iommufd: Iommufd, hwpt_id: int, *, pt: Any, flags: int, fault: Optional["FaultQueue"]) -> None:
        super().__init__(iommufd, hwpt_id)
        self.pt = pt
        self.flags = flags
        self.fault = fault

    def __repr__(self) -> str:
        if self.closed:
            return f"<Hwpt {self.id} closed>"
        over = f"IOAS {self.pt.id}" if isinstance(self.pt, Ioas) else f"pt {getattr(self.pt, 'id', self.pt)}"
        return f"<Hwpt {self.id} over {over} {flag_names(ui.IommuHwptAllocFlags, self.flags)}>"

    def set_dirty_tracking(self, enable: bool) -> None:
        """``IOMMU_HWPT_SET_DIRTY_TRACKING`` (the HWPT must be allocated with ``..._DIRTY_TRACKING``)."""
        self._check_open("track dirty pages")
        cmd = _cmd(ui.iommu_hwpt_set_dirty_tracking, hwpt_id=self.id,
                   flags=ui.IOMMU_HWPT_DIRTY_TRACKING_ENABLE if enable else 0)
        self.iommufd._ioctl(ui.IOMMU_HWPT_SET_DIRTY_TRACKING, cmd)

    def dirty_bitmap(self, iova: int, length: int, page_size: int = 4096, *, clear: bool = True) -> bytes:
        """``IOMMU_HWPT_GET_DIRTY_BITMAP``: bit n set = page ``iova + n * page_size`` was written.

        The read clears the IOMMU's dirty state unless ``clear`` is False (``..._NO_CLEAR``).
        """
        self._check_open("read dirty pages")
        npages = (length + page_size - 1) // page_size
        bitmap = (ctypes.c_uint64 * max((npages + 63) // 64, 1))()
        cmd = _cmd(ui.iommu_hwpt_get_dirty_bitmap, hwpt_id=self.id, iova=iova, length=length, page_size=page_size,
                   flags=0 if clear else ui.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, data=ctypes.addressof(bitmap))
        self.iommufd._ioctl(ui.IOMMU_HWPT_GET_DIRTY_BITMAP, cmd)
        return bytes(bitmap)[: (npages + 7) // 8]


class FaultQueue(_IommufdObject):
    """A page-fault queue: ``id`` for ``IOMMU_HWPT_ALLOC`` and ``fd`` to read faults and write responses."""

    kind = "FAULT"

    def __init__(self, iommufd: Iommufd, fault_id: int, fd: int) -> None:
        super().__init__(iommufd, fault_id)
        self.fd = fd

    def __repr__(self) -> str:
        return f"<FaultQueue {self.id} closed>" if self.closed else f"<FaultQueue {self.id} fd {self.fd}>"

    def read(self, max_faults: int = 16) -> list[PageFault]:
        """The faults pending now (the descriptor never blocks when empty: poll ``fd`` to wait)."""
        self._check_open("read faults")
        size = ctypes.sizeof(ui.iommu_hwpt_pgfault)
        raw = _fd_read(self.kernel, self.fd, size * max_faults)
        out = []
        for off in range(0, len(raw) - len(raw) % size, size):
            f = ui.iommu_hwpt_pgfault.from_buffer_copy(raw, off)
            out.append(PageFault(int(f.flags), int(f.dev_id), int(f.pasid), int(f.grpid), int(f.perm), int(f.addr),
                                 int(f.length), int(f.cookie)))
        return out

    def respond(self, cookie: int, code: int = ui.IOMMUFD_PAGE_RESP_SUCCESS) -> None:
        """Answer a fault group (the cookie of its last fault): SUCCESS retries the access, INVALID fails it."""
        self._check_open("respond")
        resp = ui.iommu_hwpt_page_response(cookie=cookie, code=code)
        _fd_write(self.kernel, self.fd, bytes(resp))

    def _close_self(self) -> None:
        try:
            self.kernel.close(self.fd)  # first: the open descriptor holds the object (DESTROY would be EBUSY)
        finally:
            _IommufdObject._close_self(self)
