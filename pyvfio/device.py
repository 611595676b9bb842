"""A VFIO device and what a VMM or a userspace driver does with it: regions, interrupts, resets, features.

A :class:`Device` owns one device descriptor, obtained either way the kernel
offers:

* through an IOMMU group attached to a type1 container
  (:meth:`pyvfio.container.Group.device`, ``VFIO_GROUP_GET_DEVICE_FD``), or
* through its character device ``/dev/vfio/devices/vfioN``, bound to an
  iommufd (:meth:`Device.from_cdev`, ``VFIO_DEVICE_BIND_IOMMUFD``) and then
  attached to an IOAS or page table (:meth:`Device.attach`).

Everything after that is the same ioctls on the same descriptor, so the rest
of this class does not care which path opened it -- the model is QEMU's
``VFIODevice``, which ``hw/vfio/device.c`` fills the same way for both
backends.  Regions (:class:`Region`) are read and written through the
descriptor or mmapped; a region with a sparse-mmap capability is mapped one
window at a time and the holes are served by ``pread``/``pwrite``, as QEMU's
``vfio_region_mmap`` does, behind one :class:`RegionMapping` object whether
the kernel is real (a memoryview over the mapping) or simulated (a window
that traps every access).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap as _mmap
import struct as _struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence, TypeVar, Union

from .kernel.mmio import MmioWindow, WidthAccess
from ._resource import Resource
from .errors import VfioError
from .info import (
    DOMAIN_DEVICE, DOMAIN_REGION, Cap, Info, MsixMappableCap, RegionTypeCap, SparseMmapCap, flag_names, query_info,
)
from .kernel.base import Kernel
from .uapi import vfio as uv
from .uapi.struct import alloc_flex, flex_array

if TYPE_CHECKING:
    from .container import Group
    from .iommufd import Hwpt, Ioas, Iommufd

__all__ = ["Device", "DeviceInfo", "Region", "RegionMapping", "IrqInfo", "HotResetInfo", "DependentDevice",
           "REGION_NAMES", "IRQ_NAMES", "FEATURE_NAMES"]

log = logging.getLogger("pyvfio.device")

_C = TypeVar("_C", bound=Cap)

PAGE_SIZE = _mmap.PAGESIZE
_RW = _mmap.PROT_READ | _mmap.PROT_WRITE

#: Names of the fixed vfio-pci region indexes.
REGION_NAMES = {0: "BAR0", 1: "BAR1", 2: "BAR2", 3: "BAR3", 4: "BAR4", 5: "BAR5", 6: "ROM", 7: "CONFIG",
                8: "VGA"}
#: Names of the vfio-pci IRQ indexes.
IRQ_NAMES = {0: "INTx", 1: "MSI", 2: "MSI-X", 3: "ERR", 4: "REQ"}
#: Names of the ``VFIO_DEVICE_FEATURE`` ids.
FEATURE_NAMES = {int(f): f.name for f in uv.VfioDeviceFeature}


# ---------------------------------------------------------------------------------------------------------
# small value types


@dataclass(frozen=True)
class DeviceInfo:
    """``VFIO_DEVICE_GET_INFO``: the bus and abilities of the device, and how many regions and IRQ indexes it has."""

    flags: int
    num_regions: int
    num_irqs: int
    caps: tuple[Cap, ...] = ()

    @property
    def is_pci(self) -> bool:
        return bool(self.flags & uv.VFIO_DEVICE_FLAGS_PCI)

    @property
    def reset_supported(self) -> bool:
        """``VFIO_DEVICE_RESET`` works (the function has FLR, a PM reset, or is alone behind a bridge)."""
        return bool(self.flags & uv.VFIO_DEVICE_FLAGS_RESET)

    @property
    def flag_names(self) -> str:
        return flag_names(uv.VfioDeviceFlag, self.flags)


@dataclass(frozen=True)
class IrqInfo:
    """``VFIO_DEVICE_GET_IRQ_INFO`` for one index: how many vectors and how they can be driven."""

    index: int
    flags: int
    count: int

    @property
    def name(self) -> str:
        return IRQ_NAMES.get(self.index, f"IRQ index {self.index}")

    @property
    def eventfd(self) -> bool:
        return bool(self.flags & uv.VFIO_IRQ_INFO_EVENTFD)

    @property
    def maskable(self) -> bool:
        return bool(self.flags & uv.VFIO_IRQ_INFO_MASKABLE)

    @property
    def automasked(self) -> bool:
        """Level-triggered: the kernel masks it when it fires; the user unmasks after servicing."""
        return bool(self.flags & uv.VFIO_IRQ_INFO_AUTOMASKED)

    @property
    def noresize(self) -> bool:
        """Vectors are enabled as one set: adding one means disabling the index and enabling it again."""
        return bool(self.flags & uv.VFIO_IRQ_INFO_NORESIZE)

    @property
    def flag_names(self) -> str:
        return flag_names(uv.VfioIrqInfoFlag, self.flags)


@dataclass(frozen=True)
class DependentDevice:
    """A device a hot reset also resets: its PCI address and who owns it (group id, or devid for a cdev user)."""

    segment: int
    bus: int
    devfn: int
    group_id: int  # the IOMMU group, or the iommufd devid when ``by_devid``
    by_devid: bool

    @property
    def address(self) -> str:
        return f"{self.segment:04x}:{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7}"

    @property
    def devid(self) -> int:
        return self.group_id

    @property
    def owned(self) -> bool:
        """For a cdev user: the caller owns it (its devid, or VFIO_PCI_DEVID_OWNED); group users must check fds."""
        return not self.by_devid or self.group_id != uv.VFIO_PCI_DEVID_NOT_OWNED & 0xFFFFFFFF


@dataclass(frozen=True)
class HotResetInfo:
    """``VFIO_DEVICE_GET_PCI_HOT_RESET_INFO``: what a bus/slot reset of this device would touch."""

    flags: int
    devices: tuple[DependentDevice, ...]

    @property
    def all_owned(self) -> bool:
        return bool(self.flags & uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED)


# ---------------------------------------------------------------------------------------------------------
# regions


class _Area:
    """One mmapped window of a region: ``start``/``size`` relative to the region, and the kernel's mapping."""

    def __init__(self, start: int, size: int, raw: Any) -> None:
        self.start = start
        self.size = size
        self.raw = raw
        # a real mapping is reached by address for single-width MMIO loads/stores; the sim's traps every access
        self.base: Optional[int] = None
        if isinstance(raw, _mmap.mmap):
            self.base = ctypes.addressof(ctypes.c_char.from_buffer(raw))

    def close(self) -> None:
        self.base = None
        self.raw.close()


_WIDTH = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}


class RegionMapping(MmioWindow):
    """An mmap of (part of) a region with one interface on both kernels.

    Indexing and slicing (``m[0:4]``, ``m[0x10:0x14] = data``),
    :meth:`read`/:meth:`write` and the fixed-width helpers
    (:meth:`read32`, :meth:`write32`, ...) work on the real kernel's mapping and
    on the simulated kernel's trapping window alike.  A naturally aligned 1, 2,
    4 or 8-byte access is issued as one load or store of that width, which is
    what device registers need.  Offsets that fall in a hole of a sparse
    region (no mmap allowed there, usually the MSI-X table) go through
    ``pread``/``pwrite`` on the device instead.  :attr:`view` gives the raw
    memoryview when the kernel is real and the mapping is one window.
    """

    def __init__(self, region: "Region", offset: int, length: int, areas: list[_Area]) -> None:
        self.region = region
        self.offset = offset
        self.length = length
        self._areas = areas
        self._view: Optional[memoryview] = None
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._areas)} window(s)"
        return f"<RegionMapping {self.region.name} +{self.offset:#x} len {self.length:#x} {state}>"

    def __len__(self) -> int:
        return self.length

    @property
    def windows(self) -> list[tuple[int, int]]:
        """The mmapped windows as ``(offset, size)`` relative to the start of this mapping."""
        return [(a.start - self.offset, a.size) for a in self._areas]

    @property
    def has_view(self) -> bool:
        return (not self.closed and len(self._areas) == 1 and self._areas[0].base is not None
                and self._areas[0].start == self.offset and self._areas[0].size == self.length)

    @property
    def view(self) -> memoryview:
        """The mapping as a writable memoryview (real kernel, one window covering it all)."""
        if self.closed:
            raise ValueError("the region mapping is closed")
        if not self.has_view:
            why = ("the simulated kernel's mapping traps every access" if self._areas and self._areas[0].base is None
                   else "the region is sparse: its mapping has holes")
            raise TypeError(f"{self.region.name}: no memoryview ({why}); use read/write, slicing or read32")
        if self._view is None:
            self._view = memoryview(self._areas[0].raw)
        return self._view

    def _area(self, off: int, size: int) -> Optional[_Area]:
        if self.closed:
            raise ValueError("the region mapping is closed")
        if off < 0 or size < 0 or off + size > self.length:
            raise IndexError(f"{size} bytes at {off:#x} are outside the {self.length:#x}-byte mapping")
        pos = self.offset + off
        for a in self._areas:
            if a.start <= pos and pos + size <= a.start + a.size:
                return a
        return None

    def read(self, off: int, size: int) -> bytes:
        a = self._area(off, size)
        if a is None:  # a hole of a sparse region: the slow path through the descriptor
            return self.region.read(self.offset + off, size)
        rel = self.offset + off - a.start
        if a.base is None:
            return bytes(a.raw.read(rel, size))
        if size in _WIDTH and rel % size == 0:
            return int(_WIDTH[size].from_address(a.base + rel).value).to_bytes(size, "little")
        return bytes(a.raw[rel: rel + size])

    def write(self, off: int, data: bytes) -> None:
        data = bytes(data)
        a = self._area(off, len(data))
        if a is None:
            self.region.write(self.offset + off, data)
            return
        rel = self.offset + off - a.start
        if a.base is None:
            a.raw.write(rel, data)
        elif len(data) in _WIDTH and rel % len(data) == 0:
            _WIDTH[len(data)].from_address(a.base + rel).value = int.from_bytes(data, "little")
        else:
            a.raw[rel: rel + len(data)] = data

    def close(self) -> None:
        """Unmap every window.  ``BufferError`` if a memoryview of it is still alive (a dangling view would crash)."""
        if self.closed:
            return
        if self._view is not None:
            self._view.release()
            self._view = None
        first: Optional[BaseException] = None
        for a in self._areas:
            try:
                a.close()
            except BufferError:
                first = first or BufferError(f"{self!r}: views taken from .view are still alive; release them "
                                             "before closing")
        self.closed = True
        if self in self.region._mappings:
            self.region._mappings.remove(self)
        if first is not None:
            raise first


class Region(WidthAccess, Resource):
    """One region of a device (a BAR, the ROM, config space, a device-specific region), read from REGION_INFO.

    ``offset`` is where the region starts in the device descriptor; ``read``
    and ``write`` take offsets relative to the region and are bounds-checked
    against ``size`` before they reach the kernel.
    """

    def __init__(self, device: "Device", index: int) -> None:
        super().__init__()
        self.device = device
        self.index = index
        got = query_info(device.kernel, device.fd, uv.VFIO_DEVICE_GET_REGION_INFO, uv.vfio_region_info,
                         domain=DOMAIN_REGION, ioctl="VFIO_DEVICE_GET_REGION_INFO", index=index)
        self.info: uv.vfio_region_info = got.struct
        self.caps: tuple[Cap, ...] = got.caps
        self.flags = int(got.struct.flags)
        self.size = int(got.struct.size)
        self.offset = int(got.struct.offset)
        self._mappings: list[RegionMapping] = []

    @property
    def name(self) -> str:
        if self.index in REGION_NAMES:
            return REGION_NAMES[self.index]
        t = self.cap(RegionTypeCap)
        return f"region {self.index}" + (f" ({t.describe()})" if t is not None else "")

    def __repr__(self) -> str:
        state = " closed" if self.closed else (f", {len(self._mappings)} mmap(s)" if self._mappings else "")
        return (f"<Region {self.name} size {self.size:#x} at {self.offset:#x} "
                f"{flag_names(uv.VfioRegionInfoFlag, self.flags)}{state}>")

    def cap(self, kind: type[_C]) -> Optional[_C]:
        """The region's first capability of type ``kind`` (``SparseMmapCap``...), or None."""
        for c in self.caps:
            if isinstance(c, kind):
                return c
        return None

    @property
    def readable(self) -> bool:
        return bool(self.flags & uv.VFIO_REGION_INFO_FLAG_READ)

    @property
    def writable(self) -> bool:
        return bool(self.flags & uv.VFIO_REGION_INFO_FLAG_WRITE)

    @property
    def mmappable(self) -> bool:
        return bool(self.flags & uv.VFIO_REGION_INFO_FLAG_MMAP)

    @property
    def mmap_areas(self) -> list[tuple[int, int]]:
        """Where mmap is allowed, as ``(offset, size)`` in the region: the sparse areas, or all of it.

        Empty when the region cannot be mmapped.  ``MSIX_MAPPABLE`` means the
        whole BAR, MSI-X table included, may be mapped.
        """
        if not self.mmappable or not self.size:
            return []
        sparse = self.cap(SparseMmapCap)
        if sparse is not None and self.cap(MsixMappableCap) is None:
            return [(o, s) for o, s in sparse.areas if s]
        return [(0, self.size)]

    def _bounds(self, call: str, offset: int, size: int) -> None:
        self._check_open(call)
        if offset < 0 or size < 0 or offset + size > self.size:
            raise VfioError(errno.EINVAL, call, f"{self.device.label}: {size} bytes at {offset:#x} are outside "
                                                f"{self.name} ({self.size:#x} bytes)")

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of the region, through ``pread`` (short reads are continued)."""
        self._bounds("pread", offset, size)
        if not self.readable:
            raise VfioError(errno.EINVAL, "pread", f"{self.device.label}: {self.name} is not readable")
        out = b""
        while len(out) < size:
            chunk = self.device.kernel.pread(self.device.fd, size - len(out), self.offset + offset + len(out))
            if not chunk:
                raise VfioError(errno.EIO, "pread", f"{self.device.label}: {self.name} ended at "
                                                    f"{offset + len(out):#x}")
            out += bytes(chunk)
        return out

    def write(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of the region, through ``pwrite``; returns the byte count."""
        self._bounds("pwrite", offset, len(data))
        if not self.writable:
            raise VfioError(errno.EINVAL, "pwrite", f"{self.device.label}: {self.name} is not writable")
        done = 0
        while done < len(data):
            n = self.device.kernel.pwrite(self.device.fd, bytes(data[done:]), self.offset + offset + done)
            if n <= 0:
                raise VfioError(errno.EIO, "pwrite", f"{self.device.label}: {self.name} took nothing at "
                                                     f"{offset + done:#x}")
            done += n
        return done

    def mmap(self, offset: int = 0, length: Optional[int] = None, prot: int = _RW) -> RegionMapping:
        """Map ``length`` bytes from ``offset`` (default: the whole region), one kernel mmap per allowed window.

        ``offset`` must be page-aligned.  Parts of the range outside every
        sparse area stay unmapped and are served through the descriptor.
        """
        self._check_open("mmap")
        if length is None:
            length = self.size - offset
        if not self.mmappable:
            raise VfioError(errno.EINVAL, "mmap", f"{self.device.label}: {self.name} does not allow mmap "
                                                  f"(flags {flag_names(uv.VfioRegionInfoFlag, self.flags)})")
        if offset % PAGE_SIZE or length <= 0 or offset + length > self.size:
            raise VfioError(errno.EINVAL, "mmap", f"{self.device.label}: {length:#x} bytes at {offset:#x} of "
                                                  f"{self.name} ({self.size:#x} bytes): the start must be "
                                                  "page-aligned and the range inside the region")
        areas: list[_Area] = []
        try:
            for a_off, a_size in self.mmap_areas:
                start = max(a_off, offset)
                end = min(a_off + a_size, offset + length)
                if start >= end:
                    continue
                start = start // PAGE_SIZE * PAGE_SIZE
                raw = self.device.kernel.mmap(self.device.fd, end - start, self.offset + start, prot)
                areas.append(_Area(start, end - start, raw))
        except BaseException:
            for area in areas:
                area.close()
            raise
        m = RegionMapping(self, offset, length, areas)
        self._mappings.append(m)
        return m

    def _close_self(self) -> None:
        first: Optional[BaseException] = None
        for m in list(self._mappings):
            try:
                m.close()
            except BufferError as e:
                first = first or e
        if first is not None:
            raise first


# ---------------------------------------------------------------------------------------------------------
# the device


class Device(Resource):
    """An open VFIO device: ``fd`` and ``kernel``, plus the operations of ``VFIO_DEVICE_*``.

    Build it through :meth:`pyvfio.container.Group.device` (group path) or
    :meth:`Device.from_cdev` (cdev + iommufd path); the group or the iommufd
    then owns it and closes it first when it closes, but closing it earlier
    (or using it as a ``with`` block) is fine.
    """

    def __init__(self, kernel: Kernel, fd: int, *, name: Optional[str] = None, via_cdev: bool = False,
                 group: Optional["Group"] = None, iommufd: Optional["Iommufd"] = None, devid: int = 0,
                 path: Optional[str] = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.fd = fd
        self.name = name
        self.path = path
        self.via_cdev = via_cdev
        self.group = group
        self.iommufd = iommufd
        self.devid = devid
        self.hwpt_id = 0  # the page table the device is attached to (cdev path), 0 when not attached
        self.attached_to: Any = None
        self._info: Optional[DeviceInfo] = None
        self._regions: dict[int, Region] = {}

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_cdev(cls, kernel: Kernel, path: str, iommufd: "Iommufd", *, name: Optional[str] = None,
                  attach: Union["Ioas", "Hwpt", int, None] = None) -> "Device":
        """Open ``/dev/vfio/devices/vfioN``, bind it to ``iommufd`` and (with ``attach``) attach it.

        The iommufd adopts the device.  On any failure the cdev is closed again.
        """
        iommufd._check_open("open a device")
        fd = kernel.open(path)
        try:
            bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), flags=0,
                                               iommufd=iommufd.fd)
            try:
                kernel.ioctl(fd, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)
            except VfioError as e:
                raise _explain_bind(e, path) from None
            dev = cls(kernel, fd, name=name, via_cdev=True, iommufd=iommufd, devid=int(bind.out_devid), path=path)
        except BaseException:
            kernel.close(fd)
            raise
        iommufd._adopt(dev)
        if attach is not None:
            try:
                dev.attach(attach)
            except BaseException:
                dev.close()
                raise
        return dev

    @classmethod
    def from_group(cls, group: "Group", name: str) -> "Device":
        """``group.device(name)``: the device through its (attached) group."""
        return group.device(name)

    @property
    def label(self) -> str:
        """How messages name the device: its PCI name, else its cdev path, else its fd."""
        return self.name or self.path or f"device fd {self.fd}"

    def __repr__(self) -> str:
        if self.closed:
            return f"<Device {self.label} closed>"
        how = (f"cdev, devid {self.devid}" + (f", hwpt {self.hwpt_id}" if self.hwpt_id else ", not attached")
               if self.via_cdev else f"group {self.group.id}" if self.group is not None else "fd")
        return f"<Device {self.label} fd {self.fd} ({how})>"

    def _close_self(self) -> None:
        self.kernel.close(self.fd)

    # -- cdev attach --------------------------------------------------------------------------------------
    def attach(self, pt: Union["Ioas", "Hwpt", int]) -> int:
        """``VFIO_DEVICE_ATTACH_IOMMUFD_PT``: attach (or re-attach, replacing) to an IOAS or a HWPT.

        Returns the page table id the kernel reports: for an IOAS, the
        automatically chosen or created HWPT.
        """
        self._check_open("attach")
        if not self.via_cdev:
            raise VfioError(errno.EINVAL, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", f"{self.label} was opened through its "
                                                                           "group: it uses the container's IOMMU")
        pt_id = pt if isinstance(pt, int) else int(pt.id)
        arg = uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt), flags=0,
                                               pt_id=pt_id)
        self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg)
        self.hwpt_id = int(arg.pt_id)
        self.attached_to = pt
        return self.hwpt_id

    def detach(self) -> None:
        """``VFIO_DEVICE_DETACH_IOMMUFD_PT``: the device's DMA is blocked until it is attached again."""
        self._check_open("detach")
        arg = uv.vfio_device_detach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_detach_iommufd_pt), flags=0)
        self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_DETACH_IOMMUFD_PT, arg)
        self.hwpt_id = 0
        self.attached_to = None

    # -- info and regions ---------------------------------------------------------------------------------
    @property
    def info(self) -> DeviceInfo:
        """``VFIO_DEVICE_GET_INFO`` with its capability chain (asked once; the answer does not change)."""
        if self._info is None:
            self._check_open("get info")
            got: Info[uv.vfio_device_info] = query_info(self.kernel, self.fd, uv.VFIO_DEVICE_GET_INFO,
                                                        uv.vfio_device_info, domain=DOMAIN_DEVICE,
                                                        ioctl="VFIO_DEVICE_GET_INFO")
            s = got.struct
            self._info = DeviceInfo(int(s.flags), int(s.num_regions), int(s.num_irqs), got.caps)
        return self._info

    def region(self, index: int) -> Region:
        """The region at ``index`` (``uv.VFIO_PCI_BAR0_REGION_INDEX``...), queried once and kept."""
        self._check_open("get a region")
        region = self._regions.get(index)
        if region is None or region.closed:
            region = Region(self, index)
            self._regions[index] = region
            self._adopt(region)
        return region

    def regions(self) -> list[Region]:
        """Every region the device reports (indexes the kernel refuses, like VGA on a non-VGA device, skipped)."""
        out = []
        for index in range(self.info.num_regions):
            try:
                out.append(self.region(index))
            except VfioError as e:
                if e.errno != errno.EINVAL:
                    raise
        return out

    def config_read(self, offset: int, size: int) -> bytes:
        """PCI config space bytes (the kernel's virtualized view)."""
        return self.region(uv.VFIO_PCI_CONFIG_REGION_INDEX).read(offset, size)

    def config_write(self, offset: int, data: bytes) -> int:
        return self.region(uv.VFIO_PCI_CONFIG_REGION_INDEX).write(offset, data)

    def config_read16(self, offset: int) -> int:
        return int.from_bytes(self.config_read(offset, 2), "little")

    def config_write16(self, offset: int, value: int) -> None:
        self.config_write(offset, (value & 0xFFFF).to_bytes(2, "little"))

    def set_bus_master(self, enable: bool = True) -> int:
        """Set or clear PCI_COMMAND's memory decode and bus master bits; returns the new COMMAND value.

        A device needs bus mastering for DMA and for MSI (an MSI is a memory write).
        """
        cmd = self.config_read16(0x04)
        cmd = cmd | 0x6 if enable else cmd & ~0x4
        self.config_write16(0x04, cmd)
        return self.config_read16(0x04)

    # -- interrupts ----------------------------------------------------------------------------------------
    def irq_info(self, index: int) -> IrqInfo:
        """``VFIO_DEVICE_GET_IRQ_INFO`` for ``index`` (``uv.VFIO_PCI_MSI_IRQ_INDEX``...)."""
        self._check_open("get IRQ info")
        arg = uv.vfio_irq_info(argsz=ctypes.sizeof(uv.vfio_irq_info), index=index)
        self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_GET_IRQ_INFO, arg)
        return IrqInfo(index, int(arg.flags), int(arg.count))

    def irqs(self) -> list[IrqInfo]:
        """Every IRQ index the device reports (an index the kernel refuses, like ERR on plain PCI, skipped)."""
        out = []
        for index in range(self.info.num_irqs):
            try:
                out.append(self.irq_info(index))
            except VfioError as e:
                if e.errno != errno.EINVAL:
                    raise
        return out

    def set_irqs(self, index: int, flags: int, start: int, count: int, data: bytes = b"") -> int:
        """``VFIO_DEVICE_SET_IRQS`` as the kernel takes it: ``flags`` is one DATA_* | one ACTION_*.

        Returns the ioctl's result: a positive number is the kernel offering fewer MSI vectors than asked.
        """
        self._check_open("set IRQs")
        arg = alloc_flex(uv.vfio_irq_set, len(data), flags=flags, index=index, start=start, count=count)
        if data:
            ctypes.memmove(ctypes.addressof(flex_array(arg)), bytes(data), len(data))
        return int(self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_SET_IRQS, arg))

    def set_irq_eventfds(self, index: int, start: int, fds: Sequence[int]) -> None:
        """Signal eventfd ``fds[i]`` for vector ``start + i``; -1 detaches that vector's eventfd."""
        data = b"".join(_struct.pack("<i", fd) for fd in fds)
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_TRIGGER, start, len(fds), data)

    def disable_irqs(self, index: int) -> None:
        """Turn the whole index off (TRIGGER, DATA_NONE, count 0) and release its eventfds."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0)

    def trigger_irqs(self, index: int, start: int = 0, count: int = 1) -> None:
        """Loopback: make the kernel signal those vectors' eventfds as if the device had interrupted."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER, start, count)

    def mask_intx(self) -> None:
        self.set_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_MASK, 0, 1)

    def unmask_intx(self) -> None:
        """INTx is auto-masked when it fires: unmask it once the device's cause is serviced."""
        self.set_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_UNMASK, 0, 1)

    def set_intx_unmask_eventfd(self, fd: int) -> None:
        """Each write to eventfd ``fd`` unmasks INTx (KVM's resample fd); -1 removes it."""
        self.set_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX, uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_UNMASK,
                      0, 1, _struct.pack("<i", fd))

    # -- resets ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """``VFIO_DEVICE_RESET`` (a function-level reset).  EINVAL when ``info.reset_supported`` is False."""
        self._check_open("reset")
        try:
            self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_RESET)
        except VfioError as e:
            if e.errno == errno.EINVAL:
                raise VfioError(e.errno, e.ioctl, f"{self.label} has no function reset (no FLR, PM reset or "
                                                  "lone-device bus reset): try hot_reset()") from None
            raise

    def hot_reset_info(self) -> HotResetInfo:
        """``VFIO_DEVICE_GET_PCI_HOT_RESET_INFO``: the devices a bus/slot reset would take with it.

        Grows its buffer when the kernel answers ``ENOSPC`` with the count it needs.
        """
        self._check_open("get hot reset info")
        room = 8
        for _ in range(4):
            arg = alloc_flex(uv.vfio_pci_hot_reset_info, room)
            try:
                self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, arg)
            except VfioError as e:
                if e.errno == errno.ENOSPC and int(arg.count) > room:
                    room = int(arg.count)
                    continue
                if e.errno == errno.ENODEV:
                    raise VfioError(e.errno, e.ioctl, f"{self.label} has no slot or bus reset (on a root bus, or "
                                                      "its bridge cannot reset)") from None
                raise
            by_devid = bool(arg.flags & uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID)
            entries = flex_array(arg, int(arg.count))
            devices = tuple(DependentDevice(int(d.segment), int(d.bus), int(d.devfn), int(d.group_id), by_devid)
                            for d in entries)
            return HotResetInfo(int(arg.flags), devices)
        raise VfioError(errno.ENOSPC, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "the affected-device count kept growing")

    def hot_reset(self, groups: Optional[Sequence[Union["Group", int]]] = None) -> None:
        """``VFIO_DEVICE_PCI_HOT_RESET``: reset the bus or slot, proving ownership of every device it touches.

        cdev form: no group fds -- the kernel checks the devices against this
        device's iommufd.  Group form: the fds of every affected group
        (``groups``: :class:`~pyvfio.container.Group` objects or raw fds;
        default: looked up among the groups open in this device's container).
        """
        self._check_open("hot reset")
        fds: list[int] = []
        if not self.via_cdev:
            if groups is None:
                groups = self._affected_groups()
            fds = [g if isinstance(g, int) else g.fd for g in groups]
        arg = alloc_flex(uv.vfio_pci_hot_reset, len(fds), flags=0, count=len(fds))
        if fds:
            arr = flex_array(arg, len(fds))
            for i, fd in enumerate(fds):
                arr[i] = fd
        self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_PCI_HOT_RESET, arg)

    def _affected_groups(self) -> list["Group"]:
        info = self.hot_reset_info()
        needed = sorted({d.group_id for d in info.devices})
        container = self.group.container if self.group is not None else None
        have = {g.id: g for g in container.groups} if container is not None else {}
        missing = [g for g in needed if g not in have]
        if missing:
            raise VfioError(errno.EPERM, "VFIO_DEVICE_PCI_HOT_RESET",
                            f"a hot reset of {self.label} also resets IOMMU group(s) "
                            f"{', '.join(map(str, missing))}, which this container has not opened: open them "
                            "(container.group(N)) so their fds prove ownership")
        return [have[g] for g in needed]

    # -- device features -----------------------------------------------------------------------------------
    def feature(self, feature_id: int, flags: int, payload: bytes = b"", *, size: Optional[int] = None) -> bytes:
        """``VFIO_DEVICE_FEATURE``: GET/SET/PROBE ``feature_id`` with ``payload``; returns the payload after the call.

        For a GET, pass the payload's size (``size=`` or a zeroed ``payload``)
        so the kernel has room to answer.
        """
        self._check_open("use a device feature")
        n = max(len(payload), size or 0)
        arg = alloc_flex(uv.vfio_device_feature, n, flags=(feature_id & uv.VFIO_DEVICE_FEATURE_MASK) | flags)
        if payload:
            ctypes.memmove(ctypes.addressof(flex_array(arg)), bytes(payload), len(payload))
        try:
            self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_FEATURE, arg)
        except VfioError as e:
            name = FEATURE_NAMES.get(feature_id, str(feature_id))
            what = flag_names(uv.VfioDeviceFeatureFlag, flags)
            hint = " (the device does not implement it)" if e.errno == errno.ENOTTY else ""
            raise VfioError(e.errno or 0, e.ioctl, f"{self.label}: {what} {name}{hint}"
                                                   + (f": {e.reason}" if e.reason else "")) from None
        return bytes(flex_array(arg))[:n] if n else b""

    def feature_probe(self, feature_id: int, flags: int = 0) -> bool:
        """Whether the device supports ``feature_id`` (with the GET/SET directions in ``flags``): a PROBE call.

        ``ENOTTY`` (no such feature) and ``EINVAL`` (direction unsupported)
        answer False; any other error is raised.
        """
        try:
            self.feature(feature_id, uv.VFIO_DEVICE_FEATURE_PROBE | flags)
        except VfioError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL):
                return False
            raise
        return True

    def migration_flags(self) -> Optional[int]:
        """``VFIO_DEVICE_FEATURE_MIGRATION`` flags (STOP_COPY, P2P, PRE_COPY), or None if not migratable."""
        try:
            data = self.feature(uv.VFIO_DEVICE_FEATURE_MIGRATION, uv.VFIO_DEVICE_FEATURE_GET,
                                size=ctypes.sizeof(uv.vfio_device_feature_migration))
        except VfioError as e:
            if e.errno == errno.ENOTTY:
                return None
            raise
        return int(uv.vfio_device_feature_migration.from_buffer_copy(data).flags)


def _explain_bind(e: VfioError, path: str) -> VfioError:
    """Say what to do about the usual reasons ``VFIO_DEVICE_BIND_IOMMUFD`` fails."""
    hints = {
        errno.EBUSY: "the device's IOMMU group is open through the legacy group path (or owned by another "
                     "iommufd): close that first",
        errno.EINVAL: "the cdev is already bound (each open cdev binds once)",
        errno.EPERM: "the platform lacks interrupt remapping: iommufd.allow_unsafe_interrupts=1 allows it unsafely",
    }
    reason = f"{path}: {hints.get(e.errno or 0, '')}".rstrip(": ")
    return VfioError(e.errno or 0, e.ioctl, reason + (f" ({e.reason})" if e.reason else ""))
