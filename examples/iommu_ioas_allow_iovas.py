"""IOMMU_IOAS_ALLOW_IOVAS: promise IOVA ranges that must stay usable, and steer automatic IOVA allocation.

struct iommu_ioas_allow_iovas points at ``num_iovas`` struct
iommu_iova_range {start, last}.  Once set, IOMMU_IOAS_IOVA_RANGES never
narrows below them -- attaching a device that reserves part of them fails --
and IOMMU_IOAS_MAP without FIXED_IOVA only picks IOVAs inside them.  The
call replaces the whole list (``num_iovas`` 0 clears it).  Ranges with
``start >= last`` or overlapping each other are EINVAL; a range already
reserved (the x86 MSI window once a device is attached) is EADDRINUSE.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

from _common import PAGE, anon_memory, argsz, expect_errno, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu

WINDOW = (0x4000000, 0x7FFFFFF)  # 64 MiB .. 128 MiB - 1


def allow(k: Any, fd: int, ioas: int, ranges: list[tuple[int, int]]) -> iu.iommu_ioas_allow_iovas:
    array = (iu.iommu_iova_range * len(ranges))(*[iu.iommu_iova_range(start=s, last=e) for s, e in ranges])
    req = argsz(iu.iommu_ioas_allow_iovas, ioas_id=ioas, num_iovas=len(ranges),
                allowed_iovas=ctypes.addressof(array))
    k.ioctl(fd, iu.IOMMU_IOAS_ALLOW_IOVAS, req)
    return req


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_ALLOW_IOVAS", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(4 * PAGE) as (buf, vaddr), iommufd(t) as ctx:
        req = allow(k, ctx.fd, ctx.ioas, [WINDOW])
        show("request", req)
        say(f"allowed [{WINDOW[0]:#x}, {WINDOW[1]:#x}] in IOAS {ctx.ioas}")
        m = argsz(iu.iommu_ioas_map, ioas_id=ctx.ioas, user_va=vaddr, length=len(buf),
                  flags=iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE)  # no FIXED_IOVA: kernel picks
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP, m)
        inside = WINDOW[0] <= m.iova <= WINDOW[1]
        say(f"IOMMU_IOAS_MAP without FIXED_IOVA picked IOVA {m.iova:#x}: "
            f"{'inside' if inside else 'OUTSIDE'} the allowed range")
        expect_errno("ranges [0x1000, 0x1000] (start == last)",
                     lambda: allow(k, ctx.fd, ctx.ioas, [(0x1000, 0x1000)]), errno.EINVAL)
        expect_errno("two overlapping ranges",
                     lambda: allow(k, ctx.fd, ctx.ioas, [(0x10000, 0x1FFFF), (0x18000, 0x2FFFF)]), errno.EINVAL)
        expect_errno("a range over the MSI window the attached device reserves",
                     lambda: allow(k, ctx.fd, ctx.ioas, [(0xFEE00000, 0xFEEFFFFF)]), errno.EADDRINUSE)
        allow(k, ctx.fd, ctx.ioas, [])
        say("num_iovas 0 -> the promise is withdrawn")
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=m.iova,
                                                    length=len(buf)))
    if not inside:
        raise SystemExit("the automatic IOVA ignored the allowed range")
    return ran("automatic IOVA allocation stayed inside the allowed range")


if __name__ == "__main__":
    raise SystemExit(run(main))
