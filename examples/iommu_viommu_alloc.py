"""IOMMU_VIOMMU_ALLOC: give a VM its own slice of a physical IOMMU (a virtual IOMMU, vIOMMU).

With a vIOMMU the guest's IOMMU driver talks to real hardware queues and
the host only translates ids.  struct iommu_viommu_alloc: ``type`` (the
vendor kind: IOMMU_VIOMMU_TYPE_ARM_SMMUV3, _TEGRA241_CMDQV), ``dev_id`` (a
bound device behind that IOMMU), ``hwpt_id`` (a NEST_PARENT HWPT: the
stage-2 table the guest's tables nest in) and optional vendor data; it
returns ``out_viommu_id``, the parent of vDEVICEs, vEVENTQs and HW queues.

Only ARM SMMUv3 (and NVIDIA's CMDQV on it) implement vIOMMUs.  On this
machine the IOMMU driver has none, so after checking the device the kernel
answers EOPNOTSUPP.  That refusal is the run.
"""

from __future__ import annotations

import errno

from _common import answered, argsz, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_VIOMMU_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t) as ctx:
        req = argsz(iu.iommu_viommu_alloc, type=iu.IOMMU_VIOMMU_TYPE_ARM_SMMUV3, dev_id=ctx.devid,
                    hwpt_id=ctx.hwpt)
        show("request", req)
        say(f"an SMMUv3 vIOMMU for device {ctx.devid}, nested in HWPT {ctx.hwpt}")
        try:
            k.ioctl(ctx.fd, iu.IOMMU_VIOMMU_ALLOC, req)
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise
            say("ioctl(iommufd, IOMMU_VIOMMU_ALLOC) -> EOPNOTSUPP")
            return answered(e.errno, "this IOMMU driver has no vIOMMU support (only ARM SMMUv3 and NVIDIA "
                                     "Tegra241 CMDQV do)")
        show("after", req)
    return ran(f"vIOMMU {req.out_viommu_id} allocated")


if __name__ == "__main__":
    raise SystemExit(run(main))
