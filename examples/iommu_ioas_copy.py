"""IOMMU_IOAS_COPY: map pages one IOAS already maps into another IOAS, without naming your memory again.

struct iommu_ioas_copy: ``src_ioas_id`` + ``src_iova`` + ``length`` (must
be fully mapped there, else ENOENT) -> ``dst_ioas_id`` at ``dst_iova``
(FIXED_IOVA) or wherever the kernel picks, with READABLE/WRITEABLE.  Both
IOASes then share the same pinned pages: cheap for a VMM that keeps one
IOAS per device group but the same guest RAM in all of them.

The proof: the device is attached to the *destination* IOAS only, and its
DMA reaches the memory mapped in the source.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, edu_of, expect_errno, ioas_alloc, ioas_map, iommufd, ran, run, say, show,
    summary, target, title,
)

from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio

DST_IOVA = 0x200000


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_COPY", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(4 * PAGE) as (buf, vaddr), iommufd(t, attach=False) as ctx:
        src = ctx.ioas
        ioas_map(k, ctx, vaddr, len(buf), iova=IOVA)
        dst = ioas_alloc(k, ctx.fd)
        say(f"IOAS {src} maps 4 pages at {IOVA:#x}; IOAS {dst} is empty")
        copy = argsz(iu.iommu_ioas_copy, src_ioas_id=src, src_iova=IOVA, length=len(buf), dst_ioas_id=dst,
                     dst_iova=DST_IOVA, flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE
                     | iu.IOMMU_IOAS_MAP_WRITEABLE)
        show("request", copy)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_COPY, copy)
        say(f"IOAS {dst} now maps the same pages at {copy.dst_iova:#x}")
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=dst))
        ok = edu_of(t, ctx.cdev).copy_through_device(buf, DST_IOVA)
        say(f"device attached to IOAS {dst} only; its DMA at {DST_IOVA:#x} reached the buffer: "
            f"{'yes' if ok else 'NO'}")
        hole = argsz(iu.iommu_ioas_copy, src_ioas_id=src, src_iova=0x800000, length=PAGE, dst_ioas_id=dst,
                     flags=iu.IOMMU_IOAS_MAP_READABLE)
        expect_errno("copying a source range nothing maps",
                     lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_COPY, hole), errno.ENOENT)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_DETACH_IOMMUFD_PT, argsz(vfio.vfio_device_detach_iommufd_pt))
    if not ok:
        raise SystemExit("device DMA through the copied mapping failed")
    return ran("copied; the device did DMA through the copy")


if __name__ == "__main__":
    raise SystemExit(run(main))
