"""VFIO_DEVICE_GET_INFO: what kind of device this is and how many regions and interrupts it has.

struct vfio_device_info comes back with ``flags`` (the bus -- PCI here --
and whether VFIO_DEVICE_RESET works), ``num_regions`` (for vfio-pci at least
the 9 fixed ones: BAR0-5, ROM, config space, VGA) and ``num_irqs`` (INTx,
MSI, MSI-X, ERR, REQ).  Those two numbers bound the indexes the
GET_REGION_INFO and GET_IRQ_INFO ioctls take.  If the kernel has capabilities
to report it sets FLAGS_CAPS and asks for a larger ``argsz``.
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_GET_INFO", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        info = argsz(vfio.vfio_device_info)
        show("before", info)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_INFO, info)
        show("after", info)
        say(f"flags = {vfio.VfioDeviceFlag(info.flags)!r}")
        say(f"{info.num_regions} regions (vfio-pci's fixed ones: {vfio.VFIO_PCI_NUM_REGIONS}), "
            f"{info.num_irqs} IRQ indexes (vfio-pci: {vfio.VFIO_PCI_NUM_IRQS})")
        if info.flags & vfio.VFIO_DEVICE_FLAGS_CAPS and info.argsz > ctypes.sizeof(info):
            say(f"the kernel has capabilities to report: ask again with argsz {info.argsz}")
        # The kernel reads the struct's length from argsz, not from the ioctl number: a short one is refused.
        short = vfio.vfio_device_info(argsz=8)
        expect_errno("argsz 8 (too short for flags, num_regions and num_irqs)",
                     lambda: k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_INFO, short), errno.EINVAL)
    reset = "with" if info.flags & vfio.VFIO_DEVICE_FLAGS_RESET else "without"
    return ran(f"a {'PCI' if info.flags & vfio.VFIO_DEVICE_FLAGS_PCI else 'non-PCI'} device {reset} reset")


if __name__ == "__main__":
    raise SystemExit(run(main))
