"""IOMMU_HWPT_ALLOC: allocate a hardware page table (HWPT) yourself, instead of the automatic one.

Attaching a device to an IOAS makes the kernel create a HWPT -- the page
table the IOMMU really walks -- behind your back.  IOMMU_HWPT_ALLOC makes one
explicitly, so it can carry flags: struct iommu_hwpt_alloc takes ``dev_id``
(a bound device the table must suit), ``pt_id`` (the IOAS whose mappings fill
it), ``flags`` (NEST_PARENT, DIRTY_TRACKING, FAULT_ID_VALID, PASID) and, for
nested tables only, vendor data (``data_type``/``data_len``/``data_uptr``).
It returns ``out_hwpt_id``; attach the device to that id.  ``data_type`` NONE
with a ``data_len`` is EINVAL; flags the IOMMU cannot do are EOPNOTSUPP.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, attempt, edu_of, expect_errno, ioas_map, iommufd, ran, run, say, show, summary,
    target, title,
)

from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_HWPT_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(4 * PAGE) as (buf, vaddr), iommufd(t, attach=False) as ctx:
        hwpt = argsz(iu.iommu_hwpt_alloc, dev_id=ctx.devid, pt_id=ctx.ioas, data_type=iu.IOMMU_HWPT_DATA_NONE)
        show("before", hwpt)
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_ALLOC, hwpt)
        show("after", hwpt)
        attach = argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=hwpt.out_hwpt_id)
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach)
        say(f"device attached to HWPT {hwpt.out_hwpt_id} (pt_id stays {attach.pt_id}: no automatic table)")
        ioas_map(k, ctx, vaddr, len(buf))  # mapped into IOAS -> the HWPT follows
        ok = edu_of(t, ctx.cdev).copy_through_device(buf, IOVA)
        say(f"IOAS {ctx.ioas} mapped at {IOVA:#x}; the edu's DMA went through HWPT {hwpt.out_hwpt_id}: "
            f"{'yes' if ok else 'NO'}")
        expect_errno("data_type NONE with data_len 8", lambda: k.ioctl(ctx.fd, iu.IOMMU_HWPT_ALLOC, argsz(
            iu.iommu_hwpt_alloc, dev_id=ctx.devid, pt_id=ctx.ioas, data_len=8)), errno.EINVAL)
        attempt("flags NEST_PARENT (a stage-2 table for nested translation)", lambda: k.ioctl(
            ctx.fd, iu.IOMMU_HWPT_ALLOC, argsz(iu.iommu_hwpt_alloc, dev_id=ctx.devid, pt_id=ctx.ioas,
                                               flags=iu.IOMMU_HWPT_ALLOC_NEST_PARENT)))
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_DETACH_IOMMUFD_PT, argsz(vfio.vfio_device_detach_iommufd_pt))
    if not ok:
        raise SystemExit("device DMA through the allocated HWPT failed")
    return ran(f"HWPT {hwpt.out_hwpt_id} allocated and used for DMA")


if __name__ == "__main__":
    raise SystemExit(run(main))
