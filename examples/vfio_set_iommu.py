"""VFIO_SET_IOMMU: choose the IOMMU backend (type1v2 on x86) for a container that has a group.

The IOMMU type goes by value.  A container is unprivileged and empty until a
group joins it, so SET_IOMMU on a container without a group is EINVAL; a type
no backend implements (the POWER sPAPR types on x86) is ENODEV; and the
choice is made once -- a second SET_IOMMU is EINVAL.  After it, the
container's memory-mapping ioctls (VFIO_IOMMU_MAP_DMA...) work and the
group's devices can be opened.
"""

from __future__ import annotations

import ctypes
import errno

from _common import expect_errno, legacy, ran, run, say, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_SET_IOMMU", "the container fd")
    k = t.kernel
    with legacy(t, set_container=False) as lg:
        expect_errno("SET_IOMMU(TYPE1v2) before any group joined", lambda: k.ioctl(
            lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU), errno.EINVAL)
        k.ioctl(lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(lg.container))
        say(f"group {t.group} joined the container (VFIO_GROUP_SET_CONTAINER)")
        expect_errno("SET_IOMMU(SPAPR_TCE_v2), a POWER-only type", lambda: k.ioctl(
            lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_SPAPR_TCE_v2_IOMMU), errno.ENODEV)
        ret = k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        say(f"ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU={vfio.VFIO_TYPE1v2_IOMMU}) -> {ret}")
        vaddr = k.ioctl(lg.container, vfio.VFIO_CHECK_EXTENSION, vfio.VFIO_UPDATE_VADDR)
        say(f"CHECK_EXTENSION(UPDATE_VADDR) now -> {vaddr} (type1 itself answers from now on)")
        expect_errno("SET_IOMMU again (the backend is chosen once)", lambda: k.ioctl(
            lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1_IOMMU), errno.EINVAL)
        device = k.ioctl(lg.group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(t.address.encode()))
        say(f"with a backend set, the group hands out the device: fd {device}")
        k.close(device)
    return ran("type1v2 set")


if __name__ == "__main__":
    raise SystemExit(run(main))
