"""VFIO_GROUP_SET_CONTAINER: put an IOMMU group into a container, so they share one IOMMU context.

The argument is a pointer to an int holding the container's fd.  Joining
gives the container its privilege (an empty container can do nothing) and
claims the group's devices for user-space DMA.  A group belongs to one
container at a time (EINVAL for a second one), and the fd must be a
container or an iommufd (EBADFD for anything else).  More groups may join the
same container when their IOMMUs are compatible: they then share mappings.
"""

from __future__ import annotations

import ctypes
import errno
import os

from _common import argsz, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_GROUP_SET_CONTAINER", f"the group fd (/dev/vfio/{t.group})")
    k = t.kernel
    with legacy(t, set_container=False) as lg:
        fd = ctypes.c_int32(lg.container)
        show("argument", fd)
        ret = k.ioctl(lg.group, vfio.VFIO_GROUP_SET_CONTAINER, fd)
        say(f"ioctl(group, VFIO_GROUP_SET_CONTAINER, &container_fd) -> {ret}")
        status = argsz(vfio.vfio_group_status)
        k.ioctl(lg.group, vfio.VFIO_GROUP_GET_STATUS, status)
        say(f"group status now: {vfio.VfioGroupFlag(status.flags)!r}")
        say(f"the container can now pick its IOMMU: SET_IOMMU(TYPE1v2) -> "
            f"{k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)}")

        expect_errno("the same group into a container again", lambda: k.ioctl(
            lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(lg.container)), errno.EINVAL)
        other = os.eventfd(0, os.EFD_CLOEXEC)  # any fd that is neither a container nor an iommufd
        try:
            k.ioctl(lg.group, vfio.VFIO_GROUP_UNSET_CONTAINER)
            expect_errno(f"an eventfd ({other}) as the container", lambda: k.ioctl(
                lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(other)), errno.EBADFD)
        finally:
            os.close(other)
    return ran("the group joined the container")


if __name__ == "__main__":
    raise SystemExit(run(main))
