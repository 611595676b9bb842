"""VFIO core: the device registry, device files and the device-feature dispatch (``drivers/vfio/vfio_main.c``).

:class:`Vfio` is the root of the whole model -- the simulated machine's VFIO
subsystem.  It owns the IOMMU groups (``group.py``), the per-device cdevs,
and the paths userspace opens.  A :class:`VfioDevice` is ``struct
vfio_device``: what VFIO core knows of a device whatever its driver; the
driver (vfio-pci, ``vfio_pci_core.py``) is its ``ops``.  A
:class:`DeviceFile` is an open device descriptor, obtained from a group
(access granted at once) or from a cdev (nothing but ``BIND_IOMMUFD`` until
bound).
"""

from __future__ import annotations

import ctypes
import re
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ..uapi import vfio as uv
from .errno import EINVAL, ENODEV, ENOENT, ENOTTY, KernelError
from .file import File, Task, UserArg

if TYPE_CHECKING:
    from .group import VfioGroup


class DmaDomain(Protocol):
    """What a device's DMA goes through: a type1 container or an iommufd HWPT.

    ``dma_read``/``dma_write`` translate IOVAs through the domain's mappings,
    reach the memory behind them (a process's VA or a mapped file) and mark
    pages dirty where tracking is on.  A fault raises :class:`KernelError`
    (``EFAULT`` unmapped, ``EPERM`` for a write to a read-only mapping).
    """

    def dma_read(self, iova: int, length: int) -> bytes: ...

    def dma_write(self, iova: int, data: bytes) -> None: ...


class VfioDeviceOps(Protocol):
    """The driver half of a device (``struct vfio_device_ops``), implemented by vfio-pci."""

    def open_device(self, vdev: "VfioDevice") -> None: ...

    def close_device(self, vdev: "VfioDevice") -> None: ...

    def ioctl(self, vdev: "VfioDevice", task: Task, request: int, arg: UserArg) -> int: ...

    def read(self, vdev: "VfioDevice", task: Task, size: int, offset: int) -> bytes: ...

    def write(self, vdev: "VfioDevice", task: Task, data: bytes, offset: int) -> int: ...

    def mmap(self, vdev: "VfioDevice", task: Task, length: int, offset: int, prot: int) -> Any: ...

    def device_feature(self, vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int: ...


class VfioDevice:
    """``struct vfio_device``: registry entry of one device.

    ``domain`` is where its DMA goes right now (``None``: DMA is blocked, as
    after ``DETACH_IOMMUFD_PT`` or before any attach).
    """

    def __init__(self, core: "Vfio", name: str, group: "VfioGroup", index: int, ops: Any, kind: str) -> None:
        self.core = core
        self.name = name
        self.group = group
        self.index = index
        self.ops = ops
        self.kind = kind
        self.open_count = 0
        self.cdev_open = 0
        self.domain: Optional[DmaDomain] = None
        self.iommufd_binding: Any = None  # set by iommufd/device.py while bound through the cdev
        self.dma_log: Any = None  # device DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*): has .mark(iova, length)
        self.precopy_info_v2 = False  # VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 opt-in (sim/migration.py)

    # The attributes tools and tests rely on: .group (number), .cdev (path), .address.
    @property
    def address(self) -> str:
        return self.name

    @property
    def cdev(self) -> str:
        return f"/dev/vfio/devices/vfio{self.index}"

    @property
    def group_id(self) -> int:
        return self.group.id

    def __repr__(self) -> str:
        return f"<VfioDevice {self.name} ({self.kind}) group {self.group.id} {self.cdev}>"

    # DMA as the device performs it.
    def dma_read(self, iova: int, length: int) -> bytes:
        if self.domain is None:
            raise KernelError(EINVAL, f"{self.name}: DMA blocked, the device is not attached to an IOMMU domain")
        return self.domain.dma_read(iova, length)

    def dma_write(self, iova: int, data: bytes) -> None:
        if self.domain is None:
            raise KernelError(EINVAL, f"{self.name}: DMA blocked, the device is not attached to an IOMMU domain")
        self.domain.dma_write(iova, data)
        if self.dma_log is not None:
            self.dma_log.mark(iova, len(data))

    # Open/close accounting shared by the group and cdev paths (vfio_df_open / vfio_df_close).
    def df_open(self) -> None:
        if self.open_count == 0:
            self.ops.open_device(self)
        self.open_count += 1

    def df_close(self) -> None:
        self.open_count -= 1
        if self.open_count == 0:
            self.ops.close_device(self)
            self.precopy_info_v2 = False  # the next user must opt in again (vfio_df_device_last_close)


class DeviceFile(File):
    """An open device descriptor (``struct vfio_device_file``)."""

    kind = "device"

    def __init__(self, device: VfioDevice, *, via_cdev: bool) -> None:
        self.device = device
        self.via_cdev = via_cdev
        self.access_granted = not via_cdev
        self.name = device.cdev if via_cdev else "anon_inode:[vfio-device]"
        self.released = False

    def _check_access(self, what: str) -> None:
        if not self.access_granted:
            raise KernelError(EINVAL, f"{what} on a cdev before VFIO_DEVICE_BIND_IOMMUFD")

    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        from .iommufd import device as iommufd_device

        if request == uv.VFIO_DEVICE_BIND_IOMMUFD:
            return iommufd_device.vfio_df_ioctl_bind_iommufd(self, task, arg)
        self._check_access("ioctl")
        if request == uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT:
            return iommufd_device.vfio_df_ioctl_attach_pt(self, task, arg)
        if request == uv.VFIO_DEVICE_DETACH_IOMMUFD_PT:
            return iommufd_device.vfio_df_ioctl_detach_pt(self, task, arg)
        if request == uv.VFIO_DEVICE_FEATURE:
            return vfio_ioctl_device_feature(self, task, arg)
        return int(self.device.ops.ioctl(self.device, task, request, arg))

    def read(self, task: Task, size: int, offset: Optional[int]) -> bytes:
        self._check_access("read")
        return bytes(self.device.ops.read(self.device, task, size, offset or 0))

    def write(self, task: Task, data: bytes, offset: Optional[int]) -> int:
        self._check_access("write")
        return int(self.device.ops.write(self.device, task, data, offset or 0))

    def mmap(self, task: Task, length: int, offset: int, prot: int) -> Any:
        self._check_access("mmap")
        return self.device.ops.mmap(self.device, task, length, offset, prot)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.via_cdev:
            from .iommufd import device as iommufd_device

            if self.access_granted:  # unbinding also unblocks the group path (cdev_open)
                iommufd_device.vfio_df_unbind_iommufd(self)
        else:
            self.device.df_close()
            self.device.group.device_file_closed(self)


def vfio_check_feature(flags: int, argsz: int, supported_ops: int, minsz: int) -> bool:
    """``vfio_check_feature``: True when the caller wants the feature run, False for a successful probe."""
    if (flags & (uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET)) & ~supported_ops:
        raise KernelError(EINVAL, "GET/SET not supported by this feature")
    if flags & uv.VFIO_DEVICE_FEATURE_PROBE:
        return False
    if not flags & (uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET):
        raise KernelError(EINVAL, "neither GET nor SET requested")
    if argsz - ctypes.sizeof(uv.vfio_device_feature) < minsz:
        raise KernelError(EINVAL, f"argsz {argsz} leaves less than the {minsz} payload bytes the feature needs")
    return True


def vfio_ioctl_device_feature(df: DeviceFile, task: Task, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE``: validate the header, then route core features and the driver's own."""
    hdr_size = ctypes.sizeof(uv.vfio_device_feature)
    feature = arg.view(uv.vfio_device_feature)
    argsz, flags = feature.argsz, feature.flags
    if argsz < hdr_size:
        raise KernelError(EINVAL, f"argsz {argsz} < {hdr_size}")
    known = uv.VFIO_DEVICE_FEATURE_MASK | uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET \
        | uv.VFIO_DEVICE_FEATURE_PROBE
    if flags & ~known:
        raise KernelError(EINVAL, f"unknown flag bits {flags & ~known:#x}")
    both = uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET
    if not flags & uv.VFIO_DEVICE_FEATURE_PROBE and flags & both == both:
        raise KernelError(EINVAL, "GET and SET together are only allowed with PROBE")
    if flags & uv.VFIO_DEVICE_FEATURE_MASK == uv.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2:
        from .migration import feature_mig_precopy_info_v2  # a core feature since Linux 7.3

        return feature_mig_precopy_info_v2(df.device, task, flags, arg)
    return int(df.device.ops.device_feature(df.device, task, flags, arg))


_GROUP_PATH = re.compile(r"^/dev/vfio/(noiommu-)?(\d+)$")
_CDEV_PATH = re.compile(r"^/dev/vfio/devices/vfio(\d+)$")


class Vfio:
    """The simulated machine's VFIO subsystem: groups, devices, cdevs and the nodes in ``/dev``."""

    def __init__(self) -> None:
        from .group import VfioGroup  # noqa: F401  (imported here to keep module import order simple)

        self.groups: dict[int, "VfioGroup"] = {}
        self.devices: dict[str, VfioDevice] = {}
        self.cdevs: dict[int, VfioDevice] = {}
        self._next_group = 0
        self._next_slot = 3

    def add_device(self, kind: str, *, name: Optional[str] = None, group: Optional[int] = None,
                   iommu_dirty_tracking: bool = False, **options: Any) -> VfioDevice:
        """Plug in a simulated PCI device bound to vfio-pci; see :mod:`pyvfio.sim.devices` for kinds.

        ``iommu_dirty_tracking`` describes the IOMMU in front of the device, not the device: by default it is
        the VM lane's QEMU intel-iommu, which cannot track dirty pages (IOMMU_HWPT_ALLOC with DIRTY_TRACKING is
        EOPNOTSUPP); True models an IOMMU that can, for iommufd dirty-tracking tests.
        """
        from .devices import create_device
        from .group import VfioGroup
        from .vfio_pci_core import VfioPciCoreDevice

        if name is None:
            name = f"0000:00:{self._next_slot:02x}.0"
            self._next_slot += 1
        if name in self.devices:
            raise ValueError(f"a device named {name} already exists")
        if group is None:
            group = self._next_group
        self._next_group = max(self._next_group, group + 1)
        if group not in self.groups:
            self.groups[group] = VfioGroup(self, group)
        pci = create_device(kind, **options)
        index = len(self.cdevs)
        core = VfioPciCoreDevice(pci)
        core.dirty_tracking_capable = bool(iommu_dirty_tracking)
        vdev = VfioDevice(self, name, self.groups[group], index, core, kind)
        core.vdev = vdev  # the driver reaches DMA and its eventfds through its vfio_device
        self.devices[name] = vdev
        self.cdevs[index] = vdev
        self.groups[group].devices.append(vdev)
        return vdev

    def open(self, task: Task, path: str, flags: int) -> File:
        """What ``open(2)`` of a VFIO or iommufd node does."""
        if path == "/dev/vfio/vfio":
            from .container import VfioContainer

            return VfioContainer(self)
        if path == "/dev/iommu":
            from .iommufd.main import IommufdCtx

            return IommufdCtx(self)
        m = _GROUP_PATH.match(path)
        if m:
            group = self.groups.get(int(m.group(2)))
            if group is None:
                raise KernelError(ENOENT, f"no IOMMU group {m.group(2)}")
            return group.open(task)
        m = _CDEV_PATH.match(path)
        if m:
            vdev = self.cdevs.get(int(m.group(1)))
            if vdev is None:
                raise KernelError(ENOENT, f"no VFIO cdev vfio{m.group(1)}")
            return vfio_device_fops_cdev_open(vdev)
        raise KernelError(ENOENT, f"{path} is not a node of the simulated kernel")


def vfio_device_fops_cdev_open(vdev: VfioDevice) -> DeviceFile:
    """Opening a cdev always succeeds: ``VFIO_DEVICE_BIND_IOMMUFD`` is what blocks the group path
    (``vfio_device_block_group``, EBUSY while the group is open) and counts in ``cdev_open``."""
    return DeviceFile(vdev, via_cdev=True)


__all__ = ["DeviceFile", "DmaDomain", "Vfio", "VfioDevice", "VfioDeviceOps", "vfio_check_feature",
           "vfio_ioctl_device_feature", "ENODEV", "ENOTTY"]
