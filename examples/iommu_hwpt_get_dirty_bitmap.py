"""IOMMU_HWPT_GET_DIRTY_BITMAP: read (and clear) which pages of an IOVA range devices wrote.

struct iommu_hwpt_get_dirty_bitmap: ``hwpt_id``, the range (``iova``,
``length``), ``page_size`` (the size one bit stands for) and ``data``, the
address of the caller's bitmap (bit n = page n of the range, in u64 words).
The kernel only *sets* bits -- zero the buffer first -- and clears the
dirty state it reported unless ``flags`` has
IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR.  Tracking must be on
(IOMMU_HWPT_SET_DIRTY_TRACKING); a range not aligned to ``page_size`` is EINVAL.

Here the edu device writes one page; the bitmap shows exactly that page.

It needs an IOMMU with dirty tracking (on x86, VT-d second-stage A/D bits);
the simulated machine is given one.  QEMU's emulated VT-d has none: there the
example stops and says so (IOMMU_GET_HW_INFO shows no
IOMMU_HW_CAP_DIRTY_TRACKING).
"""

from __future__ import annotations

import ctypes
import errno

from _common import (
    IOVA, PAGE, anon_memory, argsz, dirty_hwpt, edu_of, expect_errno, ioas_map, iommufd, ran, run, say, show,
    summary, target, title,
)

from pyvfio.uapi import iommufd as iu

NPAGES = 8


def main() -> int:
    t = target(summary(__doc__), iommu_dirty_tracking=True)  # the simulated IOMMU gets A/D bits
    title(t, "IOMMU_HWPT_GET_DIRTY_BITMAP", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(NPAGES * PAGE) as (buf, vaddr), iommufd(t, attach=False) as ctx:
        hwpt = dirty_hwpt(t, ctx)
        ioas_map(k, ctx, vaddr, len(buf))
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_SET_DIRTY_TRACKING, argsz(
            iu.iommu_hwpt_set_dirty_tracking, hwpt_id=hwpt, flags=iu.IOMMU_HWPT_DIRTY_TRACKING_ENABLE))
        say(f"tracking on; {NPAGES} pages mapped at {IOVA:#x}")
        edu_of(t, ctx.cdev).copy_through_device(buf, IOVA)  # device reads page 0, writes page 1
        say("the edu read page 0 and wrote 256 bytes into page 1")

        bitmap = (ctypes.c_uint64 * 1)()  # NPAGES bits, zeroed
        get = argsz(iu.iommu_hwpt_get_dirty_bitmap, hwpt_id=hwpt, iova=IOVA, length=len(buf), page_size=PAGE,
                    data=ctypes.addressof(bitmap))
        show("request", get)
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_GET_DIRTY_BITMAP, get)
        bits = int(bitmap[0])
        say(f"bitmap -> {bits:#0{NPAGES + 2}b}: dirty pages {[i for i in range(NPAGES) if bits >> i & 1]}")
        bitmap[0] = 0
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_GET_DIRTY_BITMAP, get)
        say(f"asked again -> {int(bitmap[0]):#0{NPAGES + 2}b}: the first read cleared them")
        odd = argsz(iu.iommu_hwpt_get_dirty_bitmap, hwpt_id=hwpt, iova=IOVA + 0x800, length=PAGE, page_size=PAGE,
                    data=ctypes.addressof(bitmap))
        expect_errno("an IOVA not aligned to page_size", lambda: k.ioctl(ctx.fd, iu.IOMMU_HWPT_GET_DIRTY_BITMAP, odd),
                     errno.EINVAL)
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_SET_DIRTY_TRACKING, argsz(iu.iommu_hwpt_set_dirty_tracking, hwpt_id=hwpt))
    return ran(f"{bin(bits).count('1')} dirty page(s) reported")


if __name__ == "__main__":
    raise SystemExit(run(main))
