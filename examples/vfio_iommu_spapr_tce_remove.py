"""VFIO_IOMMU_SPAPR_TCE_REMOVE: (IBM POWER, sPAPR v2) remove a DMA window by its start address.

struct vfio_iommu_spapr_tce_remove: ``start_addr`` as VFIO_IOMMU_SPAPR_TCE_CREATE
returned it (the default 32-bit window, at 0, can be removed too).  On x86
the request number means nothing to a type1 container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import X86_SPAPR, answered, argsz, ran, run, show, spapr_call, spapr_container, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_SPAPR_TCE_REMOVE", "the container fd (sPAPR v2)")
    with spapr_container(t) as (lg, spapr):
        start = 0
        if spapr:  # create a window to remove
            create = argsz(vfio.vfio_iommu_spapr_tce_create, page_shift=16, window_size=1 << 30, levels=1)
            if spapr_call(t, lg, "VFIO_IOMMU_SPAPR_TCE_CREATE", create) is None:
                start = int(create.start_addr)
        remove = argsz(vfio.vfio_iommu_spapr_tce_remove, start_addr=start)
        show("request", remove)
        err = spapr_call(t, lg, "VFIO_IOMMU_SPAPR_TCE_REMOVE", remove)
    if err is None:
        return ran(f"the window at {start:#x} is gone")
    if not spapr and err == errno.ENOTTY:
        return answered(err, X86_SPAPR)
    return answered(err, "the sPAPR IOMMU refused")


if __name__ == "__main__":
    raise SystemExit(run(main))
