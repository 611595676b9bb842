"""IOMMU_IOAS_MAP: map a range of your memory into an IO address space, for every device attached to it.

struct iommu_ioas_map: ``ioas_id``, ``user_va`` (your buffer), ``length``,
``flags`` READABLE/WRITEABLE (what the device may do) and either
FIXED_IOVA with ``iova`` chosen by you, or no FIXED_IOVA and the kernel picks
an IOVA and writes it back into ``iova``.  The pages are pinned.  A fixed
IOVA that overlaps an existing mapping is EEXIST; one in a reserved range
EINVAL; neither READABLE nor WRITEABLE is EINVAL.

The proof: the edu device copies bytes from IOVA to its own buffer and back
to IOVA + 4096 -- it only reaches your memory through this mapping.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, edu_of, expect_errno, iommufd, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import iommufd as iu

RW = iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_MAP", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(8 * PAGE) as (buf, vaddr), iommufd(t) as ctx:
        m = argsz(iu.iommu_ioas_map, ioas_id=ctx.ioas, user_va=vaddr, length=4 * PAGE, iova=IOVA,
                  flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | RW)
        show("before", m)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP, m)
        show("after", m)
        ok = edu_of(t, ctx.cdev).copy_through_device(buf, IOVA)
        say(f"the edu copied 256 bytes from IOVA {IOVA:#x} to {IOVA + PAGE:#x}: "
            f"{'the bytes arrived' if ok else 'NOTHING ARRIVED'}")

        auto = argsz(iu.iommu_ioas_map, ioas_id=ctx.ioas, user_va=vaddr + 4 * PAGE, length=4 * PAGE, flags=RW)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP, auto)
        say(f"without FIXED_IOVA the kernel chose IOVA {auto.iova:#x} and wrote it back")

        clash = argsz(iu.iommu_ioas_map, ioas_id=ctx.ioas, user_va=vaddr, length=PAGE, iova=IOVA + PAGE,
                      flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | RW)
        expect_errno(f"a fixed mapping at {IOVA + PAGE:#x}, inside the first one",
                     lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP, clash), errno.EEXIST)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=0,
                                                    length=(1 << 64) - 1))  # everything, before the memory goes
    if not ok:
        raise SystemExit("device DMA did not reach the mapped memory")
    return ran("mapped; the device did DMA through the mapping")


if __name__ == "__main__":
    raise SystemExit(run(main))
