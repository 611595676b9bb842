"""IOMMU_IOAS_NOIOMMU_GET_PA: the physical address behind an IOVA, for devices used without an IOMMU.

In VFIO's unsafe no-IOMMU mode a device DMAs to raw physical addresses, so
the program driving it must know where its memory physically is.  struct
iommu_ioas_noiommu_get_pa: ``ioas_id``, ``iova`` inside an existing mapping
and ``length`` (the most bytes to look at); the kernel returns ``out_phys``
and shrinks ``length`` to the physically contiguous run.  It needs
CAP_SYS_RAWIO; an unmapped IOVA is ENOENT.

Here nothing uses no-IOMMU mode (every device sits behind an IOMMU), so the
kernel has no physical address to give: EOPNOTSUPP.  That refusal is the run.
"""

from __future__ import annotations

import errno

from _common import (
    IOVA, PAGE, anon_memory, answered, argsz, attempt, errname, ioas_map, iommufd, ran, run, say, show, summary,
    target, title,
)

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_IOAS_NOIOMMU_GET_PA", "the iommufd (/dev/iommu)")
    k = t.kernel
    with anon_memory(2 * PAGE) as (buf, vaddr), iommufd(t, cdev=False) as ctx:
        ioas_map(k, ctx, vaddr, len(buf))
        say(f"mapped 2 pages of this process at IOVA {IOVA:#x} in IOAS {ctx.ioas}")
        nowhere = argsz(iu.iommu_ioas_noiommu_get_pa, ioas_id=ctx.ioas, iova=0x900000, length=PAGE)
        attempt("bad call: an IOVA nothing maps (0x900000)",
                lambda: k.ioctl(ctx.fd, iu.IOMMU_IOAS_NOIOMMU_GET_PA, nowhere))
        pa = argsz(iu.iommu_ioas_noiommu_get_pa, ioas_id=ctx.ioas, iova=IOVA, length=len(buf))
        show("before", pa)
        try:
            k.ioctl(ctx.fd, iu.IOMMU_IOAS_NOIOMMU_GET_PA, pa)
        except OSError as e:
            say(f"ioctl(iommufd, IOMMU_IOAS_NOIOMMU_GET_PA) -> {errname(e.errno)}")
            if e.errno == errno.EOPNOTSUPP:
                return answered(e.errno, "no no-IOMMU device uses this IOAS, so there is no physical address to "
                                         "report (devices behind an IOMMU never see one)")
            if e.errno == errno.ENOTTY:
                return answered(e.errno, "this kernel predates IOMMU_IOAS_NOIOMMU_GET_PA")
            if e.errno == errno.EPERM:
                return answered(e.errno, "physical addresses need CAP_SYS_RAWIO (run as root)")
            raise
        show("after", pa)
        k.ioctl(ctx.fd, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=ctx.ioas, iova=IOVA, length=len(buf)))
    return ran(f"IOVA {IOVA:#x} is physical {pa.out_phys:#x} for {pa.length:#x} contiguous bytes")


if __name__ == "__main__":
    raise SystemExit(run(main))
