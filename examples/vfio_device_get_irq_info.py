"""VFIO_DEVICE_GET_IRQ_INFO: how many interrupts each IRQ index has and how they can be driven.

For each index below ``num_irqs`` (vfio-pci: INTx, MSI, MSI-X, ERR, REQ)
struct vfio_irq_info comes back with ``count`` (vectors; 0 when the device
lacks that kind) and ``flags``: EVENTFD (signalled through an eventfd),
MASKABLE, AUTOMASKED (INTx: masked by the kernel on every interrupt until
user space unmasks it, as a level-triggered line must be) and NORESIZE (the
vector count cannot change while enabled).  An index past the end is EINVAL.
"""

from __future__ import annotations

import errno

from _common import argsz, errname, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_GET_IRQ_INFO", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        dev = argsz(vfio.vfio_device_info)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_INFO, dev)
        msi = argsz(vfio.vfio_irq_info, index=vfio.VFIO_PCI_MSI_IRQ_INDEX)
        show("before", msi)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_IRQ_INFO, msi)
        show("after", msi)
        for index in range(dev.num_irqs):
            info = argsz(vfio.vfio_irq_info, index=index)
            name = vfio.VfioPciIrqIndex(index).name
            try:
                k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_IRQ_INFO, info)
            except OSError as e:  # ERR: kernels before 7.x offer it only on PCI Express devices
                say(f"{index} {name:<22} -> {errname(e.errno)} (not on this device)")
                continue
            say(f"{index} {name:<22} count {info.count}  flags {vfio.VfioIrqInfoFlag(info.flags)!r}")
        expect_errno(f"index {dev.num_irqs} (one past num_irqs)", lambda: k.ioctl(
            lg.device, vfio.VFIO_DEVICE_GET_IRQ_INFO, argsz(vfio.vfio_irq_info, index=dev.num_irqs)), errno.EINVAL)
    return ran(f"{dev.num_irqs} IRQ indexes listed")


if __name__ == "__main__":
    raise SystemExit(run(main))
