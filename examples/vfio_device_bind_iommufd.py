"""VFIO_DEVICE_BIND_IOMMUFD: tie a device opened through its cdev to an iommufd.

The cdev (/dev/vfio/devices/vfioN) is the newer way to open a device: no
container, no group fd.  A freshly opened cdev can do nothing -- every other
ioctl is EINVAL -- until it is bound: struct vfio_device_bind_iommufd takes
the iommufd fd, and the kernel returns ``out_devid``, the device's id inside
that iommufd (used by IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO...).  Binding
claims the device's IOMMU group for this iommufd, so it fails (EBUSY) while
the legacy group fd is open, and a second bind of the same fd is EINVAL.
DMA is still blocked after binding: VFIO_DEVICE_ATTACH_IOMMUFD_PT comes next.
"""

from __future__ import annotations

import errno

from _common import argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_BIND_IOMMUFD", f"the device cdev ({t.cdev})")
    k = t.kernel
    with iommufd(t, bind=False) as ctx:
        expect_errno("VFIO_DEVICE_GET_INFO before binding", lambda: k.ioctl(
            ctx.cdev, vfio.VFIO_DEVICE_GET_INFO, argsz(vfio.vfio_device_info)), errno.EINVAL)
        group = k.open(f"/dev/vfio/{t.group}")
        try:
            expect_errno("binding while the group fd is open", lambda: k.ioctl(
                ctx.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, argsz(vfio.vfio_device_bind_iommufd, iommufd=ctx.fd)),
                errno.EBUSY)
        finally:
            k.close(group)
        bind = argsz(vfio.vfio_device_bind_iommufd, iommufd=ctx.fd)
        show("before", bind)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, bind)
        show("after", bind)
        say(f"bound: the device is object {bind.out_devid} of iommufd {ctx.fd}")
        info = argsz(vfio.vfio_device_info)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_GET_INFO, info)
        say(f"device ioctls work now: GET_INFO -> {info.num_regions} regions, {info.num_irqs} IRQ indexes")
        expect_errno("binding the same fd again", lambda: k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, bind),
                     errno.EINVAL)
    return ran(f"bound as device id {bind.out_devid}")


if __name__ == "__main__":
    raise SystemExit(run(main))
