"""IOMMU_VDEVICE_ALLOC: tell a vIOMMU which guest-side id (virtual StreamID, BDF) a device has.

When the guest's IOMMU driver names a device in a command or an event
names it back, the ids are the guest's.  struct iommu_vdevice_alloc:
``viommu_id``, ``dev_id`` (the bound device) and ``virt_id`` (its id as the
guest sees it, e.g. a virtual SMMU StreamID); returns ``out_vdevice_id``.

It needs a vIOMMU (IOMMU_VIOMMU_ALLOC), which this machine's IOMMU cannot
make; so ``viommu_id`` here names nothing and the kernel answers ENOENT.
That refusal is the run.
"""

from __future__ import annotations

import errno

from _common import answered, argsz, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_VDEVICE_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t) as ctx:
        req = argsz(iu.iommu_vdevice_alloc, viommu_id=0xDEAD, dev_id=ctx.devid, virt_id=0x18)
        show("request", req)
        say(f"'device {ctx.devid} is StreamID 0x18 in the guest' -- for vIOMMU 0xdead, which does not exist")
        try:
            k.ioctl(ctx.fd, iu.IOMMU_VDEVICE_ALLOC, req)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            say("ioctl(iommufd, IOMMU_VDEVICE_ALLOC) -> ENOENT")
            return answered(e.errno, "no vIOMMU with that id: this IOMMU cannot allocate vIOMMUs "
                                     "(see iommu_viommu_alloc.py)")
        show("after", req)
    return ran(f"vDEVICE {req.out_vdevice_id}")


if __name__ == "__main__":
    raise SystemExit(run(main))
