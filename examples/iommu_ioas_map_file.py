"""IOMMU_IOAS_MAP_FILE: map a range of a memfd (not of your address space) into an IO address space.

struct iommu_ioas_map_file: ``fd`` (a memfd), ``start`` (offset in the
file), ``length``, ``iova`` and the same flags as IOMMU_IOAS_MAP.  The
mapping refers to the file's pages, not to this process's virtual
addresses, so it survives the process replacing itself (live update: a new
process takes it over with IOMMU_IOAS_CHANGE_PROCESS) and the caller may
even close its fd afterwards.  A bad fd is EBADF.  Linux 6.13 and later.

The proof: the edu device copies bytes through the mapping, and they show up
in a shared mapping of the same memfd.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, answered, argsz, edu_of, expect_errno, iommufd, memfd_memory, ran, run, say, show, summary, target,
    title,
)

from pyvfio.uapi import iommufd as iu

FILE_IOVA = 0x300000
RW_FIXED = iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_MAP_FILE", "the iommufd (/dev/iommu)")
    k = t.kernel
    with memfd_memory(4 * PAGE) as (mfd, ram), iommufd(t) as ctx:
        m = argsz(iu.iommu_ioas_map_file, ioas_id=ctx.ioas, fd=mfd, start=0, length=4 * PAGE, iova=FILE_IOVA,
                  flags=RW_FIXED)
        show("request", m)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP_FILE, m)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            return answered(e.errno, "IOMMU_IOAS_MAP_FILE needs Linux 6.13")
        say(f"memfd {mfd} bytes [0, {4 * PAGE:#x}) are now IOVA [{FILE_IOVA:#x}, {FILE_IOVA + 4 * PAGE - 1:#x}]")
        ok = edu_of(t, ctx.cdev).copy_through_device(ram, FILE_IOVA)
        say(f"the edu copied 256 bytes through the file mapping: {'they arrived' if ok else 'NOTHING ARRIVED'}")
        bad = argsz(iu.iommu_ioas_map_file, ioas_id=ctx.ioas, fd=-1, start=0, length=PAGE, iova=IOVA,
                    flags=RW_FIXED)
        expect_errno("fd -1", lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP_FILE, bad), errno.EBADF)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=FILE_IOVA,
                                                    length=4 * PAGE))
    if not ok:
        raise SystemExit("device DMA did not reach the memfd")
    return ran("a memfd mapped; the device did DMA into it")


if __name__ == "__main__":
    raise SystemExit(run(main))
