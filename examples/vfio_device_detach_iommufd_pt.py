"""VFIO_DEVICE_DETACH_IOMMUFD_PT: cut a bound device off from its page table (its DMA is blocked).

The inverse of VFIO_DEVICE_ATTACH_IOMMUFD_PT: ``flags`` 0 (or
VFIO_DEVICE_DETACH_PASID with ``pasid`` for one PASID).  Afterwards the
device stays bound but can reach no memory, and the IOAS it used is free:
IOMMU_DESTROY of it, EBUSY while attached, now works.  Unknown flags are EINVAL.
"""

from __future__ import annotations

import errno

from _common import argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_DETACH_IOMMUFD_PT", f"the device cdev ({t.cdev})")
    k = t.kernel
    with iommufd(t) as ctx:
        say(f"bound as device {ctx.devid}, attached to IOAS {ctx.ioas} through HWPT {ctx.hwpt}")
        destroy = argsz(iu.iommu_destroy, id=ctx.ioas)
        expect_errno("IOMMU_DESTROY of the IOAS while attached",
                     lambda: k.ioctl(ctx.fd, iu.IOMMU_DESTROY, destroy), errno.EBUSY)
        expect_errno("detach with unknown flag bits", lambda: k.ioctl(
            ctx.cdev, vfio.VFIO_DEVICE_DETACH_IOMMUFD_PT, argsz(vfio.vfio_device_detach_iommufd_pt, flags=0x80)),
            errno.EINVAL)
        detach = argsz(vfio.vfio_device_detach_iommufd_pt)
        show("request", detach)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_DETACH_IOMMUFD_PT, detach)
        say("ioctl(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT) -> 0: DMA blocked, the automatic HWPT is gone")
        k.ioctl(ctx.fd, iu.IOMMU_DESTROY, destroy)
        say(f"IOMMU_DESTROY of IOAS {ctx.ioas} -> 0 now")
    return ran("detached")


if __name__ == "__main__":
    raise SystemExit(run(main))
