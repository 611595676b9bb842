"""VFIO_DEVICE_GET_GFX_DMABUF: turn a vGPU's display plane into a dma-buf fd a compositor can show.

The argument is a pointer to a u32 ``dmabuf_id``, the one
VFIO_DEVICE_QUERY_GFX_PLANE returned for a DMABUF plane; the new dma-buf
fd is the return value.  Only vGPU drivers implement it.

vfio-pci has no display, so the ioctl is ENOTTY here.  (Its request number,
0x3b73, is also VFIO_IOMMU_ENABLE -- on a container fd the same number means
something else: ioctl numbers are per kind of fd.)
"""

from __future__ import annotations

import ctypes
import errno

from _common import answered, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_GET_GFX_DMABUF", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        dmabuf_id = ctypes.c_uint32(0)  # would come from QUERY_GFX_PLANE's dmabuf_id
        show("argument", dmabuf_id)
        try:
            fd = k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_GFX_DMABUF, dmabuf_id)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            say("ioctl(device, VFIO_DEVICE_GET_GFX_DMABUF, &dmabuf_id) -> ENOTTY")
            return answered(errno.ENOTTY, "vfio-pci devices export no display planes; only vGPU (mdev) drivers "
                                          "implement this ioctl")
        say(f"a vGPU answered with dma-buf fd {fd}")
        k.close(fd)
    return ran("got a dma-buf")


if __name__ == "__main__":
    raise SystemExit(run(main))
