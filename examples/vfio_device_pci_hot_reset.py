"""VFIO_DEVICE_PCI_HOT_RESET: reset the whole bus behind the device's bridge, proving you own it all.

A bus reset hits every device on that bus, so the caller must prove it owns
all of them: struct vfio_pci_hot_reset is followed by ``group_fds[]``, an fd
of every IOMMU group VFIO_DEVICE_GET_PCI_HOT_RESET_INFO listed (for a device
opened through its cdev and bound to an iommufd, the array is empty instead
and ownership comes from the iommufd).  A group-opened device with an empty
array is EINVAL; a device on a root bus has nothing to reset: ENODEV.

The simulated edu sits behind a bridge (0000:01:00.0) and is alone in its
group, so its own group fd is the whole proof.  On a real ``-device edu``
(root bus) the kernel answers ENODEV.
"""

from __future__ import annotations

import ctypes
import errno

from _common import answered, argsz, edu_of, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array


def main() -> int:
    t = target(summary(__doc__), name="0000:01:00.0", express=True)
    title(t, "VFIO_DEVICE_PCI_HOT_RESET", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        edu = edu_of(t, lg.device)
        say(f"before: the device computed 6! = {edu.factorial(6)}")
        expect_errno("no group fds from a group-opened device", lambda: k.ioctl(
            lg.device, vfio.VFIO_DEVICE_PCI_HOT_RESET, argsz(vfio.vfio_pci_hot_reset)), errno.EINVAL, errno.ENODEV)
        reset = alloc_flex(vfio.vfio_pci_hot_reset, 1, count=1)
        (ctypes.c_int32 * 1).from_buffer(flex_array(reset))[0] = lg.group  # group_fds[0]: our group
        show("request", reset)
        say(f"group_fds[] = [{lg.group}] (/dev/vfio/{t.group})")
        try:
            ret = k.ioctl(lg.device, vfio.VFIO_DEVICE_PCI_HOT_RESET, reset)
        except OSError as e:
            if e.errno != errno.ENODEV:
                raise
            say("ioctl(device, VFIO_DEVICE_PCI_HOT_RESET) -> ENODEV")
            return answered(errno.ENODEV, f"{t.address} sits on a root bus: no bridge to reset its bus")
        say(f"ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, &reset) -> {ret}")
        say(f"after: factorial register = {edu.read32(0x08)} (every device on the bus was reset)")
    return ran("the bus was reset")


if __name__ == "__main__":
    raise SystemExit(run(main))
