"""IOMMU_HWPT_SET_DIRTY_TRACKING: make the IOMMU record which pages devices write (for live migration).

struct iommu_hwpt_set_dirty_tracking: ``hwpt_id`` and ``flags``
IOMMU_HWPT_DIRTY_TRACKING_ENABLE (start; clears old dirty state) or 0
(stop).  Only a HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING can do
it -- any other, like the automatic one, is EOPNOTSUPP.  While on, the IOMMU
sets a dirty bit in its page table for every page a device writes;
IOMMU_HWPT_GET_DIRTY_BITMAP reads them.  Unlike type1 this is exact: the
hardware sees the writes.

It needs an IOMMU with dirty tracking (on x86, VT-d second-stage A/D bits);
the simulated machine is given one.  QEMU's emulated VT-d has none: there the
example stops and says so (IOMMU_GET_HW_INFO shows no
IOMMU_HW_CAP_DIRTY_TRACKING).
"""

from __future__ import annotations

import errno

from _common import argsz, dirty_hwpt, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__), iommu_dirty_tracking=True)  # the simulated IOMMU gets A/D bits
    title(t, "IOMMU_HWPT_SET_DIRTY_TRACKING", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t) as ctx:
        auto = ctx.hwpt
        expect_errno(f"ENABLE on HWPT {auto}, the automatic one", lambda: k.ioctl(
            ctx.fd, iu.IOMMU_HWPT_SET_DIRTY_TRACKING, argsz(iu.iommu_hwpt_set_dirty_tracking, hwpt_id=auto,
                                                            flags=iu.IOMMU_HWPT_DIRTY_TRACKING_ENABLE)),
            errno.EOPNOTSUPP)
        hwpt = dirty_hwpt(t, ctx)
        on = argsz(iu.iommu_hwpt_set_dirty_tracking, hwpt_id=hwpt, flags=iu.IOMMU_HWPT_DIRTY_TRACKING_ENABLE)
        show("request", on)
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_SET_DIRTY_TRACKING, on)
        say(f"ioctl(iommufd, IOMMU_HWPT_SET_DIRTY_TRACKING, ENABLE) -> 0: HWPT {hwpt} records device writes")
        off = argsz(iu.iommu_hwpt_set_dirty_tracking, hwpt_id=hwpt, flags=0)
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_SET_DIRTY_TRACKING, off)
        say("flags 0 -> 0: tracking off")
    return ran("dirty tracking switched on and off")


if __name__ == "__main__":
    raise SystemExit(run(main))
