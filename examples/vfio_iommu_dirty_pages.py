"""VFIO_IOMMU_DIRTY_PAGES: track which mapped pages devices may have written (for live migration).

struct vfio_iommu_type1_dirty_bitmap carries exactly one flag: START
(begin tracking every mapping), STOP, or GET_BITMAP, which is followed by
struct vfio_iommu_type1_dirty_bitmap_get -- the IOVA range, and a struct
vfio_bitmap with the page size of one bit, the bitmap's size and where it
is.  GET_BITMAP fills the caller's bitmap (one bit per page, bit 0 = the
range's first page) and clears what it reported.

A real IOMMU cannot see which pages a device wrote, so type1 reports every
page mapped for an IOMMU-backed device as dirty: the VMM must copy them all.
(Precise answers need a vendor driver that pins what it touches, or device
DMA logging.)  Type1v2 only; more than one flag at once is EINVAL.
"""

from __future__ import annotations

import ctypes
import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, edu_of, expect_errno, legacy, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import offsetof

NPAGES = 8


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_DIRTY_PAGES", "the container fd")
    k = t.kernel
    F = vfio  # the flag names are long
    with anon_memory(NPAGES * PAGE) as (buf, vaddr), legacy(t) as lg:
        k.ioctl(lg.container, vfio.VFIO_IOMMU_MAP_DMA, argsz(
            vfio.vfio_iommu_type1_dma_map, vaddr=vaddr, iova=IOVA, size=NPAGES * PAGE,
            flags=vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE))
        start = argsz(vfio.vfio_iommu_type1_dirty_bitmap, flags=F.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
        show("START", start)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_DIRTY_PAGES, start)
        say(f"tracking started for the {NPAGES}-page mapping at {IOVA:#x}")

        edu_of(t, lg.device).copy_through_device(buf, IOVA)  # the device writes one page (IOVA + 4096)
        say("the edu wrote 256 bytes at IOVA + 0x1000")

        # GET_BITMAP: the header, then the range and the bitmap description, in one buffer
        bitmap = (ctypes.c_uint64 * 1)()  # 8 pages need 8 bits: one u64 is the smallest unit
        size = ctypes.sizeof(vfio.vfio_iommu_type1_dirty_bitmap) + ctypes.sizeof(vfio.vfio_iommu_type1_dirty_bitmap_get)
        raw = ctypes.create_string_buffer(size)
        hdr = vfio.vfio_iommu_type1_dirty_bitmap.from_buffer(raw)
        hdr.argsz, hdr.flags = size, F.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP
        rng = vfio.vfio_iommu_type1_dirty_bitmap_get.from_buffer(raw, offsetof(vfio.vfio_iommu_type1_dirty_bitmap,
                                                                               "data"))
        rng.iova, rng.size = IOVA, NPAGES * PAGE
        rng.bitmap.pgsize, rng.bitmap.size = PAGE, ctypes.sizeof(bitmap)
        rng.bitmap.data = ctypes.cast(bitmap, ctypes.POINTER(ctypes.c_ulong))  # a __u64 * in C
        say(f"GET      range iova {rng.iova:#x} size {rng.size:#x}; bitmap: one bit per {rng.bitmap.pgsize:#x} "
            f"bytes, {rng.bitmap.size} bytes at {ctypes.addressof(bitmap):#x}")
        k.ioctl(lg.container, vfio.VFIO_IOMMU_DIRTY_PAGES, raw)
        bits = bitmap[0]
        say(f"bitmap -> {bits:#0{NPAGES + 2}b}: pages "
            f"{[i for i in range(NPAGES) if bits >> i & 1]} reported dirty")
        if bits == (1 << NPAGES) - 1:
            say("every page: the IOMMU cannot tell which ones the device wrote, so all count as dirty")
        elif t.simulated:
            say("only the page the device wrote: the simulated kernel tracks device writes precisely (a model "
                "option); a real kernel reports all pages mapped for the device")
        bitmap[0] = 0
        k.ioctl(lg.container, vfio.VFIO_IOMMU_DIRTY_PAGES, raw)
        say(f"asked again at once -> {bitmap[0]:#0{NPAGES + 2}b}: "
            + ("the first GET cleared what it reported" if bitmap[0] == 0
               else "still dirty (pages pinned for an IOMMU-backed device always are)"))
        both = argsz(vfio.vfio_iommu_type1_dirty_bitmap,
                     flags=F.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | F.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)
        expect_errno("START|STOP together", lambda: k.ioctl(lg.container, vfio.VFIO_IOMMU_DIRTY_PAGES, both),
                     errno.EINVAL)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_DIRTY_PAGES,
                argsz(vfio.vfio_iommu_type1_dirty_bitmap, flags=F.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP))
        say("STOP -> 0")
        k.ioctl(lg.container, vfio.VFIO_IOMMU_UNMAP_DMA, argsz(vfio.vfio_iommu_type1_dma_unmap, iova=IOVA,
                                                                size=NPAGES * PAGE))
    return ran(f"{bin(bits).count('1')} of {NPAGES} pages reported dirty")


if __name__ == "__main__":
    raise SystemExit(run(main))
