"""VFIO_IOMMU_SPAPR_TCE_CREATE: (IBM POWER, sPAPR v2) create an extra DMA window (dynamic DMA window).

struct vfio_iommu_spapr_tce_create: ``page_shift`` (IOMMU page size, e.g.
16 for 64 KiB), ``window_size``, ``levels`` of the TCE table; the kernel
returns ``start_addr``, the window's first bus address.  Guests use it to
map all of their RAM with large pages instead of squeezing through the
default 32-bit window.  On x86 the request number means nothing to a type1
container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import X86_SPAPR, answered, argsz, ran, run, show, spapr_call, spapr_container, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_SPAPR_TCE_CREATE", "the container fd (sPAPR v2)")
    create = argsz(vfio.vfio_iommu_spapr_tce_create, page_shift=16, window_size=1 << 30, levels=1)
    show("request", create)
    with spapr_container(t) as (lg, spapr):
        err = spapr_call(t, lg, "VFIO_IOMMU_SPAPR_TCE_CREATE", create)
        if err is None:
            show("after", create)
            spapr_call(t, lg, "VFIO_IOMMU_SPAPR_TCE_REMOVE",
                       argsz(vfio.vfio_iommu_spapr_tce_remove, start_addr=create.start_addr))
            return ran(f"a 1 GiB window at {create.start_addr:#x}")
    if not spapr and err == errno.ENOTTY:
        return answered(err, X86_SPAPR)
    return answered(err or 0, "the sPAPR IOMMU refused the window")


if __name__ == "__main__":
    raise SystemExit(run(main))
