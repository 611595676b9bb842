"""VFIO_DEVICE_QUERY_GFX_PLANE: ask a mediated GPU (vGPU) for the guest's current display plane.

Only vGPU drivers implement it (Intel GVT-g, the mdpy/mbochs samples): the
caller sets ``drm_plane_type`` (DRM_PLANE_TYPE_PRIMARY = 1, CURSOR = 2) and
``flags`` -- PROBE|DMABUF or PROBE|REGION asks which way the plane can be
exported; without PROBE the kernel fills in format, size, stride and a
``dmabuf_id`` (then VFIO_DEVICE_GET_GFX_DMABUF) or ``region_index``.

vfio-pci has no display, so the ioctl is ENOTTY here: the kernel's answer
for "this device fd has no such ioctl".  That is the run.
"""

from __future__ import annotations

import errno

from _common import answered, argsz, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio

DRM_PLANE_TYPE_PRIMARY = 1


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_QUERY_GFX_PLANE", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        plane = argsz(vfio.vfio_device_gfx_plane_info, drm_plane_type=DRM_PLANE_TYPE_PRIMARY,
                      flags=vfio.VFIO_GFX_PLANE_TYPE_PROBE | vfio.VFIO_GFX_PLANE_TYPE_DMABUF)
        show("request", plane)
        say("PROBE|DMABUF: 'can the primary plane be exported as a dma-buf?'")
        try:
            k.ioctl(lg.device, vfio.VFIO_DEVICE_QUERY_GFX_PLANE, plane)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            say("ioctl(device, VFIO_DEVICE_QUERY_GFX_PLANE, &plane) -> ENOTTY")
            return answered(errno.ENOTTY, "vfio-pci devices have no display plane; only vGPU (mdev) drivers "
                                          "implement this ioctl")
        show("after", plane)  # a vGPU answered: print what it reported
        say("this device has a display plane")
    return ran("the device reported its plane")


if __name__ == "__main__":
    raise SystemExit(run(main))
