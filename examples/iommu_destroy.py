"""IOMMU_DESTROY: destroy any iommufd object (IOAS, HWPT, fault queue...) by its id.

struct iommu_destroy: ``size`` and ``id``.  Every object an iommufd hands
out has an id in one table; DESTROY removes it if nothing else uses it.
An id that names nothing is ENOENT; an object still in use -- an IOAS a
device is attached to, a HWPT with devices -- is EBUSY.  Closing the
iommufd destroys everything it still holds.
"""

from __future__ import annotations

import errno

from _common import (
    argsz, expect_errno, ioas_alloc, iommufd, open_iommufd, ran, run, say, show, summary, target, title,
)

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_DESTROY", "the iommufd (/dev/iommu)")
    k = t.kernel
    fd = open_iommufd(t)
    try:
        ioas = ioas_alloc(k, fd)
        say(f"allocated IOAS {ioas}")
        destroy = argsz(iu.iommu_destroy, id=ioas)
        show("request", destroy)
        k.ioctl(fd, iu.IOMMU_DESTROY, destroy)
        say(f"ioctl(iommufd, IOMMU_DESTROY, id {ioas}) -> 0")
        expect_errno(f"destroying id {ioas} again", lambda: k.ioctl(fd, iu.IOMMU_DESTROY, destroy), errno.ENOENT)
    finally:
        k.close(fd)
    with iommufd(t) as ctx:  # a device attached to an IOAS keeps it busy
        expect_errno(f"destroying IOAS {ctx.ioas} while the device is attached to it", lambda: k.ioctl(
            ctx.fd, iu.IOMMU_DESTROY, argsz(iu.iommu_destroy, id=ctx.ioas)), errno.EBUSY)
    return ran("an IOAS destroyed")


if __name__ == "__main__":
    raise SystemExit(run(main))
