"""IOMMU_HWPT_INVALIDATE: flush a guest-owned (nested) page table's IOMMU caches after the guest changed it.

With nested translation the guest writes its own stage-1 page table and
must tell the IOMMU to drop stale cached entries.  struct
iommu_hwpt_invalidate: ``hwpt_id`` (a *nested* HWPT or a vIOMMU),
``data_type`` (the vendor format, e.g. IOMMU_HWPT_INVALIDATE_DATA_VTD_S1),
and an array of ``entry_num`` requests of ``entry_len`` bytes at
``data_uptr``; ``entry_num`` comes back as how many were handled.

Nested page tables need an IOMMU with nesting, which this machine's does
not offer, so the request goes to the ordinary paging HWPT the device uses
-- and the kernel refuses it (EINVAL): a table the kernel itself owns needs
no invalidation from user space.  That refusal is the run.
"""

from __future__ import annotations

import ctypes
import errno

from _common import answered, argsz, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_HWPT_INVALIDATE", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t) as ctx:
        entries = (iu.iommu_hwpt_vtd_s1_invalidate * 1)()
        entries[0].addr, entries[0].npages = 0x100000, 1  # "drop what you cached for this guest page"
        show("entry[0]", entries[0])
        inv = argsz(iu.iommu_hwpt_invalidate, hwpt_id=ctx.hwpt, data_uptr=ctypes.addressof(entries),
                    data_type=iu.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
                    entry_len=ctypes.sizeof(iu.iommu_hwpt_vtd_s1_invalidate), entry_num=1)
        show("before", inv)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_HWPT_INVALIDATE, inv)
        except OSError as e:
            show("after", inv)
            if e.errno != errno.EINVAL:
                raise
            say(f"ioctl(iommufd, IOMMU_HWPT_INVALIDATE, HWPT {ctx.hwpt}) -> EINVAL; entry_num came back "
                f"{inv.entry_num}: none handled")
            return answered(e.errno, f"HWPT {ctx.hwpt} is a kernel-owned paging table; only nested HWPTs and "
                                     "vIOMMUs take invalidations, and this IOMMU offers no nesting")
        show("after", inv)
    return ran(f"{inv.entry_num} invalidation(s) handled")


if __name__ == "__main__":
    raise SystemExit(run(main))
