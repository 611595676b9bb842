"""VFIO_DEVICE_SET_IRQS: connect a device interrupt to an eventfd, trigger it, and take it away again.

struct vfio_irq_set names an IRQ ``index`` (MSI here), a range of vectors
(``start``, ``count``), one DATA type (NONE, BOOL or EVENTFD: what the
trailing ``data[]`` holds) and one ACTION (TRIGGER, MASK, UNMASK).  Here:

1. DATA_EVENTFD|ACTION_TRIGGER with one eventfd in ``data``: the kernel
   enables MSI and signals the eventfd whenever the device sends vector 0;
2. the edu device is told to raise an interrupt; the eventfd counts it;
3. DATA_NONE|ACTION_TRIGGER with ``count`` 0 disables the index again.

``argsz`` covers the header and the data (``alloc_flex`` sizes it).  MSI
cannot be masked through VFIO (ENOTTY: only INTx has MASK/UNMASK here).
"""

from __future__ import annotations

import ctypes
import errno

from _common import (
    EDU_IRQ_RAISE, argsz, edu_of, eventfd, expect_errno, legacy, ran, run, say, show, summary, target, title,
    wait_eventfd,
)

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_SET_IRQS", "the device fd")
    k = t.kernel
    with legacy(t) as lg, eventfd() as efd:
        edu = edu_of(t, lg.device)
        edu.ack_irq()  # a real edu keeps its interrupt status across opens
        edu.enable_bus_master()  # an MSI is a memory write by the device: it needs bus mastering

        irqs = alloc_flex(vfio.vfio_irq_set, 4, index=vfio.VFIO_PCI_MSI_IRQ_INDEX, start=0, count=1,
                          flags=vfio.VFIO_IRQ_SET_DATA_EVENTFD | vfio.VFIO_IRQ_SET_ACTION_TRIGGER)
        (ctypes.c_int32 * 1).from_buffer(flex_array(irqs))[0] = efd  # data[]: one s32 eventfd per vector
        show("request", irqs)
        say(f"data[] = [{efd}] (the eventfd); argsz {irqs.argsz} = 20-byte header + 4 bytes of data")
        k.ioctl(lg.device, vfio.VFIO_DEVICE_SET_IRQS, irqs)
        say("ioctl(device, VFIO_DEVICE_SET_IRQS, MSI vector 0 -> eventfd) -> 0")

        edu.write32(EDU_IRQ_RAISE, 0x1)  # ask the device to interrupt
        count = wait_eventfd(efd)
        say(f"edu raised its interrupt; eventfd counter: {count}; device IRQ status {edu.ack_irq():#x} (acked)")

        expect_errno("ACTION_MASK on MSI", lambda: k.ioctl(lg.device, vfio.VFIO_DEVICE_SET_IRQS, argsz(
            vfio.vfio_irq_set, index=vfio.VFIO_PCI_MSI_IRQ_INDEX, start=0, count=1,
            flags=vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_MASK)), errno.ENOTTY)

        off = argsz(vfio.vfio_irq_set, index=vfio.VFIO_PCI_MSI_IRQ_INDEX, start=0, count=0,
                    flags=vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_TRIGGER)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_SET_IRQS, off)
        say("DATA_NONE|ACTION_TRIGGER with count 0 -> 0: MSI disabled, the eventfd released")
    if count < 1:
        raise SystemExit("the MSI never reached the eventfd")
    return ran("an MSI arrived through the eventfd")


if __name__ == "__main__":
    raise SystemExit(run(main))
