"""IOMMU_VEVENTQ_ALLOC: a queue (and an fd) of events a vIOMMU forwards to the guest's IOMMU driver.

Hardware events about a guest's devices (an SMMU event record, a CMDQV
error) are queued per vIOMMU.  struct iommu_veventq_alloc: ``viommu_id``,
``type`` (the vendor format, e.g. IOMMU_VEVENTQ_TYPE_ARM_SMMUV3) and
``veventq_depth`` (entries before events are dropped; 0 is EINVAL); returns
``out_veventq_id`` and ``out_veventq_fd``, which read(2) yields
struct iommufd_vevent_header + vendor data from.

It needs a vIOMMU, which this machine's IOMMU cannot make; so ``viommu_id``
names nothing and the kernel answers ENOENT.  That refusal is the run.
"""

from __future__ import annotations

import errno

from _common import answered, argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_VEVENTQ_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t, cdev=False) as ctx:
        expect_errno("veventq_depth 0", lambda: k.ioctl(ctx.fd, iu.IOMMU_VEVENTQ_ALLOC, argsz(
            iu.iommu_veventq_alloc, viommu_id=0xDEAD, type=iu.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3)), errno.EINVAL)
        req = argsz(iu.iommu_veventq_alloc, viommu_id=0xDEAD, type=iu.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
                    veventq_depth=64)
        show("request", req)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_VEVENTQ_ALLOC, req)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            say("ioctl(iommufd, IOMMU_VEVENTQ_ALLOC) -> ENOENT")
            return answered(e.errno, "no vIOMMU with that id: this IOMMU cannot allocate vIOMMUs "
                                     "(see iommu_viommu_alloc.py)")
        k.close(req.out_veventq_fd)
    return ran(f"vEVENTQ {req.out_veventq_id}")


if __name__ == "__main__":
    raise SystemExit(run(main))
