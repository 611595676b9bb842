"""VFIO_DEVICE_IOEVENTFD: let the kernel do a fixed register write whenever an eventfd is signalled.

A VMM uses it for hot doorbell registers: instead of trapping the guest's
write, returning to user space and pwrite-ing the device fd, KVM signals an
eventfd and the kernel writes ``data`` (``flags`` gives the width: 1, 2, 4
bytes) at device-fd ``offset``.  The same request with ``fd`` -1 removes it
(ENODEV if nothing matches); 8-byte writes are EINVAL here.

Here: a 4-byte write of 0x12345678 to the edu's liveness register (BAR0 +
0x04), which reads back the bitwise NOT of what was written -- so a read
proves the kernel did the write for us.
"""

from __future__ import annotations

import errno
import os
import time

from _common import (
    EDU_LIVENESS, argsz, edu_of, eventfd, expect_errno, legacy, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import vfio

VALUE = 0x12345678


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_IOEVENTFD", "the device fd")
    k = t.kernel
    with legacy(t) as lg, eventfd() as efd:
        edu = edu_of(t, lg.device)
        edu.enable_bus_master()  # memory decoding on: the kernel skips writes to a BAR that is off
        edu.write32(EDU_LIVENESS, 0)
        say(f"liveness register now reads {edu.read32(EDU_LIVENESS):#010x}")
        bar0 = edu.region_offset(vfio.VFIO_PCI_BAR0_REGION_INDEX)
        ioe = argsz(vfio.vfio_device_ioeventfd, flags=vfio.VFIO_DEVICE_IOEVENTFD_32,
                    offset=bar0 + EDU_LIVENESS, data=VALUE, fd=efd)
        show("request", ioe)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_IOEVENTFD, ioe)
        say("ioctl(device, VFIO_DEVICE_IOEVENTFD, &ioe) -> 0: armed")

        os.eventfd_write(efd, 1)  # what KVM would do when the guest writes the doorbell
        deadline = time.monotonic() + 5
        while edu.read32(EDU_LIVENESS) != (~VALUE) & 0xFFFFFFFF and time.monotonic() < deadline:
            time.sleep(0.005)  # the kernel does the write asynchronously
        seen = edu.read32(EDU_LIVENESS)
        say(f"signalled the eventfd; liveness now reads {seen:#010x} = ~{VALUE:#x}: the kernel wrote it")

        ioe.fd = -1
        k.ioctl(lg.device, vfio.VFIO_DEVICE_IOEVENTFD, ioe)
        say("same offset/data/width with fd -1 -> 0: removed")
        expect_errno("removing it again", lambda: k.ioctl(lg.device, vfio.VFIO_DEVICE_IOEVENTFD, ioe),
                     errno.ENODEV)
    if seen != (~VALUE) & 0xFFFFFFFF:
        raise SystemExit("the ioeventfd write never reached the device")
    return ran("the kernel wrote the register on our eventfd")


if __name__ == "__main__":
    raise SystemExit(run(main))
