"""Devices in an iommufd: binding, attach, replace, detach (``drivers/iommu/iommufd/device.c``),
and the VFIO cdev ioctls that drive them (``drivers/vfio/device_cdev.c``, ``drivers/vfio/iommufd.c``).

A VFIO device opened through its cdev (``/dev/vfio/devices/vfioN``) can do
nothing until ``VFIO_DEVICE_BIND_IOMMUFD`` binds it to an iommufd, which
creates a DEVICE object (its id is ``out_devid``) and claims DMA ownership of
its IOMMU group for that iommufd.  DMA stays blocked until
``VFIO_DEVICE_ATTACH_IOMMUFD_PT`` attaches it to a page table: to a HWPT
directly, or to an IOAS, in which case a compatible automatic HWPT is reused
or created and its id written back into ``pt_id``.  Attaching an attached
device *replaces* its page table without a window of blocked DMA.
``VFIO_DEVICE_DETACH_IOMMUFD_PT`` blocks DMA again; closing the cdev unbinds.

Devices of one IOMMU group share one page table (:class:`IommufdGroup`); each
attached device reserves its own IOVA regions (the x86 MSI window) in the
IOAS, which fails with EADDRINUSE when a mapping or an allowed range is
already there.
"""

from __future__ import annotations

import ctypes
import os
import struct as _struct
import weakref
from typing import TYPE_CHECKING, Callable, Optional

from ...uapi import vfio as uv
from ...uapi.struct import offsetof, offsetofend
from ..errno import EBADFD, EBUSY, EINVAL, ENODEV, ENOENT, EOPNOTSUPP, KernelError
from ..file import Task, UserArg
from .hw_pagetable import (
    HwptPaging, dev_dirty_tracking_capable, dev_iopf_capable, dev_nesting_capable, dev_reserved_regions,
    iommufd_hwpt_paging_alloc,
)
from .main import IommufdCtx, IommufdObject, copy_from_user, copy_struct_from_user, copy_to_user

if TYPE_CHECKING:
    from ..group import VfioGroup
    from ..vfio_main import DeviceFile, VfioDevice
    from .ioas import Ioas


class _DmaOwner:
    def __init__(self, ictx: IommufdCtx) -> None:
        self.ictx = ictx
        self.count = 0


# iommu_device_claim_dma_owner: per IOMMU group, which iommufd owns DMA and how many devices it bound.
_dma_owners: "weakref.WeakKeyDictionary[VfioGroup, _DmaOwner]" = weakref.WeakKeyDictionary()


def _claim_dma_owner(group: "VfioGroup", ictx: IommufdCtx) -> None:
    owner = _dma_owners.get(group)
    if owner is not None and owner.ictx is not ictx:
        raise KernelError(EBUSY, f"IOMMU group {group.id} is already owned by another iommufd")
    if owner is None:
        owner = _dma_owners[group] = _DmaOwner(ictx)
    owner.count += 1


def _release_dma_owner(group: "VfioGroup") -> None:
    owner = _dma_owners.get(group)
    if owner is not None:
        owner.count -= 1
        if owner.count == 0:
            del _dma_owners[group]


class IommufdGroup:
    """``struct iommufd_group``: per IOMMU group and iommufd, the page table its devices share.

    ``device_list`` holds the attached devices; ``refs`` the bound ones.
    """

    def __init__(self, ictx: IommufdCtx, group: "VfioGroup") -> None:
        self.ictx = ictx
        self.group = group
        self.hwpt: Optional[HwptPaging] = None
        self.device_list: list["IommufdDevice"] = []
        self.refs = 0


class IommufdDevice(IommufdObject):
    """``struct iommufd_device``: a device bound to the iommufd.

    Its ``users`` are the binding driver's reference (so ``IOMMU_DESTROY`` of
    a device id is always EBUSY) plus one while attached.  It keeps the
    context alive until unbound.
    """

    kind = "DEVICE"

    def __init__(self, ictx: IommufdCtx, vdev: "VfioDevice", igroup: IommufdGroup, compat: bool) -> None:
        super().__init__(ictx)
        self.vdev = vdev
        self.igroup = igroup
        self.compat = compat
        self.users = 1

    def __repr__(self) -> str:
        return f"<IommufdDevice id {self.id} {self.vdev.name}{' attached' if self.attached else ''}>"

    @property
    def attached(self) -> bool:
        return self in self.igroup.device_list

    def holds(self) -> list[IommufdObject]:
        return [self.igroup.hwpt] if self.attached and self.igroup.hwpt is not None else []

    def external_users(self) -> int:
        return 1 + int(self.attached)

    def destroy(self) -> None:
        """``iommufd_device_destroy``: give up DMA ownership and the context reference."""
        self.igroup.refs -= 1
        if self.igroup.refs == 0:
            self.ictx.igroups.pop(self.igroup.group.id, None)
        _release_dma_owner(self.vdev.group)
        if self.vdev.iommufd_binding is self:
            self.vdev.iommufd_binding = None
            self.vdev.domain = None
        self.ictx.put()

    def check_invariants(self) -> None:
        vdev = self.vdev
        assert vdev.iommufd_binding is self, f"{self!r} is not the binding of {vdev.name}"
        assert self.ictx.igroups.get(vdev.group.id) is self.igroup, f"{self!r} lost its iommufd group"
        if self.attached:
            assert self.igroup.hwpt is not None and self.igroup.hwpt.live, f"{self!r} attached to nothing"
            assert vdev.domain is self.igroup.hwpt, f"{vdev.name} DMAs through {vdev.domain!r}, not its HWPT"
        else:
            assert vdev.domain is None, f"{vdev.name} is not attached but DMA is not blocked"


def get_device(ictx: IommufdCtx, dev_id: int) -> IommufdDevice:
    return ictx.get_object(dev_id, IommufdDevice)


# -- bind / unbind ----------------------------------------------------------------------------------
def iommufd_device_bind(ictx: IommufdCtx, vdev: "VfioDevice", compat: bool = False) -> IommufdDevice:
    """``iommufd_device_bind``: claim the device's group for this iommufd and create its DEVICE object."""
    _claim_dma_owner(vdev.group, ictx)
    igroup = ictx.igroups.get(vdev.group.id)
    if igroup is None:
        igroup = ictx.igroups[vdev.group.id] = IommufdGroup(ictx, vdev.group)
    igroup.refs += 1
    idev = ictx.object_alloc(IommufdDevice(ictx, vdev, igroup, compat))
    ictx.get()
    vdev.domain = None  # owned by iommufd, attached to nothing: DMA is blocked
    return idev


def iommufd_device_unbind(idev: IommufdDevice) -> None:
    """``iommufd_device_unbind``: the driver drops the device (it must be detached first)."""
    idev.ictx.object_destroy_user(idev)


# -- attach / detach / replace ----------------------------------------------------------------------
def _domain_compatible(hwpt: HwptPaging, vdev: "VfioDevice") -> None:
    """The IOMMU driver's attach check: a domain must suit the device (EINVAL means "try another")."""
    if hwpt.dirty_ops and not dev_dirty_tracking_capable(vdev):
        raise KernelError(EINVAL, f"{vdev.name}: its IOMMU cannot track dirty pages, HWPT {hwpt.id} does")
    if hwpt.nest_parent and not dev_nesting_capable(vdev):
        raise KernelError(EINVAL, f"{vdev.name}: its IOMMU cannot use a nesting parent")


def _iopf_enable(hwpt: HwptPaging, vdev: "VfioDevice") -> None:
    if hwpt.fault is not None and not dev_iopf_capable(vdev):
        raise KernelError(ENODEV, f"{vdev.name} cannot take I/O page faults (no PRI): HWPT {hwpt.id} has a "
                                  "fault queue")


def iommufd_hw_pagetable_attach(hwpt: HwptPaging, idev: IommufdDevice) -> None:
    """``iommufd_hw_pagetable_attach``: join ``hwpt`` (every device of a group must use the same one)."""
    igroup = idev.igroup
    if igroup.hwpt is not None and igroup.hwpt is not hwpt:
        raise KernelError(EINVAL, f"IOMMU group {igroup.group.id} is attached to HWPT {igroup.hwpt.id}: all "
                                  "its devices must use the same page table")
    iopt = hwpt.ioas.iopt
    iopt.enforce_dev_resv_regions(idev, dev_reserved_regions(idev.vdev))
    if not igroup.device_list:
        try:
            _domain_compatible(hwpt, idev.vdev)
            _iopf_enable(hwpt, idev.vdev)
        except KernelError:
            iopt.remove_reserved_iova(idev)
            raise
        igroup.hwpt = hwpt
    hwpt.users += 1
    igroup.device_list.append(idev)
    idev.vdev.domain = hwpt


def iommufd_hw_pagetable_detach(idev: IommufdDevice) -> HwptPaging:
    """``iommufd_hw_pagetable_detach``: leave the group's page table; the caller puts the returned HWPT."""
    igroup = idev.igroup
    hwpt = igroup.hwpt
    assert hwpt is not None
    igroup.device_list.remove(idev)
    if not igroup.device_list:
        igroup.hwpt = None
    hwpt.ioas.iopt.remove_reserved_iova(idev)
    idev.vdev.domain = None
    return hwpt


def iommufd_hw_pagetable_put(ictx: IommufdCtx, hwpt: HwptPaging) -> None:
    """Drop an attachment's reference: an auto domain disappears with its last device."""
    if hwpt.auto_domain:
        ictx.put_and_try_destroy(hwpt)
    else:
        hwpt.users -= 1


AttachFn = Callable[[IommufdDevice, HwptPaging], Optional[HwptPaging]]


def _do_attach(idev: IommufdDevice, hwpt: HwptPaging) -> Optional[HwptPaging]:
    iommufd_hw_pagetable_attach(hwpt, idev)
    return None


def _remove_group_reserved(igroup: IommufdGroup, hwpt: HwptPaging) -> None:
    for cur in igroup.device_list:
        hwpt.ioas.iopt.remove_reserved_iova(cur)


def _do_replace(idev: IommufdDevice, hwpt: HwptPaging) -> Optional[HwptPaging]:
    """``iommufd_device_do_replace``: move the whole group to ``hwpt``; returns the old HWPT to put."""
    igroup = idev.igroup
    old = igroup.hwpt
    if old is None or not idev.attached:
        raise KernelError(EINVAL, f"{idev.vdev.name} is not attached: nothing to replace")
    if hwpt is old:
        return None
    new_ioas = hwpt.ioas is not old.ioas
    if new_ioas:
        try:
            for cur in igroup.device_list:
                hwpt.ioas.iopt.enforce_dev_resv_regions(cur, dev_reserved_regions(cur.vdev))
        except KernelError:
            _remove_group_reserved(igroup, hwpt)
            raise
    try:
        _domain_compatible(hwpt, idev.vdev)
        if old.fault is None:
            _iopf_enable(hwpt, idev.vdev)
    except KernelError:
        if new_ioas:
            _remove_group_reserved(igroup, hwpt)
        raise
    if new_ioas:
        _remove_group_reserved(igroup, old)
    igroup.hwpt = hwpt
    n = len(igroup.device_list)
    hwpt.users += n
    old.users -= n - 1  # the caller puts the last one
    for cur in igroup.device_list:
        cur.vdev.domain = hwpt
    return old


def _auto_get_domain(idev: IommufdDevice, ioas: "Ioas", do_attach: AttachFn) -> tuple[int, Optional[HwptPaging]]:
    """``iommufd_device_auto_get_domain``: reuse a compatible auto HWPT of ``ioas`` or make a new one.

    Manually allocated HWPTs are never picked.  EINVAL from a candidate means
    "incompatible, try the next"; any other error is the caller's.
    """
    ictx = idev.ictx
    immediate = do_attach is _do_attach
    for hwpt in list(ioas.hwpt_list):
        if not hwpt.auto_domain:
            continue
        try:
            destroy = do_attach(idev, hwpt)
        except KernelError as e:
            if e.errno == EINVAL:
                continue
            raise
        return hwpt.id, destroy
    hwpt = iommufd_hwpt_paging_alloc(ictx, ioas, idev, 0, immediate, False)
    destroy = None
    if not immediate:
        try:
            destroy = do_attach(idev, hwpt)
        except KernelError:
            ictx.object_abort(hwpt)
            raise
    hwpt.auto_domain = True
    return hwpt.id, destroy


def _change_pt(idev: IommufdDevice, pt_id: int, do_attach: AttachFn) -> int:
    """``iommufd_device_change_pt``: attach or replace to an IOAS (auto HWPT) or a HWPT; returns the HWPT id."""
    from .ioas import Ioas

    ictx = idev.ictx
    pt_obj = ictx.objects.get(pt_id)
    if pt_obj is None:
        raise KernelError(ENOENT, f"pt_id {pt_id} names no object")
    if isinstance(pt_obj, HwptPaging):
        destroy = do_attach(idev, pt_obj)
        new_id = pt_id
    elif isinstance(pt_obj, Ioas):
        new_id, destroy = _auto_get_domain(idev, pt_obj, do_attach)
    else:
        raise KernelError(EINVAL, f"pt_id {pt_id} is a {pt_obj.kind}, not an IOAS or a page table")
    if destroy is not None:
        iommufd_hw_pagetable_put(ictx, destroy)
    return new_id


def iommufd_device_attach(idev: IommufdDevice, pt_id: int) -> int:
    new_id = _change_pt(idev, pt_id, _do_attach)
    idev.users += 1
    return new_id


def iommufd_device_replace(idev: IommufdDevice, pt_id: int) -> int:
    return _change_pt(idev, pt_id, _do_replace)


def iommufd_device_detach(idev: IommufdDevice) -> None:
    hwpt = iommufd_hw_pagetable_detach(idev)
    iommufd_hw_pagetable_put(idev.ictx, hwpt)
    idev.users -= 1


# -- the VFIO cdev ioctls (contract 2) ----------------------------------------------------------------
def _iommufd_ctx_from_fd(task: Task, fd: int) -> IommufdCtx:
    """``iommufd_ctx_from_fd``: EBADF for a closed descriptor, EBADFD for one that is not an iommufd."""
    try:
        file = task.fget(fd)
    except KernelError:
        raw = task.fget_raw(fd)  # EBADF when the descriptor is not open at all
        os.close(raw)
        raise KernelError(EBADFD, f"fd {fd} is not an iommufd") from None
    if not isinstance(file, IommufdCtx):
        raise KernelError(EBADFD, f"fd {fd} is a {file.kind}, not an iommufd")
    file.get()
    return file


def _check_token(vdev: "VfioDevice", task: Task, flags: int, token_ptr: int) -> None:
    """``vfio_df_check_token``: a VF token only for drivers that take one (vfio-pci for SR-IOV devices)."""
    match = getattr(vdev.ops, "match_token_uuid", None)
    if match is None:
        if flags & uv.VFIO_DEVICE_BIND_FLAG_TOKEN:
            raise KernelError(EINVAL, "this device takes no VF token")
        return
    uuid = task.mm.read(token_ptr, 16) if flags & uv.VFIO_DEVICE_BIND_FLAG_TOKEN else None
    match(vdev, uuid)


def vfio_df_ioctl_bind_iommufd(df: "DeviceFile", task: Task, arg: UserArg) -> int:
    """``VFIO_DEVICE_BIND_IOMMUFD`` on a cdev: bind to the iommufd ``iommufd`` and grant access.

    Binding, not opening the cdev, is what excludes the group path: EBUSY
    while the group is open, and the group cannot be opened while bound.
    ``argsz`` below 16 (the end of ``out_devid``) is EINVAL; bytes beyond the
    struct must be zero (E2BIG).  EINVAL also for a negative ``iommufd``, an
    unknown flag, a descriptor obtained from a group, a second bind, or a
    device already opened elsewhere.  A descriptor that is not an iommufd is
    EBADFD.  Success writes ``out_devid``.
    """
    minsz = offsetofend(uv.vfio_device_bind_iommufd, "out_devid")
    user_size = int.from_bytes(copy_from_user(task, arg, 0, 4), "little")
    if user_size < minsz:
        raise KernelError(EINVAL, f"argsz {user_size} < {minsz}")
    raw = copy_struct_from_user(task, arg, ctypes.sizeof(uv.vfio_device_bind_iommufd), user_size)
    bind = uv.vfio_device_bind_iommufd.from_buffer(raw)
    if bind.iommufd < 0 or bind.flags & ~uv.VFIO_DEVICE_BIND_FLAG_TOKEN:
        raise KernelError(EINVAL, f"iommufd {bind.iommufd} is negative or flags {bind.flags:#x} unknown")
    if not df.via_cdev:
        raise KernelError(EINVAL, "VFIO_DEVICE_BIND_IOMMUFD is only for descriptors opened from the cdev")
    vdev = df.device
    if vdev.group.opened:  # vfio_device_block_group: the group and cdev paths exclude each other
        raise KernelError(EBUSY, f"group {vdev.group.id} is open: a device of an open group cannot be bound "
                                 "through its cdev")
    vdev.cdev_open += 1
    try:
        if df.access_granted:
            raise KernelError(EINVAL, "this descriptor is already bound")
        _check_token(vdev, task, int(bind.flags), int(bind.token_uuid_ptr))
        ictx = _iommufd_ctx_from_fd(task, int(bind.iommufd))
    except BaseException:
        vdev.cdev_open -= 1
        raise
    try:
        if vdev.open_count != 0:
            raise KernelError(EINVAL, f"{vdev.name} is already open through another descriptor")
        idev = iommufd_device_bind(ictx, vdev)
        try:
            vdev.df_open()
        except BaseException:
            iommufd_device_unbind(idev)
            raise
        try:
            copy_to_user(task, arg, offsetof(uv.vfio_device_bind_iommufd, "out_devid"), _struct.pack("<I", idev.id))
        except KernelError:
            vdev.df_close()
            iommufd_device_unbind(idev)
            raise
    except BaseException:
        ictx.put()
        vdev.cdev_open -= 1
        raise
    vdev.iommufd_binding = idev
    df.access_granted = True
    return 0


def vfio_df_unbind_iommufd(df: "DeviceFile") -> None:
    """The bound cdev closed: close the device, detach it, destroy its DEVICE object, drop the iommufd."""
    if not df.access_granted:
        return
    vdev = df.device
    idev = vdev.iommufd_binding
    vdev.df_close()
    if isinstance(idev, IommufdDevice):
        ictx = idev.ictx
        if idev.attached:
            iommufd_device_detach(idev)
        iommufd_device_unbind(idev)
        ictx.put()  # the reference the bind took from the descriptor
    vdev.iommufd_binding = None
    vdev.domain = None
    vdev.cdev_open -= 1  # vfio_device_unblock_group


def _bound_device(df: "DeviceFile") -> IommufdDevice:
    idev = df.device.iommufd_binding
    if not isinstance(idev, IommufdDevice):
        raise KernelError(EINVAL, f"{df.device.name} is not bound to an iommufd")
    return idev


def vfio_df_ioctl_attach_pt(df: "DeviceFile", task: Task, arg: UserArg) -> int:
    """``VFIO_DEVICE_ATTACH_IOMMUFD_PT``: attach (or replace) to an IOAS or HWPT; ``pt_id`` returns the HWPT.

    ``argsz`` below 12 or unknown flags: EINVAL; ``ATTACH_PASID``: EOPNOTSUPP
    (the driver has no PASID attach).  A bad ``pt_id`` is ENOENT, an object
    that is neither IOAS nor HWPT EINVAL, a reserved-region conflict EADDRINUSE.
    """
    argsz, flags, pt_id = _struct.unpack("<III", copy_from_user(task, arg, 0, 12))
    if argsz < 12:
        raise KernelError(EINVAL, f"argsz {argsz} < 12")
    if flags & ~uv.VFIO_DEVICE_ATTACH_PASID:
        raise KernelError(EINVAL, f"unknown flags {flags:#x}")
    if flags & uv.VFIO_DEVICE_ATTACH_PASID:
        if getattr(df.device.ops, "pasid_attach_ioas", None) is None:
            raise KernelError(EOPNOTSUPP, "the driver cannot attach a PASID")
        if argsz < 16:
            raise KernelError(EINVAL, f"argsz {argsz} < 16 with VFIO_DEVICE_ATTACH_PASID")
        raise KernelError(EOPNOTSUPP, "the simulated IOMMU has no PASID support")
    idev = _bound_device(df)
    if idev.attached:
        new_id = iommufd_device_replace(idev, pt_id)
    else:
        new_id = iommufd_device_attach(idev, pt_id)
    try:
        copy_to_user(task, arg, 8, _struct.pack("<I", new_id))
    except KernelError:
        iommufd_device_detach(idev)
        raise
    return 0


def vfio_df_ioctl_detach_pt(df: "DeviceFile", task: Task, arg: UserArg) -> int:
    """``VFIO_DEVICE_DETACH_IOMMUFD_PT``: block the device's DMA (a no-op when not attached)."""
    argsz, flags = _struct.unpack("<II", copy_from_user(task, arg, 0, 8))
    if argsz < 8:
        raise KernelError(EINVAL, f"argsz {argsz} < 8")
    if flags & ~uv.VFIO_DEVICE_DETACH_PASID:
        raise KernelError(EINVAL, f"unknown flags {flags:#x}")
    if flags & uv.VFIO_DEVICE_DETACH_PASID:
        if getattr(df.device.ops, "pasid_detach_ioas", None) is None:
            raise KernelError(EOPNOTSUPP, "the driver cannot detach a PASID")
        if argsz < 12:
            raise KernelError(EINVAL, f"argsz {argsz} < 12 with VFIO_DEVICE_DETACH_PASID")
        return 0
    idev = _bound_device(df)
    if idev.attached:
        iommufd_device_detach(idev)
    return 0


# -- the group compatibility path (contract 1) --------------------------------------------------------
def vfio_compat_group_attach(ictx: IommufdCtx, group: "VfioGroup") -> None:
    """Bind every device of ``group`` and attach it to the compatibility IOAS (created if none is set)."""
    from .vfio_compat import iommufd_vfio_compat_ioas_create

    if group.id in ictx.compat_groups:
        raise KernelError(EINVAL, f"group {group.id} is already attached to this iommufd")
    ioas = iommufd_vfio_compat_ioas_create(ictx)
    ictx.get()
    devs: list[IommufdDevice] = []
    try:
        for vdev in group.devices:
            idev = iommufd_device_bind(ictx, vdev, compat=True)
            devs.append(idev)
            vdev.iommufd_binding = idev
            iommufd_device_attach(idev, ioas.id)
    except BaseException:
        for idev in reversed(devs):
            if idev.attached:
                iommufd_device_detach(idev)
            iommufd_device_unbind(idev)
        ictx.put()
        raise
    ictx.compat_groups[group.id] = devs


def vfio_compat_group_detach(ictx: IommufdCtx, group: "VfioGroup") -> None:
    """Undo :func:`vfio_compat_group_attach`: detach and unbind the group's devices, DMA blocked again."""
    devs = ictx.compat_groups.pop(group.id, None)
    if devs is None:
        return
    for idev in devs:
        if idev.attached:
            iommufd_device_detach(idev)
        if idev.live:
            iommufd_device_unbind(idev)
    ictx.put()


__all__ = [
    "IommufdDevice", "IommufdGroup", "get_device", "iommufd_device_bind", "iommufd_device_unbind",
    "iommufd_device_attach", "iommufd_device_replace", "iommufd_device_detach", "iommufd_hw_pagetable_attach",
    "iommufd_hw_pagetable_detach", "iommufd_hw_pagetable_put", "vfio_df_ioctl_bind_iommufd",
    "vfio_df_unbind_iommufd", "vfio_df_ioctl_attach_pt", "vfio_df_ioctl_detach_pt",
    "vfio_compat_group_attach", "vfio_compat_group_detach",
]
