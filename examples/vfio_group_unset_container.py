"""VFIO_GROUP_UNSET_CONTAINER: take a group out of its container again.

No argument.  A group can only leave while none of its devices is open
(EBUSY otherwise: their DMA still goes through the container's IOMMU), and
only if it is in a container (EINVAL).  When the last group leaves, the
container loses its IOMMU backend and every mapping with it.  Closing the
group fd does the same implicitly.
"""

from __future__ import annotations

import errno

from _common import argsz, close_device, expect_errno, legacy, ran, run, say, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_GROUP_UNSET_CONTAINER", f"the group fd (/dev/vfio/{t.group})")
    k = t.kernel
    with legacy(t) as lg:
        expect_errno("UNSET_CONTAINER while the device fd is open",
                     lambda: k.ioctl(lg.group, vfio.VFIO_GROUP_UNSET_CONTAINER), errno.EBUSY)
        close_device(lg)
        say("closed the device fd")
        ret = k.ioctl(lg.group, vfio.VFIO_GROUP_UNSET_CONTAINER)
        say(f"ioctl(group, VFIO_GROUP_UNSET_CONTAINER) -> {ret}")
        status = argsz(vfio.vfio_group_status)
        k.ioctl(lg.group, vfio.VFIO_GROUP_GET_STATUS, status)
        say(f"group status now: {vfio.VfioGroupFlag(status.flags)!r} (no CONTAINER_SET)")
        # the container was emptied: with no group it has no backend, so type1 ioctls fail
        info = argsz(vfio.vfio_iommu_type1_info)
        expect_errno("VFIO_IOMMU_GET_INFO on the now empty container",
                     lambda: k.ioctl(lg.container, vfio.VFIO_IOMMU_GET_INFO, info), errno.EINVAL)
        expect_errno("UNSET_CONTAINER again",
                     lambda: k.ioctl(lg.group, vfio.VFIO_GROUP_UNSET_CONTAINER), errno.EINVAL)
    return ran("the group left its container")


if __name__ == "__main__":
    raise SystemExit(run(main))
