"""IOMMU_IOAS_ALLOC: create an IO address space (IOAS), the iommufd's map of IOVA -> memory.

struct iommu_ioas_alloc: ``flags`` must be 0 (EOPNOTSUPP otherwise); the
kernel returns ``out_ioas_id``.  An IOAS starts empty and usable everywhere;
IOMMU_IOAS_MAP fills it, and a device attached to it (directly, or through a
HWPT) does DMA through its mappings.  Ids come from one table per iommufd,
shared by all object types.
"""

from __future__ import annotations

import errno

from _common import argsz, expect_errno, open_iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    fd = open_iommufd(t)
    try:
        alloc = argsz(iu.iommu_ioas_alloc)
        show("before", alloc)
        k.ioctl(fd, iu.IOMMU_IOAS_ALLOC, alloc)
        show("after", alloc)
        second = argsz(iu.iommu_ioas_alloc)
        k.ioctl(fd, iu.IOMMU_IOAS_ALLOC, second)
        say(f"a second IOAS gets id {second.out_ioas_id}")
        expect_errno("flags 1 (no flag is defined)", lambda: k.ioctl(
            fd, iu.IOMMU_IOAS_ALLOC, argsz(iu.iommu_ioas_alloc, flags=1)), errno.EOPNOTSUPP)
        expect_errno("size 4 (shorter than the struct's mandatory fields)", lambda: k.ioctl(
            fd, iu.IOMMU_IOAS_ALLOC, iu.iommu_ioas_alloc(size=4)), errno.EINVAL)
    finally:
        k.close(fd)  # destroys both
    return ran(f"IOAS {alloc.out_ioas_id} allocated")


if __name__ == "__main__":
    raise SystemExit(run(main))
