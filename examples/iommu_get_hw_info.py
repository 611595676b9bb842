"""IOMMU_GET_HW_INFO: what the IOMMU behind a bound device is and can do.

struct iommu_hw_info: ``dev_id``, and a buffer (``data_uptr``, ``data_len``)
for the vendor's own report.  The kernel returns ``out_data_type`` (which
vendor struct it wrote: IOMMU_HW_INFO_TYPE_INTEL_VTD, _ARM_SMMUV3, _AMD...,
or NONE), shrinks ``data_len`` to what it wrote, and sets
``out_capabilities`` (IOMMU_HW_CAP_DIRTY_TRACKING, PASID...) and
``out_max_pasid_log2``.  A VMM uses it to decide what it can offer a guest's
virtual IOMMU.  An unknown ``dev_id`` is ENOENT.
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_GET_HW_INFO", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t, attach=False) as ctx:
        data = ctypes.create_string_buffer(64)  # room for any vendor's struct
        info = argsz(iu.iommu_hw_info, dev_id=ctx.devid, data_len=len(data), data_uptr=ctypes.addressof(data))
        show("before", info)
        k.ioctl(ctx.fd, iu.IOMMU_GET_HW_INFO, info)
        show("after", info)
        kind = iu.iommu_hw_info_type(info.out_data_type).name
        say(f"out_data_type {kind}, {info.data_len} bytes of vendor data; "
            f"capabilities {iu.IommuHwCapabilities(info.out_capabilities)!r}")
        if info.out_data_type == iu.IOMMU_HW_INFO_TYPE_INTEL_VTD:
            say(f"Intel VT-d: {iu.iommu_hw_info_vtd.from_buffer(data)!r}")
        elif info.out_data_type == iu.IOMMU_HW_INFO_TYPE_NONE:
            say("no vendor report: this IOMMU driver offers none")
        expect_errno("dev_id 0xdead", lambda: k.ioctl(ctx.fd, iu.IOMMU_GET_HW_INFO, argsz(
            iu.iommu_hw_info, dev_id=0xDEAD)), errno.ENOENT)
    return ran(f"the IOMMU reports {kind}")


if __name__ == "__main__":
    raise SystemExit(run(main))
