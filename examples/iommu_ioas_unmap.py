"""IOMMU_IOAS_UNMAP: remove the mappings inside an IOVA range; ``length`` comes back as the bytes removed.

struct iommu_ioas_unmap: ``ioas_id``, ``iova``, ``length``.  Every mapping
must lie wholly inside the range -- mappings are never split: a range that
cuts one is ENOENT -- and, unlike type1, a range with nothing in it is
ENOENT too.  ``iova`` 0 with ``length`` U64_MAX removes everything (and
succeeds on an empty IOAS).
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, expect_errno, ioas_map, iommufd, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import iommufd as iu

U64_MAX = (1 << 64) - 1


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_UNMAP", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(8 * PAGE) as (buf, vaddr), iommufd(t, cdev=False) as ctx:
        ioas_map(k, ctx, vaddr, 2 * PAGE, iova=IOVA)
        ioas_map(k, ctx, vaddr + 2 * PAGE, 2 * PAGE, iova=IOVA + 0x10000)
        ioas_map(k, ctx, vaddr + 4 * PAGE, PAGE, iova=IOVA + 0x20000)
        say(f"mapped [{IOVA:#x} +2 pages], [{IOVA + 0x10000:#x} +2 pages], [{IOVA + 0x20000:#x} +1 page]")
        half = argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=IOVA, length=PAGE)
        expect_errno("the first page of a 2-page mapping", lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, half),
                     errno.ENOENT)
        unmap = argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=IOVA, length=2 * PAGE)
        show("before", unmap)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, unmap)
        show("after", unmap)
        empty = argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=0x900000, length=PAGE)
        expect_errno("a range with nothing mapped", lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, empty),
                     errno.ENOENT)
        everything = argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=0, length=U64_MAX)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, everything)
        say(f"iova 0, length U64_MAX -> removed the other two mappings, {everything.length:#x} bytes")
        again = argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=0, length=U64_MAX)  # the kernel rewrote length
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, again)
        say(f"the same on the now empty IOAS -> 0, length {again.length}: 'all' is never ENOENT")
    return ran("mappings removed")


if __name__ == "__main__":
    raise SystemExit(run(main))
