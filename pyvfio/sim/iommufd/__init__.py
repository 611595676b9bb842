"""iommufd in the simulated kernel (``drivers/iommu/iommufd/*.c``).

Opening ``/dev/iommu`` gives an :class:`~.main.IommufdCtx`: a table of
objects named by u32 ids -- IO address spaces (:mod:`.ioas`, backed by an
:mod:`.io_pagetable`), hardware page tables (:mod:`.hw_pagetable`, the DMA
domains devices translate through), bound devices (:mod:`.device`, which also
holds the VFIO cdev side: ``VFIO_DEVICE_BIND_IOMMUFD`` and the attach/detach
ioctls), page-fault queues (:mod:`.eventq`) and the vIOMMU family
(:mod:`.viommu`, refused as on an x86 machine without nesting support).
"""

from .main import IommufdCtx

__all__ = ["IommufdCtx"]
