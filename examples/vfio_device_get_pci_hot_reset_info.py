"""VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: which devices a bus (hot) reset of this device would also reset.

A secondary bus reset resets every function behind the same bridge, so
before asking for one (VFIO_DEVICE_PCI_HOT_RESET) a program must know all
affected devices and own them.  struct vfio_pci_hot_reset_info is followed
by an array of struct vfio_pci_dependent_device (segment, bus, devfn, and
the IOMMU group -- or, for a cdev-opened device, the iommufd device id).
The sizing protocol: call with no room, get ENOSPC and ``count``, allocate
``count`` entries, call again.  A device on the root bus has no bus reset at
all: ENODEV.

On a real ``-device edu`` (root bus of QEMU's q35) this shows the ENODEV.
The simulated edu is placed behind a bridge, at 0000:01:00.0, so the call
succeeds.
"""

from __future__ import annotations

import errno

from _common import answered, argsz, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array


def main() -> int:
    t = target(summary(__doc__), name="0000:01:00.0", express=True)
    title(t, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        probe = argsz(vfio.vfio_pci_hot_reset_info)  # room for zero entries
        show("before", probe)
        try:
            k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, probe)
        except OSError as e:
            if e.errno == errno.ENODEV:
                say("ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) -> ENODEV")
                return answered(errno.ENODEV, f"{t.address} sits on a root bus: there is no bridge whose "
                                              "secondary bus could be reset")
            if e.errno != errno.ENOSPC:
                raise
            say(f"first call with no room -> ENOSPC; the kernel wrote count = {probe.count}")
        show("after", probe)
        info = alloc_flex(vfio.vfio_pci_hot_reset_info, probe.count)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
        say(f"second call with argsz {info.argsz} -> 0; flags {info.flags:#x}, count {info.count}")
        for dep in flex_array(info, info.count):
            say(f"  resets {dep.segment:04x}:{dep.bus:02x}:{dep.devfn >> 3:02x}.{dep.devfn & 7} "
                f"(IOMMU group {dep.group_id})")
        expect_errno("argsz shorter than the header", lambda: k.ioctl(
            lg.device, vfio.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, vfio.vfio_pci_hot_reset_info(argsz=4)),
            errno.EINVAL)
    return ran(f"a bus reset would reset {info.count} device(s)")


if __name__ == "__main__":
    raise SystemExit(run(main))
