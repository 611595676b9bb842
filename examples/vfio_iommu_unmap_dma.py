"""VFIO_IOMMU_UNMAP_DMA: take mappings away again; ``size`` comes back as the number of bytes unmapped.

struct vfio_iommu_type1_dma_unmap: ``iova`` and ``size`` (page-aligned).
With type1v2 the range must not cut a mapping in two (EINVAL); it may cover
any number of whole mappings, or none -- then 0 bytes are unmapped and the
call still succeeds.  FLAG_ALL (with iova and size 0) removes everything.
Flags VADDR and GET_DIRTY_BITMAP serve live update and migration.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, expect_errno, legacy, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_UNMAP_DMA", "the container fd")
    k = t.kernel
    with anon_memory(8 * PAGE) as (buf, vaddr), legacy(t, device=False) as lg:
        for i, (iova, size) in enumerate([(IOVA, 2 * PAGE), (IOVA + 0x10000, 2 * PAGE), (IOVA + 0x20000, PAGE)]):
            k.ioctl(lg.container, vfio.VFIO_IOMMU_MAP_DMA, argsz(
                vfio.vfio_iommu_type1_dma_map, vaddr=vaddr + 2 * i * PAGE, iova=iova, size=size,
                flags=vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE))
        say(f"mapped [{IOVA:#x} +2 pages], [{IOVA + 0x10000:#x} +2 pages], [{IOVA + 0x20000:#x} +1 page]")

        half = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=IOVA, size=PAGE)
        expect_errno("unmap the first page of a 2-page mapping",
                     lambda: k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, half), errno.EINVAL)
        unmap = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=IOVA, size=2 * PAGE)
        show("before", unmap)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, unmap)
        show("after", unmap)
        say(f"unmapped {unmap.size:#x} bytes (the whole first mapping)")
        nothing = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=0x800000, size=PAGE)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, nothing)
        say(f"a range with no mapping -> 0 and size {nothing.size}: nothing to do is not an error in type1")
        everything = argsz(vfio.vfio_iommu_type1_dma_unmap, flags=vfio.VFIO_DMA_UNMAP_FLAG_ALL)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, everything)
        say(f"FLAG_ALL -> unmapped {everything.size:#x} bytes (the other two mappings)")
    return ran("mappings removed")


if __name__ == "__main__":
    raise SystemExit(run(main))
