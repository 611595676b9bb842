"""The legacy VFIO path: a container (``/dev/vfio/vfio``) with its IOMMU, and the groups attached to it.

The order is the kernel's and cannot be shortened: open the container, open
a group, attach the group (``VFIO_GROUP_SET_CONTAINER``), choose the IOMMU
backend once a group is in (``VFIO_SET_IOMMU``), and only then ask the group
for a device.  :class:`Container` and :class:`Group` do exactly that, checking
what QEMU's ``hw/vfio/container.c`` checks on the way (API version,
viability, the best type1 flavour the kernel offers) and undoing every step
that succeeded when a later one fails.

A container is also an IOMMU context: its DMA map/unmap and IOVA ranges come
from type1 (``VFIO_IOMMU_MAP_DMA``, the ``IOVA_RANGE`` capability of
``VFIO_IOMMU_GET_INFO``), and the safe mapping API -- ``container.map(buf)``,
``container.dma(size)`` -- comes from :class:`pyvfio.dma.DmaMapper`, shared
with the iommufd :class:`~pyvfio.iommufd.Ioas`.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass
from typing import Optional

from ._resource import Resource
from .device import Device
from .dma import DmaMapper
from .errors import VfioError
from .info import DOMAIN_IOMMU, Cap, DmaAvailCap, IovaRange, IovaRangeCap, MigrationCap, flag_names, query_info
from .kernel.base import Kernel
from .uapi import vfio as uv
from .uapi.struct import alloc_flex, offsetof

__all__ = ["Container", "Group", "IommuInfo", "TYPE1_PREFERENCE"]

#: IOMMU types tried by :meth:`Container.group` when none was asked for, best first (QEMU's order for x86).
TYPE1_PREFERENCE = (uv.VFIO_TYPE1v2_IOMMU, uv.VFIO_TYPE1_IOMMU)

_TYPE_NAMES = {uv.VFIO_TYPE1_IOMMU: "type1", uv.VFIO_TYPE1v2_IOMMU: "type1v2", uv.VFIO_NOIOMMU_IOMMU: "noiommu",
               uv.VFIO_SPAPR_TCE_IOMMU: "spapr-tce", uv.VFIO_SPAPR_TCE_v2_IOMMU: "spapr-tce-v2"}


@dataclass(frozen=True)
class IommuInfo:
    """``VFIO_IOMMU_GET_INFO`` of a type1 container: page sizes and the capability chain."""

    flags: int
    iova_pgsizes: int
    caps: tuple[Cap, ...]

    @property
    def min_pgsize(self) -> int:
        """The smallest IOMMU page: every map and unmap must be aligned to it."""
        p = self.iova_pgsizes
        return p & -p if p else 4096

    @property
    def iova_ranges(self) -> Optional[list[IovaRange]]:
        """The usable IOVA ranges, or None when the kernel did not report them (older than 5.4)."""
        cap = next((c for c in self.caps if isinstance(c, IovaRangeCap)), None)
        return list(cap.ranges) if cap is not None else None

    @property
    def dma_avail(self) -> Optional[int]:
        cap = next((c for c in self.caps if isinstance(c, DmaAvailCap)), None)
        return cap.avail if cap is not None else None

    @property
    def migration(self) -> Optional[MigrationCap]:
        return next((c for c in self.caps if isinstance(c, MigrationCap)), None)


class Container(DmaMapper, Resource):
    """An open ``/dev/vfio/vfio`` and, once a group joined, its type1 IOMMU.

    ``iommu_type`` forces a backend (``uv.VFIO_TYPE1_IOMMU``...); by default
    the first group picks the best of :data:`TYPE1_PREFERENCE` the kernel
    supports.  Groups opened through :meth:`group` belong to the container and
    are closed (their devices first) when it closes.
    """

    def __init__(self, kernel: Kernel, *, iommu_type: Optional[int] = None, path: str = "/dev/vfio/vfio") -> None:
        Resource.__init__(self)
        DmaMapper.__init__(self)
        self.kernel = kernel
        self.path = path
        self.requested_type = iommu_type
        self.iommu_type: Optional[int] = None
        self.fd = kernel.open(path)
        try:
            self.api_version = kernel.ioctl(self.fd, uv.VFIO_GET_API_VERSION)
            if self.api_version != uv.VFIO_API_VERSION:
                raise VfioError(errno.EINVAL, "VFIO_GET_API_VERSION",
                                f"the kernel speaks VFIO API {self.api_version}, pyvfio speaks "
                                f"{uv.VFIO_API_VERSION}")
        except BaseException:
            kernel.close(self.fd)
            raise
        self._info: Optional[IommuInfo] = None

    def __repr__(self) -> str:
        if self.closed:
            return "<Container closed>"
        kind = _TYPE_NAMES.get(self.iommu_type or -1, "no IOMMU yet") if self.iommu_type else "no IOMMU yet"
        groups = ",".join(str(g.id) for g in self.groups) or "none"
        return f"<Container fd {self.fd} {kind}, groups {groups}, {len(self._mappings)} mapping(s)>"

    @property
    def groups(self) -> list["Group"]:
        return [c for c in self._children if isinstance(c, Group)]

    # -- extensions and the IOMMU ---------------------------------------------------------------------------
    def check_extension(self, extension: int) -> int:
        """``VFIO_CHECK_EXTENSION``: >0 when supported (answers change once an IOMMU is set)."""
        self._check_open("check an extension")
        return self.kernel.ioctl(self.fd, uv.VFIO_CHECK_EXTENSION, extension)

    def set_iommu(self, iommu_type: int) -> None:
        """``VFIO_SET_IOMMU``: needs a group attached; a container's IOMMU is chosen once."""
        self._check_open("set the IOMMU")
        try:
            self.kernel.ioctl(self.fd, uv.VFIO_SET_IOMMU, iommu_type)
        except VfioError as e:
            if e.errno == errno.EINVAL and self.iommu_type is None and not self.groups:
                raise VfioError(e.errno, e.ioctl, "a container needs a group attached before its IOMMU is set "
                                                  "(use container.group(N))") from None
            raise
        self.iommu_type = iommu_type
        self._info = None

    def _choose_type(self) -> int:
        if self.requested_type is not None:
            return self.requested_type
        for t in TYPE1_PREFERENCE:
            if self.check_extension(t) > 0:
                return t
        raise VfioError(errno.ENODEV, "VFIO_CHECK_EXTENSION", "the kernel offers no type1 IOMMU backend "
                                                              "(vfio_iommu_type1 not loaded?)")

    def group(self, group_id: int, *, path: Optional[str] = None) -> "Group":
        """Open IOMMU group ``group_id``, attach it, and (for the first group) set the IOMMU.

        Refuses a non-viable group with a message naming the fix.  On any
        failure the group is closed again and the container is as before.
        """
        self._check_open("add a group")
        grp = Group(self, group_id, path=path)
        try:
            if self.iommu_type is None:
                self.set_iommu(self._choose_type())
        except BaseException:
            grp.close()
            raise
        self._adopt(grp)
        return grp

    def iommu_info(self) -> IommuInfo:
        """``VFIO_IOMMU_GET_INFO`` with the capability chain (argsz retry included)."""
        self._check_open("get IOMMU info")
        if self.iommu_type is None:
            raise VfioError(errno.EINVAL, "VFIO_IOMMU_GET_INFO", "the container has no IOMMU yet: add a group first")
        got = query_info(self.kernel, self.fd, uv.VFIO_IOMMU_GET_INFO, uv.vfio_iommu_type1_info,
                         domain=DOMAIN_IOMMU, ioctl="VFIO_IOMMU_GET_INFO")
        return IommuInfo(int(got.struct.flags), int(got.struct.iova_pgsizes), got.caps)

    @property
    def info(self) -> IommuInfo:
        if self._info is None:
            self._info = self.iommu_info()
        return self._info

    def iova_ranges(self) -> list[IovaRange]:
        """Where DMA may be mapped now (asked each time: ranges narrow as groups join)."""
        ranges = self.iommu_info().iova_ranges
        return ranges if ranges is not None else [IovaRange(0, (1 << 64) - 1)]

    @property
    def iova_alignment(self) -> int:
        return self.info.min_pgsize

    # -- type1 map/unmap ------------------------------------------------------------------------------------
    def map_dma(self, vaddr: int, iova: int, size: int, *, readable: bool = True, writable: bool = True) -> None:
        """``VFIO_IOMMU_MAP_DMA`` of ``size`` bytes at user address ``vaddr`` to ``iova`` (both page-aligned)."""
        flags = (uv.VFIO_DMA_MAP_FLAG_READ if readable else 0) | (uv.VFIO_DMA_MAP_FLAG_WRITE if writable else 0)
        self.map_dma_raw(flags, vaddr, iova, size)

    def map_dma_raw(self, flags: int, vaddr: int, iova: int, size: int) -> None:
        """``VFIO_IOMMU_MAP_DMA`` with explicit flags (``VFIO_DMA_MAP_FLAG_VADDR`` for a CPR re-attach)."""
        self._check_open("map DMA")
        arg = uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map), flags=flags,
                                          vaddr=vaddr, iova=iova, size=size)
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_MAP_DMA, arg)

    def unmap_dma(self, iova: int, size: int, flags: int = 0) -> int:
        """``VFIO_IOMMU_UNMAP_DMA``; returns the bytes unmapped (type1: 0 when nothing was mapped there)."""
        self._check_open("unmap DMA")
        arg = uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap), flags=flags,
                                            iova=iova, size=size)
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_UNMAP_DMA, arg)
        if not flags & uv.VFIO_DMA_UNMAP_FLAG_VADDR:  # a VADDR "unmap" (CPR) keeps the IOMMU mappings
            if flags & uv.VFIO_DMA_UNMAP_FLAG_ALL:
                self._unmapped(0, 1 << 64)
            else:
                self._unmapped(iova, size)
        return int(arg.size)

    def unmap_all(self) -> int:
        """Unmap everything (``VFIO_DMA_UNMAP_FLAG_ALL``); every :class:`~pyvfio.dma.DmaMapping` becomes unmapped."""
        return self.unmap_dma(0, 0, uv.VFIO_DMA_UNMAP_FLAG_ALL)

    # -- dirty page tracking (type1v2) -----------------------------------------------------------------------
    def dirty_tracking(self, enable: bool) -> None:
        """``VFIO_IOMMU_DIRTY_PAGES`` START or STOP."""
        self._check_open("track dirty pages")
        flag = uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_START if enable else uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
        arg = uv.vfio_iommu_type1_dirty_bitmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap), flags=flag)
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_DIRTY_PAGES, arg)

    def dirty_bitmap(self, iova: int, size: int, pgsize: Optional[int] = None) -> bytes:
        """The dirty bitmap of ``[iova, iova + size)``: bit n = page n written since the last read (which clears)."""
        self._check_open("read dirty pages")
        pgsize = pgsize or self.iova_alignment
        npages = (size + pgsize - 1) // pgsize
        nbytes = (npages + 63) // 64 * 8
        bitmap = (ctypes.c_ulong * (nbytes // 8))()
        arg = alloc_flex(uv.vfio_iommu_type1_dirty_bitmap, ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap_get),
                         flags=uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)
        get = uv.vfio_iommu_type1_dirty_bitmap_get.from_buffer(arg, offsetof(uv.vfio_iommu_type1_dirty_bitmap, "data"))
        get.iova, get.size = iova, size
        get.bitmap.pgsize, get.bitmap.size = pgsize, nbytes
        get.bitmap.data = ctypes.cast(bitmap, ctypes.POINTER(ctypes.c_ulong))
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_DIRTY_PAGES, arg)
        return bytes(bitmap)

    def _close_self(self) -> None:
        try:
            self._release_mappings(ioctl=False)  # the groups closed first: the kernel dropped the mappings
        finally:
            self.kernel.close(self.fd)

    def close(self) -> None:
        """Unmap what this container mapped, close its groups (and their devices), then the container fd."""
        if not self.closed and self.iommu_type is not None:
            self._release_mappings(ioctl=True)  # explicit, while the IOMMU still exists
        Resource.close(self)


class Group(Resource):
    """An open IOMMU group, attached to a container; it hands out the devices in it.

    Made by :meth:`Container.group`.  The descriptor is single-open in the
    kernel: a second opener (or an open cdev of one of its devices) gets
    ``EBUSY``.
    """

    def __init__(self, container: Container, group_id: int, *, path: Optional[str] = None) -> None:
        super().__init__()
        self.container = container
        self.kernel = container.kernel
        self.id = int(group_id)
        self.path = path or f"/dev/vfio/{self.id}"
        self.fd = -1
        try:
            self.fd = self.kernel.open(self.path)
        except VfioError as e:
            raise _explain_group_open(e, self.id, self.path) from None
        try:
            status = self.status()
            if not status & uv.VFIO_GROUP_FLAGS_VIABLE:
                raise VfioError(errno.EPERM, "VFIO_GROUP_GET_STATUS",
                                f"IOMMU group {self.id} is not viable: every device in it must be bound to "
                                f"vfio-pci (or be unbound); see /sys/kernel/iommu_groups/{self.id}/devices")
            if status & uv.VFIO_GROUP_FLAGS_CONTAINER_SET:
                raise VfioError(errno.EBUSY, "VFIO_GROUP_SET_CONTAINER",
                                f"IOMMU group {self.id} is already attached to a container")
            self.kernel.ioctl(self.fd, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container.fd))
        except BaseException:
            self.kernel.close(self.fd)
            raise

    def __repr__(self) -> str:
        if self.closed:
            return f"<Group {self.id} closed>"
        return f"<Group {self.id} fd {self.fd}, {len(self.devices)} device(s) open>"

    @property
    def devices(self) -> list[Device]:
        return [c for c in self._children if isinstance(c, Device)]

    def status(self) -> int:
        """``VFIO_GROUP_GET_STATUS`` flags (``VFIO_GROUP_FLAGS_VIABLE``, ``..._CONTAINER_SET``)."""
        self._check_open("get status")
        arg = uv.vfio_group_status(argsz=ctypes.sizeof(uv.vfio_group_status))
        self.kernel.ioctl(self.fd, uv.VFIO_GROUP_GET_STATUS, arg)
        return int(arg.flags)

    @property
    def viable(self) -> bool:
        return bool(self.status() & uv.VFIO_GROUP_FLAGS_VIABLE)

    def status_names(self) -> str:
        return flag_names(uv.VfioGroupFlag, self.status())

    def device(self, name: str) -> Device:
        """``VFIO_GROUP_GET_DEVICE_FD``: open the device called ``name`` (its PCI address) in this group."""
        self._check_open("open a device")
        try:
            fd = self.kernel.ioctl(self.fd, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(name.encode()))
        except VfioError as e:
            if e.errno == errno.ENODEV:
                raise VfioError(e.errno, e.ioctl, f"IOMMU group {self.id} has no device {name!r} bound to VFIO "
                                                  f"(see /sys/kernel/iommu_groups/{self.id}/devices)") from None
            raise
        try:
            dev = Device(self.kernel, fd, name=name, group=self)
        except BaseException:
            self.kernel.close(fd)
            raise
        self._adopt(dev)
        return dev

    def _close_self(self) -> None:
        self.kernel.close(self.fd)  # the kernel detaches the container when the last user goes


def _explain_group_open(e: VfioError, group_id: int, path: str) -> VfioError:
    hints = {
        errno.ENOENT: f"no {path}: bind the group's devices to vfio-pci (and load vfio_iommu_type1)",
        errno.EACCES: f"no permission on {path}: run as root or chown the node to your user",
        errno.EPERM: f"no permission on {path}: a no-IOMMU group needs CAP_SYS_RAWIO",
        errno.EBUSY: f"IOMMU group {group_id} is already open (here or in another process), or a device in it is "
                     "open through its cdev",
        errno.ENODEV: f"IOMMU group {group_id} has no device bound to a VFIO driver",
    }
    hint = hints.get(e.errno or 0, e.reason)
    return VfioError(e.errno or 0, e.ioctl, hint, e.filename)
