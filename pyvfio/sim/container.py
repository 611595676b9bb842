"""The legacy VFIO container, ``/dev/vfio/vfio`` (``drivers/vfio/container.c``).

A container is an unprivileged, empty IOMMU context until a group joins it
(``VFIO_GROUP_SET_CONTAINER``); only then may ``VFIO_SET_IOMMU`` pick a
backend (type1 here, or the unsafe no-IOMMU one), and from then on every
ioctl the container does not know goes to that backend.  The container
outlives its descriptor while groups hold it, and loses its backend -- all
mappings included -- when its last group leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Protocol

from ..uapi import vfio as uv
from .errno import EINVAL, ENODEV, ENOTTY, EPERM, KernelError
from .file import File, Task, UserArg
from .vfio_iommu_type1 import VFIO_IOMMU_DRIVER_TYPE1, VfioGroupType, VfioIommu

if TYPE_CHECKING:
    from .group import VfioGroup
    from .vfio_main import Vfio

U64_MAX = (1 << 64) - 1


class VfioIommuDriverOps(Protocol):
    """``struct vfio_iommu_driver_ops``: an IOMMU backend a container can use."""

    name: str

    def check_extension(self, data: Any, arg: int) -> int: ...

    def open(self, core: "Vfio", task: Task, arg: int) -> Any: ...

    def release(self, data: Any) -> None: ...

    def attach_group(self, data: Any, task: Optional[Task], group: "VfioGroup") -> None: ...

    def detach_group(self, data: Any, group: "VfioGroup") -> None: ...

    def ioctl(self, data: Any, task: Task, request: int, arg: UserArg) -> int: ...


def noiommu_mode_enabled(core: "Vfio") -> bool:
    """The vfio module parameter ``enable_unsafe_noiommu_mode``: set on the model, or implied by a no-IOMMU group."""
    return bool(getattr(core, "enable_unsafe_noiommu_mode", False)) or any(
        g.type == VfioGroupType.VFIO_NO_IOMMU for g in core.groups.values())


class _NoIommuState:
    """What the no-IOMMU backend keeps per container: nothing but the machine it belongs to."""

    def __init__(self, core: "Vfio") -> None:
        self.core = core


class NoIommuDriver:
    """``vfio_noiommu_ops``: a backend that translates nothing; devices DMA to physical addresses."""

    name = "vfio-noiommu"

    def check_extension(self, data: Any, arg: int) -> int:
        core = data.core if isinstance(data, _NoIommuState) else None
        enabled = True if core is None else noiommu_mode_enabled(core)
        return int(enabled and arg == uv.VFIO_NOIOMMU_IOMMU)

    def open(self, core: "Vfio", task: Task, arg: int) -> Any:
        if arg != uv.VFIO_NOIOMMU_IOMMU:
            raise KernelError(EINVAL, f"the no-IOMMU backend cannot be opened as type {arg}")
        if not task.capable("CAP_SYS_RAWIO"):
            raise KernelError(EPERM, "the no-IOMMU backend needs CAP_SYS_RAWIO")
        return _NoIommuState(core)

    def release(self, data: Any) -> None:
        pass

    def attach_group(self, data: Any, task: Optional[Task], group: "VfioGroup") -> None:
        pass

    def detach_group(self, data: Any, group: "VfioGroup") -> None:
        pass

    def ioctl(self, data: Any, task: Task, request: int, arg: UserArg) -> int:
        raise KernelError(ENOTTY, f"the no-IOMMU backend has no ioctl {request:#x}")


VFIO_NOIOMMU_DRIVER = NoIommuDriver()


def vfio_iommu_drivers() -> list[VfioIommuDriverOps]:
    """The registered backends in list order: type1 (a module loaded after VFIO core, so first), then noiommu."""
    return [VFIO_IOMMU_DRIVER_TYPE1, VFIO_NOIOMMU_DRIVER]


class VfioContainer(File):
    """``struct vfio_container`` and its file: groups, the chosen backend and its state.

    ``iommu_driver``/``iommu_data`` are None until ``VFIO_SET_IOMMU``; for type1
    ``iommu_data`` is the :class:`~pyvfio.sim.vfio_iommu_type1.VfioIommu`.
    """

    kind = "container"
    name = "/dev/vfio/vfio"

    def __init__(self, core: "Vfio") -> None:
        self.core = core
        self.group_list: list["VfioGroup"] = []
        self.iommu_driver: Optional[VfioIommuDriverOps] = None
        self.iommu_data: Any = None
        self.noiommu = False
        self.file_open = True

    def __repr__(self) -> str:
        driver = self.iommu_driver.name if self.iommu_driver else "no backend"
        return f"<VfioContainer {driver}, groups {[g.id for g in self.group_list]}>"

    @property
    def iommu(self) -> Optional[VfioIommu]:
        """The type1 state when type1 is the backend (for tests and tools)."""
        return self.iommu_data if isinstance(self.iommu_data, VfioIommu) else None

    # -- file operations --------------------------------------------------------------------------------
    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        """``vfio_fops_unl_ioctl``: three ioctls of its own, the rest to the backend (EINVAL without one)."""
        if request == uv.VFIO_GET_API_VERSION:
            return uv.VFIO_API_VERSION
        if request == uv.VFIO_CHECK_EXTENSION:
            return self.vfio_container_ioctl_check_extension(arg.value & U64_MAX)
        if request == uv.VFIO_SET_IOMMU:
            return self.vfio_ioctl_set_iommu(task, arg.value & U64_MAX)
        if self.iommu_driver is None:
            raise KernelError(EINVAL, f"ioctl {request:#x} needs an IOMMU backend: call VFIO_SET_IOMMU first")
        return self.iommu_driver.ioctl(self.iommu_data, task, request, arg)

    def release(self) -> None:
        """The descriptor closed; the container itself lives on while groups are attached."""
        self.file_open = False

    # -- container.c ------------------------------------------------------------------------------------
    def vfio_iommu_driver_allowed(self, driver: VfioIommuDriverOps) -> bool:
        """Only no-IOMMU containers may use the no-IOMMU backend, and they may use nothing else."""
        return self.noiommu == (driver is VFIO_NOIOMMU_DRIVER)

    def vfio_container_ioctl_check_extension(self, arg: int) -> int:
        """With a backend, ask it; without, ask each backend allowed here and answer the first "yes"."""
        if self.iommu_driver is not None:
            return self.iommu_driver.check_extension(self.iommu_data, arg)
        ret = 0
        for driver in vfio_iommu_drivers():
            if self.group_list and not self.vfio_iommu_driver_allowed(driver):
                continue
            probe = _NoIommuState(self.core) if driver is VFIO_NOIOMMU_DRIVER else None
            ret = driver.check_extension(probe, arg)
            if ret > 0:
                break
        return ret

    def vfio_ioctl_set_iommu(self, task: Task, arg: int) -> int:
        """Open the first allowed backend that claims type ``arg`` and attach every group to it.

        EINVAL without a group (the container only gains privilege through
        one) or with a backend already set; ENODEV if no backend takes the type.
        """
        if not self.group_list:
            raise KernelError(EINVAL, "the container has no group: VFIO_GROUP_SET_CONTAINER first")
        if self.iommu_driver is not None:
            raise KernelError(EINVAL, f"the IOMMU backend is already set ({self.iommu_driver.name})")
        error = KernelError(ENODEV, f"no IOMMU backend supports type {arg}")
        for driver in vfio_iommu_drivers():
            if not self.vfio_iommu_driver_allowed(driver):
                continue
            probe = _NoIommuState(self.core) if driver is VFIO_NOIOMMU_DRIVER else None
            if driver.check_extension(probe, arg) <= 0:
                continue
            try:
                data = driver.open(self.core, task, arg)
            except KernelError as e:
                error = e
                continue
            attached: list["VfioGroup"] = []
            try:
                for group in self.group_list:
                    driver.attach_group(data, task, group)
                    attached.append(group)
            except KernelError as e:
                for group in reversed(attached):
                    driver.detach_group(data, group)
                driver.release(data)
                error = e
                continue
            self.iommu_driver, self.iommu_data = driver, data
            return 0
        raise error

    def vfio_container_attach_group(self, task: Task, group: "VfioGroup") -> None:
        """A group joins: privilege checks, DMA ownership, and attach to the backend if one is set."""
        noiommu_group = group.type == VfioGroupType.VFIO_NO_IOMMU
        if noiommu_group and not task.capable("CAP_SYS_RAWIO"):
            raise KernelError(EPERM, f"no-IOMMU group {group.id} needs CAP_SYS_RAWIO")
        if self.group_list and self.noiommu != noiommu_group:
            raise KernelError(EPERM, "no-IOMMU groups and IOMMU groups cannot share a container")
        claimed = False
        if group.type == VfioGroupType.VFIO_IOMMU:
            group.iommu_group_claim_dma_owner()
            claimed = True
        if self.iommu_driver is not None:
            try:
                self.iommu_driver.attach_group(self.iommu_data, task, group)
            except KernelError:
                if claimed:
                    group.iommu_group_release_dma_owner()
                raise
        group.container = self
        group.container_users = 1
        self.noiommu = noiommu_group
        self.group_list.append(group)

    def vfio_group_detach_container(self, group: "VfioGroup") -> None:
        """A group leaves; the last one takes the backend and its mappings with it."""
        assert group.container is self and group.container_users == 1
        if self.iommu_driver is not None:
            self.iommu_driver.detach_group(self.iommu_data, group)
        if group.type == VfioGroupType.VFIO_IOMMU:
            group.iommu_group_release_dma_owner()
        group.container = None
        group.container_users = 0
        self.group_list.remove(group)
        if self.iommu_driver is not None and not self.group_list:
            self.iommu_driver.release(self.iommu_data)
            self.iommu_driver, self.iommu_data = None, None

    def vfio_group_use_container(self, task: Task, group: "VfioGroup") -> None:
        """A device of the group opens: it needs a backend, and no-IOMMU devices need CAP_SYS_RAWIO."""
        if self.iommu_driver is None:
            raise KernelError(EINVAL, f"group {group.id}'s container has no IOMMU backend: VFIO_SET_IOMMU first")
        if group.type == VfioGroupType.VFIO_NO_IOMMU and not task.capable("CAP_SYS_RAWIO"):
            raise KernelError(EPERM, "opening a no-IOMMU device needs CAP_SYS_RAWIO")
        group.container_users += 1

    def vfio_group_unuse_container(self, group: "VfioGroup") -> None:
        assert group.container_users > 1
        group.container_users -= 1

    # -- model invariants -------------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Groups and container agree, the backend exists iff groups do (after SET_IOMMU), type1 is consistent."""
        for group in self.group_list:
            assert group.container is self, group
            assert group.container_users == 1 + sum(group.device_files.values()), group
            assert (group.type == VfioGroupType.VFIO_NO_IOMMU) == self.noiommu, group
        if not self.group_list:
            assert self.iommu_driver is None and self.iommu_data is None
        iommu = self.iommu
        if iommu is not None:
            iommu.check_invariants()
            attached = set(map(id, iommu.groups + iommu.emulated_groups))
            assert attached == set(map(id, self.group_list)), (iommu.groups, self.group_list)


__all__ = ["VfioContainer", "VfioIommuDriverOps", "NoIommuDriver", "VFIO_NOIOMMU_DRIVER", "vfio_iommu_drivers",
           "noiommu_mode_enabled"]
