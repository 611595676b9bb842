"""IOMMU_IOAS_IOVA_RANGES: which IOVAs of an IOAS can be mapped, given the devices attached to it.

struct iommu_ioas_iova_ranges points (``allowed_iovas``) at an array of
``num_iovas`` struct iommu_iova_range {start, last}.  The kernel writes as
many ranges as fit and sets ``num_iovas`` to how many there are; if that
is more than the array holds it fails with EMSGSIZE -- grow the array and
ask again.  ``out_iova_alignment`` is the smallest granule a mapping may
use.  A fresh IOAS spans everything; attaching a device narrows it to what
its IOMMU can translate, minus reserved holes like the x86 MSI window.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

from _common import argsz, iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio


def ranges(k: Any, fd: int, ioas: int) -> list[tuple[int, int]]:
    """The two-call protocol: ask with no room, get EMSGSIZE and the count, ask again with room."""
    q = argsz(iu.iommu_ioas_iova_ranges, ioas_id=ioas, num_iovas=0)
    try:
        k.ioctl(fd, iu.IOMMU_IOAS_IOVA_RANGES, q)
        return []
    except OSError as e:
        if e.errno != errno.EMSGSIZE:
            raise
    say(f"with no room -> EMSGSIZE; num_iovas = {q.num_iovas}, out_iova_alignment = {q.out_iova_alignment:#x}")
    array = (iu.iommu_iova_range * q.num_iovas)()
    q.allowed_iovas = ctypes.addressof(array)
    show("request", q)
    k.ioctl(fd, iu.IOMMU_IOAS_IOVA_RANGES, q)
    return [(r.start, r.last) for r in array]


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_IOVA_RANGES", "the iommufd (/dev/iommu)")
    k = t.kernel
    with iommufd(t, attach=False) as ctx:
        say(f"IOAS {ctx.ioas} with no device attached:")
        for start, last in ranges(k, ctx.fd, ctx.ioas):
            say(f"  usable [{start:#x}, {last:#x}]")
        k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz(vfio.vfio_device_attach_iommufd_pt,
                                                                     pt_id=ctx.ioas))
        say(f"after attaching {t.address} to it:")
        after = ranges(k, ctx.fd, ctx.ioas)
        for start, last in after:
            say(f"  usable [{start:#x}, {last:#x}]")
    return ran(f"{len(after)} usable ranges with the device attached")


if __name__ == "__main__":
    raise SystemExit(run(main))
