"""CPR for the legacy type1 container: virtual addresses are withdrawn, then re-registered.

The container keeps every mapping (pages stay pinned, the device keeps doing
DMA); only the process address behind each mapping changes.  Old side:
``VFIO_IOMMU_UNMAP_DMA{flags=VADDR|ALL}`` invalidates every vaddr in one call
(the kernel rolls back on failure, so it is all or nothing).  New side:
``VFIO_IOMMU_MAP_DMA{flags=VADDR}`` per mapping at its new address, which must
name the old mapping exactly.  If the hand-off fails the old side
re-registers its own addresses and carries on.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any, Callable, Iterable

from ..errors import VfioError
from ..uapi import vfio as uv
from .blockers import Blocker, legacy_container_blockers
from .state import MappingRecord


def _unmap(**fields: Any) -> Any:
    return uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap), **fields)


def _map(**fields: Any) -> Any:
    return uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map), **fields)


def blockers(kernel: Any, container_fd: int) -> list[Blocker]:
    return legacy_container_blockers(kernel, container_fd)


def invalidate_vaddrs(kernel: Any, container_fd: int) -> None:
    """Old side: withdraw every vaddr at once; DMA keeps flowing to the pinned pages."""
    kernel.ioctl(container_fd, uv.VFIO_IOMMU_UNMAP_DMA,
                 _unmap(flags=uv.VFIO_DMA_UNMAP_FLAG_VADDR | uv.VFIO_DMA_UNMAP_FLAG_ALL, iova=0, size=0))


def register_vaddrs(kernel: Any, container_fd: int, mappings: Iterable[MappingRecord],
                    vaddr_of: Callable[[MappingRecord], int]) -> int:
    """Give every (invalidated) mapping its address in *this* process; returns how many were done."""
    n = 0
    for m in mappings:
        kernel.ioctl(container_fd, uv.VFIO_IOMMU_MAP_DMA,
                     _map(flags=uv.VFIO_DMA_MAP_FLAG_VADDR, vaddr=vaddr_of(m), iova=m.iova, size=m.size))
        n += 1
    return n


def restore_vaddrs(kernel: Any, container_fd: int, mappings: Iterable[MappingRecord],
                   vaddr_of: Callable[[MappingRecord], int]) -> int:
    """Old side after a failed hand-off: point every mapping back at this process.

    A new process that died part-way may already have re-registered some
    mappings at *its* addresses; those are valid again, so FLAG_VADDR says
    EINVAL for them -- withdraw just that one and register ours.
    """
    n = 0
    for m in mappings:
        arg = _map(flags=uv.VFIO_DMA_MAP_FLAG_VADDR, vaddr=vaddr_of(m), iova=m.iova, size=m.size)
        try:
            kernel.ioctl(container_fd, uv.VFIO_IOMMU_MAP_DMA, arg)
        except VfioError as e:
            if e.errno != errno.EINVAL:
                raise
            kernel.ioctl(container_fd, uv.VFIO_IOMMU_UNMAP_DMA,
                         _unmap(flags=uv.VFIO_DMA_UNMAP_FLAG_VADDR, iova=m.iova, size=m.size))
            kernel.ioctl(container_fd, uv.VFIO_IOMMU_MAP_DMA, arg)
        n += 1
    return n


def map_dma(kernel: Any, container_fd: int, vaddr: int, iova: int, size: int) -> None:
    """An ordinary read/write mapping (what the owner does before any CPR)."""
    kernel.ioctl(container_fd, uv.VFIO_IOMMU_MAP_DMA,
                 _map(flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE, vaddr=vaddr, iova=iova,
                      size=size))
