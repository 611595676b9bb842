"""VFIO_GROUP_GET_STATUS: is the IOMMU group usable (viable), and is it in a container yet?

The kernel fills ``flags`` of struct vfio_group_status: VIABLE when every
device in the group is bound to a VFIO driver (or to none) -- a group with
one device still on a host driver cannot be used, since devices of a group
can reach each other's DMA -- and CONTAINER_SET once the group has joined a
container.  ``argsz`` must cover the struct (EINVAL otherwise).
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_GROUP_GET_STATUS", f"the group fd (/dev/vfio/{t.group})")
    k = t.kernel
    with legacy(t, set_container=False) as lg:
        status = argsz(vfio.vfio_group_status)
        show("before", status)
        k.ioctl(lg.group, vfio.VFIO_GROUP_GET_STATUS, status)
        show("after", status)
        say(f"flags = {vfio.VfioGroupFlag(status.flags)!r}")
        viable = bool(status.flags & vfio.VFIO_GROUP_FLAGS_VIABLE)

        k.ioctl(lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(lg.container))
        k.ioctl(lg.group, vfio.VFIO_GROUP_GET_STATUS, status)
        say(f"after VFIO_GROUP_SET_CONTAINER: flags = {vfio.VfioGroupFlag(status.flags)!r}")

        short = vfio.vfio_group_status(argsz=4)  # claims the struct is 4 bytes long
        expect_errno("argsz 4 (shorter than the struct)",
                     lambda: k.ioctl(lg.group, vfio.VFIO_GROUP_GET_STATUS, short), errno.EINVAL)
    return ran(f"group {t.group} is {'viable' if viable else 'NOT viable'}")


if __name__ == "__main__":
    raise SystemExit(run(main))
