"""IOMMU_HW_QUEUE_ALLOC: hand a vIOMMU's hardware command queue to the guest (e.g. NVIDIA CMDQV).

Some IOMMUs let a guest write invalidation commands straight into a
hardware queue, no host exit.  struct iommu_hw_queue_alloc: ``viommu_id``,
``type`` (IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV), ``index`` (which queue),
``nesting_parent_iova`` and ``length`` (where the queue memory is, as a
guest-physical address mapped in the nesting parent); returns
``out_hw_queue_id``.  ``length`` 0 is EINVAL.

It needs a vIOMMU, which this machine's IOMMU cannot make; so ``viommu_id``
names nothing and the kernel answers ENOENT.  That refusal is the run.
"""

from __future__ import annotations

import errno

from _common import PAGE, answered, argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_HW_QUEUE_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t, cdev=False) as ctx:
        expect_errno("length 0", lambda: k.ioctl(ctx.fd, iu.IOMMU_HW_QUEUE_ALLOC, argsz(
            iu.iommu_hw_queue_alloc, viommu_id=0xDEAD, type=iu.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV)), errno.EINVAL)
        req = argsz(iu.iommu_hw_queue_alloc, viommu_id=0xDEAD, type=iu.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
                    index=0, nesting_parent_iova=0x100000, length=PAGE)
        show("request", req)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_HW_QUEUE_ALLOC, req)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            say("ioctl(iommufd, IOMMU_HW_QUEUE_ALLOC) -> ENOENT")
            return answered(e.errno, "no vIOMMU with that id: this IOMMU cannot allocate vIOMMUs "
                                     "(see iommu_viommu_alloc.py)")
    return ran(f"HW queue {req.out_hw_queue_id}")


if __name__ == "__main__":
    raise SystemExit(run(main))
