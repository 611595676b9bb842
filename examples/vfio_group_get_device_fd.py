"""VFIO_GROUP_GET_DEVICE_FD: open a device of the group by name and get its device fd.

The argument is the device's name as a NUL-terminated string -- the PCI
address for vfio-pci (``0000:00:04.0``) -- and the new fd is the return
value.  The group must be in a container with an IOMMU backend set (EINVAL
before), and the name must be a device of this group (ENODEV).  The device
fd is what every VFIO_DEVICE_* ioctl, ``pread``/``pwrite`` and ``mmap`` go to.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from _common import expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_GROUP_GET_DEVICE_FD", f"the group fd (/dev/vfio/{t.group})")
    k = t.kernel
    with legacy(t, iommu=None) as lg:
        name = ctypes.create_string_buffer(t.address.encode())
        show("argument", name.value)
        expect_errno("before VFIO_SET_IOMMU", lambda: k.ioctl(lg.group, vfio.VFIO_GROUP_GET_DEVICE_FD, name),
                     errno.EINVAL)
        k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        device = k.ioctl(lg.group, vfio.VFIO_GROUP_GET_DEVICE_FD, name)
        say(f"ioctl(group, VFIO_GROUP_GET_DEVICE_FD, {name.value!r}) -> fd {device}")
        try:
            # the device fd works at once: read the vendor and device id from its config space region
            cfg = vfio.vfio_region_info(argsz=ctypes.sizeof(vfio.vfio_region_info),
                                        index=vfio.VFIO_PCI_CONFIG_REGION_INDEX)
            k.ioctl(device, vfio.VFIO_DEVICE_GET_REGION_INFO, cfg)
            vendor, dev_id = struct.unpack("<HH", bytes(k.pread(device, 4, cfg.offset)))
            say(f"config space through the new fd: vendor {vendor:#06x} device {dev_id:#06x}")
        finally:
            k.close(device)
        expect_errno("a name that is not in this group", lambda: k.ioctl(
            lg.group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:ff:1f.7")), errno.ENODEV)
    return ran(f"opened {t.address}")


if __name__ == "__main__":
    raise SystemExit(run(main))
