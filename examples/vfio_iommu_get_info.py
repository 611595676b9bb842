"""VFIO_IOMMU_GET_INFO: the type1 IOMMU's page sizes and its capability chain (usable IOVA ranges...).

struct vfio_iommu_type1_info returns ``iova_pgsizes`` (a bitmap: every page
size the IOMMU can map; the lowest set bit is the granule of every map and
unmap) and, with FLAGS_CAPS, a chain of capabilities after the struct:
IOVA_RANGE (where DMA may be mapped -- the x86 MSI window is a hole),
MIGRATION (dirty-tracking limits) and DMA_AVAIL (how many more mappings are
allowed).  The chain does not fit in the bare struct: the kernel sets
``argsz`` to the size it needs and ``cap_offset`` to 0, and the caller asks
again with a buffer that large -- the argsz retry every VFIO info ioctl uses.
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def describe_cap(buf: ctypes.Array[ctypes.c_char], offset: int, cap_id: int) -> str:
    if cap_id == vfio.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
        cap = vfio.vfio_iommu_type1_info_cap_iova_range.from_buffer(buf, offset)
        ranges = (vfio.vfio_iova_range * cap.nr_iovas).from_buffer(buf, offset + ctypes.sizeof(cap))
        return "usable IOVA " + ", ".join(f"[{r.start:#x}, {r.end:#x}]" for r in ranges)
    if cap_id == vfio.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
        mig = vfio.vfio_iommu_type1_info_cap_migration.from_buffer(buf, offset)
        return f"dirty bitmap page sizes {mig.pgsize_bitmap:#x}, max bitmap {mig.max_dirty_bitmap_size:#x} bytes"
    if cap_id == vfio.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
        return f"{vfio.vfio_iommu_type1_info_dma_avail.from_buffer(buf, offset).avail} more mappings allowed"
    return "(unknown capability)"


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_GET_INFO", "the container fd")
    k = t.kernel
    with legacy(t, device=False) as lg:
        info = argsz(vfio.vfio_iommu_type1_info)
        show("before", info)
        k.ioctl(lg.container, vfio.VFIO_IOMMU_GET_INFO, info)
        show("after", info)
        say(f"flags {vfio.VfioIommuInfoFlag(info.flags)!r}; smallest page {info.iova_pgsizes & -info.iova_pgsizes:#x}")
        caps = 0
        if info.flags & vfio.VFIO_IOMMU_INFO_CAPS and info.cap_offset == 0:
            say(f"the chain did not fit in {ctypes.sizeof(info)} bytes: the kernel asks for argsz {info.argsz}")
            buf = ctypes.create_string_buffer(info.argsz)
            full = vfio.vfio_iommu_type1_info.from_buffer(buf)
            full.argsz = info.argsz
            k.ioctl(lg.container, vfio.VFIO_IOMMU_GET_INFO, buf)
            say(f"asked again with argsz {full.argsz}: cap_offset {full.cap_offset}")
            offset = full.cap_offset
            while offset:
                hdr = vfio.vfio_info_cap_header.from_buffer(buf, offset)
                say(f"  cap {vfio.VfioIommuType1InfoCap(hdr.id).name} v{hdr.version} at {offset}: "
                    f"{describe_cap(buf, offset, hdr.id)}")
                offset, caps = hdr.next, caps + 1
        expect_errno("argsz 8 (shorter than flags + iova_pgsizes)", lambda: k.ioctl(
            lg.container, vfio.VFIO_IOMMU_GET_INFO, vfio.vfio_iommu_type1_info(argsz=8)), errno.EINVAL)
    return ran(f"page sizes {info.iova_pgsizes:#x}, {caps} capabilities")


if __name__ == "__main__":
    raise SystemExit(run(main))
