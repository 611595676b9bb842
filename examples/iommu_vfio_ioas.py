"""IOMMU_VFIO_IOAS: choose which IOAS answers the legacy VFIO container ioctls sent to an iommufd.

An iommufd can stand in for a VFIO container: a group joins it with
VFIO_GROUP_SET_CONTAINER(iommufd), and the type1 ioctls (VFIO_IOMMU_MAP_DMA
...) sent to the iommufd act on one *compatibility IOAS*.  struct
iommu_vfio_ioas ``op``: GET returns its id in ``ioas_id`` (ENODEV while there
is none), SET makes ``ioas_id`` the one (ENOENT if no such IOAS), CLEAR
forgets it.  This lets old VFIO code run on iommufd unchanged.
"""

from __future__ import annotations

import ctypes
import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, expect_errno, ioas_alloc, open_iommufd, ran, run, say, show, summary, target,
    title,
)

from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_VFIO_IOAS", "the iommufd (/dev/iommu)")
    k = t.kernel
    fd = open_iommufd(t)
    try:
        get = argsz(iu.iommu_vfio_ioas, op=iu.IOMMU_VFIO_IOAS_GET)
        expect_errno("GET before any compatibility IOAS exists", lambda: k.ioctl(fd, iu.IOMMU_VFIO_IOAS, get),
                     errno.ENODEV)
        ioas = ioas_alloc(k, fd)
        set_ = argsz(iu.iommu_vfio_ioas, op=iu.IOMMU_VFIO_IOAS_SET, ioas_id=ioas)
        show("SET", set_)
        k.ioctl(fd, iu.IOMMU_VFIO_IOAS, set_)
        k.ioctl(fd, iu.IOMMU_VFIO_IOAS, get)
        show("GET", get)
        say(f"IOAS {get.ioas_id} now answers the container ioctls sent to iommufd {fd}")
        with anon_memory(4 * PAGE) as (buf, vaddr):
            k.ioctl(fd, vfio.VFIO_IOMMU_MAP_DMA, argsz(vfio.vfio_iommu_type1_dma_map, vaddr=vaddr, iova=IOVA,
                                                       size=len(buf), flags=vfio.VFIO_DMA_MAP_FLAG_READ
                                                       | vfio.VFIO_DMA_MAP_FLAG_WRITE))
            say("VFIO_IOMMU_MAP_DMA on the iommufd -> 0: a type1 call, mapped into the compatibility IOAS")
            unmap = argsz(iu.iommu_ioas_unmap, ioas_id=ioas, iova=IOVA, length=len(buf))
            k.ioctl(fd, iu.IOMMU_IOAS_UNMAP, unmap)
            say(f"IOMMU_IOAS_UNMAP of IOAS {ioas} at {IOVA:#x} -> removed {unmap.length:#x} bytes: the same mapping")
        group = k.open(f"/dev/vfio/{t.group}")
        try:
            k.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(fd))
            say(f"VFIO_GROUP_SET_CONTAINER(group {t.group}, iommufd) -> 0: the group's DMA uses IOAS {ioas}")
        finally:
            k.close(group)
        k.ioctl(fd, iu.IOMMU_VFIO_IOAS, argsz(iu.iommu_vfio_ioas, op=iu.IOMMU_VFIO_IOAS_CLEAR))
        say("CLEAR -> 0")
        expect_errno("SET of an id that is no IOAS", lambda: k.ioctl(fd, iu.IOMMU_VFIO_IOAS, argsz(
            iu.iommu_vfio_ioas, op=iu.IOMMU_VFIO_IOAS_SET, ioas_id=0xDEAD)), errno.ENOENT)
    finally:
        k.close(fd)
    return ran(f"IOAS {ioas} served as the VFIO compatibility IOAS")


if __name__ == "__main__":
    raise SystemExit(run(main))
