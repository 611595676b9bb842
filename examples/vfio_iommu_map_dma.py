"""VFIO_IOMMU_MAP_DMA: let the device reach a piece of your memory at an IO virtual address (type1).

struct vfio_iommu_type1_dma_map: ``vaddr`` (your buffer), ``iova`` (the
address the device will use), ``size`` and ``flags`` READ/WRITE (the device
may read / write it).  The kernel pins the pages and programs the IOMMU; all
three numbers must be multiples of the IOMMU page size.  A range that
overlaps an existing mapping is EEXIST.

The proof: the edu device copies bytes from IOVA to its own buffer and back
to IOVA + 4096 -- it only reaches your memory through this mapping.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, edu_of, expect_errno, legacy, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_MAP_DMA", "the container fd")
    k = t.kernel
    with anon_memory(4 * PAGE) as (buf, vaddr), legacy(t) as lg:
        m = argsz(vfio.vfio_iommu_type1_dma_map, vaddr=vaddr, iova=IOVA, size=len(buf),
                  flags=vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE)
        show("request", m)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_MAP_DMA, m)
        say(f"ioctl(container, VFIO_IOMMU_MAP_DMA) -> 0: IOVA [{IOVA:#x}, {IOVA + len(buf) - 1:#x}] "
            f"now reaches this process's {vaddr:#x}")
        ok = edu_of(t, lg.device).copy_through_device(buf, IOVA)
        say(f"the edu copied 256 bytes from IOVA {IOVA:#x} to {IOVA + PAGE:#x} through the IOMMU: "
            f"{'the bytes arrived' if ok else 'NOTHING ARRIVED'}")
        overlap = argsz(vfio.vfio_iommu_type1_dma_map, vaddr=vaddr, iova=IOVA + PAGE, size=PAGE,
                        flags=vfio.VFIO_DMA_MAP_FLAG_READ)
        expect_errno(f"a second mapping over IOVA {IOVA + PAGE:#x}",
                     lambda: k.ioctl(lg.container, vfio.VFIO_IOMMU_MAP_DMA, overlap), errno.EEXIST)
        unmap = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=IOVA, size=len(buf))
        k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, unmap)  # before the memory goes away
    if not ok:
        raise SystemExit("device DMA did not reach the mapped memory")
    return ran("mapped; the device did DMA through the mapping")


if __name__ == "__main__":
    raise SystemExit(run(main))
