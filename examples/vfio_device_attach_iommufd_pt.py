"""VFIO_DEVICE_ATTACH_IOMMUFD_PT: point a bound device's DMA at an IO address space (or a page table).

``pt_id`` is an IOAS id or a HWPT (hardware page table) id of the iommufd
the device is bound to.  Given an IOAS, the kernel finds or creates a
suitable HWPT for the device's IOMMU and writes that HWPT's id back into
``pt_id``.  From then on the device's DMA is translated by the IOAS's
mappings.  Attaching again replaces the page table; an id that is no object
is ENOENT.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, edu_of, expect_errno, ioas_map, iommufd, ran, run, say, show, summary, target,
    title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", f"the device cdev ({t.cdev})")
    k = t.kernel
    with anon_memory(4 * PAGE) as (buf, vaddr), iommufd(t, attach=False) as ctx:
        expect_errno("pt_id 0xdead (no such object)", lambda: k.ioctl(
            ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=0xDEAD)),
            errno.ENOENT)
        attach = argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=ctx.ioas)
        show("before", attach)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach)
        show("after", attach)
        say(f"attached to IOAS {ctx.ioas}; the kernel made HWPT {attach.pt_id} for it and wrote its id back")
        ioas_map(k, ctx, vaddr, len(buf))
        edu = edu_of(t, ctx.cdev)
        ok = edu.copy_through_device(buf, IOVA)
        say(f"mapped 4 pages at IOVA {IOVA:#x}; the edu copied bytes through them: {'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit("device DMA did not go through the attached IOAS")
    return ran(f"attached, DMA through HWPT {attach.pt_id}")


if __name__ == "__main__":
    raise SystemExit(run(main))
