"""The vIOMMU family (``drivers/iommu/iommufd/viommu.c`` and the vEVENTQ half of ``eventq.c``).

A vIOMMU is the slice of a physical IOMMU given to one VM; vDEVICEs, vEVENTQs
and HW queues hang off it.  All of it needs an IOMMU driver with vIOMMU
support (``get_viommu_size``/``viommu_init``), which the x86 intel-iommu
driver this simulation follows does not have.  So ``IOMMU_VIOMMU_ALLOC``
fails with EOPNOTSUPP once its arguments and device check out, no vIOMMU
ever exists, and the commands that take a vIOMMU id end in ENOENT after
their own argument checks -- the same errnos, in the same order, as the
kernel's code gives on such a machine.
"""

from __future__ import annotations

from ...uapi import iommufd as ui
from ..errno import EINVAL, EOPNOTSUPP, EOVERFLOW, KernelError
from .io_pagetable import ULONG_MAX
from .main import IommufdObject, Ucmd


class Viommu(IommufdObject):
    """``struct iommufd_viommu`` (never instantiated: the simulated IOMMU cannot make one)."""

    kind = "VIOMMU"


def _get_viommu(ucmd: Ucmd, viommu_id: int) -> Viommu:
    return ucmd.ictx.get_object(viommu_id, Viommu)


def iommufd_viommu_alloc_ioctl(ucmd: Ucmd) -> int:
    """``IOMMU_VIOMMU_ALLOC``: EOPNOTSUPP for flags or the DEFAULT type, ENOENT for ``dev_id``, then
    EOPNOTSUPP because the IOMMU driver has no vIOMMU ops."""
    from .device import get_device

    cmd = ucmd.cmd
    if cmd.flags or cmd.type == ui.IOMMU_VIOMMU_TYPE_DEFAULT:
        raise KernelError(EOPNOTSUPP, f"flags {cmd.flags:#x} or vIOMMU type {cmd.type} not supported")
    idev = get_device(ucmd.ictx, cmd.dev_id)
    raise KernelError(EOPNOTSUPP, f"{idev.vdev.name}: the IOMMU driver has no vIOMMU support")


def iommufd_vdevice_alloc_ioctl(ucmd: Ucmd) -> int:
    """``IOMMU_VDEVICE_ALLOC``: needs a vIOMMU, so ENOENT."""
    cmd = ucmd.cmd
    if cmd.virt_id > ULONG_MAX:
        raise KernelError(EINVAL, "virt_id out of range")
    _get_viommu(ucmd, int(cmd.viommu_id))
    raise AssertionError("unreachable")  # pragma: no cover


def iommufd_veventq_alloc(ucmd: Ucmd) -> int:
    """``IOMMU_VEVENTQ_ALLOC``: EOPNOTSUPP for flags/__reserved/DEFAULT type, EINVAL for depth 0, else ENOENT."""
    cmd = ucmd.cmd
    if cmd.flags or getattr(cmd, "__reserved") or cmd.type == ui.IOMMU_VEVENTQ_TYPE_DEFAULT:
        raise KernelError(EOPNOTSUPP, "flags, __reserved or the DEFAULT type")
    if not cmd.veventq_depth:
        raise KernelError(EINVAL, "veventq_depth 0")
    _get_viommu(ucmd, int(cmd.viommu_id))
    raise AssertionError("unreachable")  # pragma: no cover


def iommufd_hw_queue_alloc_ioctl(ucmd: Ucmd) -> int:
    """``IOMMU_HW_QUEUE_ALLOC``: EOPNOTSUPP for flags/DEFAULT type, EINVAL for length 0, EOVERFLOW, else ENOENT."""
    cmd = ucmd.cmd
    if cmd.flags or cmd.type == ui.IOMMU_HW_QUEUE_TYPE_DEFAULT:
        raise KernelError(EOPNOTSUPP, "flags or the DEFAULT queue type")
    if not cmd.length:
        raise KernelError(EINVAL, "length 0")
    if cmd.nesting_parent_iova + cmd.length - 1 > ULONG_MAX:
        raise KernelError(EOVERFLOW, "nesting_parent_iova + length overflows")
    _get_viommu(ucmd, int(cmd.viommu_id))
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["Viommu", "iommufd_viommu_alloc_ioctl", "iommufd_vdevice_alloc_ioctl", "iommufd_veventq_alloc",
           "iommufd_hw_queue_alloc_ioctl"]
