"""VFIO groups, ``/dev/vfio/<group>`` (``drivers/vfio/group.c``).

An IOMMU group is the unit of isolation: the legacy API hands a whole group
to one user, who attaches it to a container (or, in the iommufd compat mode,
to an iommufd) and only then may open the devices in it.  The group file is
single-open, excludes the cdev path of its devices, and is kept alive by the
device files opened through it: closing the group descriptor while a device
is open changes nothing until that device closes too.  The final release
detaches the container, which tears down its IOMMU state when this was its
last group.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Any, Optional

from ..uapi import vfio as uv
from .errno import EBADF, EBADFD, EBUSY, EINVAL, ENODEV, ENOTTY, EPERM, KernelError
from .file import File, Task, UserArg
from .vfio_iommu_type1 import VfioGroupType

if TYPE_CHECKING:
    from .container import VfioContainer
    from .iommufd.main import IommufdCtx
    from .vfio_main import DeviceFile, Vfio, VfioDevice


class VfioGroup:
    """``struct vfio_group`` for one IOMMU group of the simulated machine.

    Model knobs a test may set right after plugging devices in:

    * ``viable`` -- False when some device of the group is bound to a kernel
      driver that does DMA (the kernel's ``iommu_group_dma_owner_claimed``):
      the group cannot join a container (EPERM) and GET_STATUS omits VIABLE.
    * ``type`` -- :class:`VfioGroupType`: ``VFIO_NO_IOMMU`` for an unsafe
      no-IOMMU group (``/dev/vfio/noiommu-N``), ``VFIO_EMULATED_IOMMU`` for an
      mdev-like group whose DMA goes through ``vfio_dma_rw``.

    ``str(group)`` and ``int(group)`` give the group number, so
    ``f"/dev/vfio/{vdev.group}"`` names the node.
    """

    def __init__(self, core: "Vfio", id: int, type: VfioGroupType = VfioGroupType.VFIO_IOMMU) -> None:
        self.core = core
        self.id = id
        self.type = type
        self.devices: list["VfioDevice"] = []
        self.viable = True
        self.owner_claimed = False  # vfio holds DMA ownership (iommu_group_claim_dma_owner)
        self.container: Optional["VfioContainer"] = None
        self.container_users = 0
        self.iommufd: Any = None  # the IommufdCtx in compat mode
        self.file: Optional[VfioGroupFile] = None  # group->opened_file
        self.device_files: dict["DeviceFile", bool] = {}  # open device files -> opened through the container
        self._iommufd_detach_pending: Any = None

    def __str__(self) -> str:
        return str(self.id)

    def __int__(self) -> int:
        return self.id

    def __index__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        state = "container" if self.container else "iommufd" if self.iommufd is not None else "unattached"
        return f"<VfioGroup {self.id} ({self.type.name}, {len(self.devices)} devices, {state})>"

    @property
    def path(self) -> str:
        prefix = "noiommu-" if self.type == VfioGroupType.VFIO_NO_IOMMU else ""
        return f"/dev/vfio/{prefix}{self.id}"

    @property
    def opened(self) -> bool:
        """The group file exists: its descriptor, or a device file opened through it, is still open."""
        return self.file is not None

    def vfio_group_has_iommu(self) -> bool:
        return self.container is not None or self.iommufd is not None

    # -- DMA ownership (iommu_group_claim_dma_owner and friends) -----------------------------------------
    def iommu_group_dma_owner_claimed(self) -> bool:
        """Someone owns the group's DMA: vfio through a container, a kernel driver (not viable), or an iommufd
        that a device opened in compat mode is still bound to after UNSET_CONTAINER."""
        return self.owner_claimed or not self.viable or self._iommufd_detach_pending is not None

    def iommu_group_claim_dma_owner(self) -> None:
        """VFIO takes DMA ownership of every device in the group: EPERM if anyone already has it."""
        if self.iommu_group_dma_owner_claimed():
            raise KernelError(EPERM, f"group {self.id} is not viable: a device in it is bound to a kernel "
                                     "driver that does DMA")
        self.owner_claimed = True

    def iommu_group_release_dma_owner(self) -> None:
        self.owner_claimed = False

    # -- open / release ---------------------------------------------------------------------------------
    def open(self, task: Task) -> "VfioGroupFile":
        """``vfio_group_fops_open``: one opener at a time, and never while a device's cdev is open."""
        if not self.devices:
            raise KernelError(ENODEV, f"group {self.id} has no device bound to a VFIO driver")
        if self.type == VfioGroupType.VFIO_NO_IOMMU and not task.capable("CAP_SYS_RAWIO"):
            raise KernelError(EPERM, f"no-IOMMU group {self.id} needs CAP_SYS_RAWIO")
        busy = [vdev.name for vdev in self.devices if vdev.cdev_open > 0]
        if busy:
            raise KernelError(EBUSY, f"the cdev of {busy[0]} is open: the group and cdev paths exclude each other")
        if self.file is not None:
            raise KernelError(EBUSY, f"group {self.id} is already open (a device opened through it keeps it open)")
        self.file = VfioGroupFile(self)
        return self.file

    def vfio_group_fops_release(self) -> None:
        """The last reference to the group file is gone: detach from the container or iommufd."""
        if self.container is not None:
            self.container.vfio_group_detach_container(self)
        if self.iommufd is not None:
            self.iommufd.vfio_compat_group_detach(self)
            self.iommufd = None
        self.file = None

    def device_file_closed(self, df: "DeviceFile") -> None:
        """A device file from GET_DEVICE_FD closed: it no longer uses the container or holds the group file."""
        used_container = self.device_files.pop(df, False)
        if used_container and self.container is not None:
            self.container.vfio_group_unuse_container(self)
        if not self.device_files and self._iommufd_detach_pending is not None:
            self._iommufd_detach_pending.vfio_compat_group_detach(self)
            self._iommufd_detach_pending = None
        if self.file is not None and self.file.closed and not self.device_files:
            self.vfio_group_fops_release()

    # -- ioctls -------------------------------------------------------------------------------------------
    def vfio_group_ioctl_get_status(self, arg: UserArg) -> int:
        """CONTAINER_SET|VIABLE once attached; before, VIABLE unless a kernel driver owns a device's DMA."""
        minsz = ctypes.sizeof(uv.vfio_group_status)
        status = uv.vfio_group_status.from_buffer_copy(arg.bytes(0, minsz))
        if status.argsz < minsz:
            raise KernelError(EINVAL, f"argsz {status.argsz} < {minsz}")
        flags = 0
        if self.vfio_group_has_iommu():
            flags = uv.VFIO_GROUP_FLAGS_CONTAINER_SET | uv.VFIO_GROUP_FLAGS_VIABLE
        elif not self.iommu_group_dma_owner_claimed():
            flags = uv.VFIO_GROUP_FLAGS_VIABLE
        status.flags = flags
        arg.write(0, bytes(status))
        return 0

    def vfio_group_ioctl_set_container(self, task: Task, arg: UserArg) -> int:
        """Attach to the container (or iommufd) whose descriptor the ``int`` argument holds.

        EBADF for a closed descriptor, EINVAL when already attached, EBADFD
        for a descriptor that is neither a container nor an iommufd.
        """
        fd = arg.s32()
        file = _fget_vfio_file(task, fd)
        if self.vfio_group_has_iommu():
            where = "a container" if self.container is not None else "an iommufd"
            raise KernelError(EINVAL, f"group {self.id} is already attached to {where}")
        from .container import VfioContainer

        if isinstance(file, VfioContainer):
            file.vfio_container_attach_group(task, self)
            return 0
        ictx = _as_iommufd(file)
        if ictx is not None:
            ictx.vfio_compat_group_attach(self)
            self.iommufd = ictx
            return 0
        kind = file.kind if file is not None else "not a VFIO or iommufd descriptor"
        raise KernelError(EBADFD, f"fd {fd} is {kind}, not a container or an iommufd")

    def vfio_group_ioctl_unset_container(self) -> int:
        """Detach from the container; EBUSY while devices opened through it are open."""
        if not self.vfio_group_has_iommu():
            raise KernelError(EINVAL, f"group {self.id} is not attached to a container")
        if self.container is not None:
            if self.container_users != 1:
                raise KernelError(EBUSY, f"{self.container_users - 1} device file(s) of group {self.id} are open")
            self.container.vfio_group_detach_container(self)
        if self.iommufd is not None:
            # The kernel allows this with devices open: they stay bound to the iommufd until they close.
            if self.device_files:
                self._iommufd_detach_pending = self.iommufd
            else:
                self.iommufd.vfio_compat_group_detach(self)
            self.iommufd = None
        return 0

    def vfio_group_ioctl_get_device_fd(self, task: Task, arg: UserArg) -> int:
        """Open a device of the group by name: ENODEV if it is not here, EINVAL without an IOMMU backend."""
        from .vfio_main import DeviceFile

        name = arg.cstring(limit=4096)
        vdev = next((d for d in self.devices if d.name == name), None)
        if vdev is None:
            raise KernelError(ENODEV, f"group {self.id} has no device {name!r} "
                                      f"(it has {', '.join(d.name for d in self.devices)})")
        if not self.vfio_group_has_iommu():
            raise KernelError(EINVAL, f"group {self.id} is not attached to a container or iommufd")
        use_container = self.container is not None
        if self.container is not None:
            self.container.vfio_group_use_container(task, self)
        elif self.iommu_group_dma_owner_claimed():
            raise KernelError(EPERM, f"group {self.id} is not viable: a device in it is bound to a kernel "
                                     "driver that does DMA")
        df = DeviceFile(vdev, via_cdev=False)
        try:
            vdev.df_open()
        except KernelError:
            if self.container is not None:
                self.container.vfio_group_unuse_container(self)
            raise
        self.device_files[df] = use_container
        try:
            return task.fd_install(df)
        except KernelError:
            df.release()
            raise


def _as_iommufd(file: Optional[File]) -> Optional["IommufdCtx"]:
    """The iommufd context if ``file`` is ``/dev/iommu`` (``iommufd_ctx_from_file``)."""
    from .iommufd.main import IommufdCtx

    return file if isinstance(file, IommufdCtx) else None


def _fget_vfio_file(task: Task, fd: int) -> Optional[File]:
    """``fdget``: the model file behind ``fd``; None for an open descriptor the model does not know; EBADF if closed."""
    try:
        return task.fget(fd)
    except KernelError:
        pass
    try:
        raw = task.fget_raw(fd)
    except KernelError:
        raise KernelError(EBADF, f"fd {fd} is not open") from None
    os.close(raw)
    return None


class VfioGroupFile(File):
    """The open ``/dev/vfio/<group>``: the group's four ioctls."""

    kind = "group"

    def __init__(self, group: VfioGroup) -> None:
        self.group = group
        self.name = group.path
        self.closed = False

    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        if request == uv.VFIO_GROUP_GET_DEVICE_FD:
            return self.group.vfio_group_ioctl_get_device_fd(task, arg)
        if request == uv.VFIO_GROUP_GET_STATUS:
            return self.group.vfio_group_ioctl_get_status(arg)
        if request == uv.VFIO_GROUP_SET_CONTAINER:
            return self.group.vfio_group_ioctl_set_container(task, arg)
        if request == uv.VFIO_GROUP_UNSET_CONTAINER:
            return self.group.vfio_group_ioctl_unset_container()
        raise KernelError(ENOTTY, f"{self.name} has no ioctl {request:#x}")

    def release(self) -> None:
        """The descriptor closed; device files opened through the group keep it alive until they close."""
        self.closed = True
        if not self.group.device_files:
            self.group.vfio_group_fops_release()

    def check_invariants(self) -> None:
        """The group, its container and its devices agree (also checks a container whose fd is already closed)."""
        group = self.group
        assert group.file is self
        assert not (group.container is not None and group.iommufd is not None)
        in_container = sum(group.device_files.values())
        if group.container is not None:
            assert group in group.container.group_list
            assert group.container_users == 1 + in_container, (group.container_users, in_container)
            assert group.owner_claimed == (group.type == VfioGroupType.VFIO_IOMMU)
            group.container.check_invariants()
        else:
            assert group.container_users == 0 and in_container == 0 and not group.owner_claimed
            if group.iommufd is None and group._iommufd_detach_pending is None:
                for vdev in group.devices:
                    assert vdev.domain is None, vdev
        for df in group.device_files:
            assert not df.released and df.device in group.devices


__all__ = ["VfioGroup", "VfioGroupFile", "VfioGroupType"]
