"""IOMMU_IOAS_CHANGE_PROCESS: make the calling process the owner of every mapping (after live update).

Pinned pages are charged to the process that mapped them.  When a VMM
replaces itself (exec, or a new process receiving the fds), the new process
calls this (struct iommu_ioas_change_process, no fields but ``size``) and
the charges -- of every IOAS in the iommufd -- move to it.  That only works
when every mapping is file-backed (IOMMU_IOAS_MAP_FILE): a mapping of user
virtual addresses belongs to the old address space for good, so any such
mapping makes the whole call EINVAL, even from the same process.  Linux 6.13.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, answered, argsz, expect_errno, ioas_map, iommufd, memfd_memory, ran, run, say, show,
    summary, target, title,
)

from pyvfio.uapi import iommufd as iu

FILE_IOVA = 0x300000


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_CHANGE_PROCESS", "the iommufd (/dev/iommu)")
    k = t.kernel
    with memfd_memory(4 * PAGE) as (mfd, _), anon_memory(PAGE) as (buf, vaddr), iommufd(t, cdev=False) as ctx:
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP_FILE, argsz(
            iu.iommu_ioas_map_file, ioas_id=ctx.ioas, fd=mfd, start=0, length=4 * PAGE, iova=FILE_IOVA,
            flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE))
        say(f"IOAS {ctx.ioas} maps 4 pages of memfd {mfd} at {FILE_IOVA:#x} (file-backed only)")
        change = argsz(iu.iommu_ioas_change_process)
        show("request", change)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_IOAS_CHANGE_PROCESS, change)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            return answered(e.errno, "IOMMU_IOAS_CHANGE_PROCESS needs Linux 6.13")
        say("ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS) -> 0 (from the owner itself: nothing moves; a new process "
            "after exec would take the charges over)")
        ioas_map(k, ctx, vaddr, PAGE, iova=IOVA)
        say(f"now also a user-VA mapping at {IOVA:#x} (IOMMU_IOAS_MAP)")
        expect_errno("CHANGE_PROCESS with a user-VA mapping present",
                     lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_CHANGE_PROCESS, change), errno.EINVAL)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=0,
                                                    length=(1 << 64) - 1))
    return ran("ownership of the file-backed mappings moved to the caller")


if __name__ == "__main__":
    raise SystemExit(run(main))
