"""VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: (IBM POWER, sPAPR v2) release memory registered for DMA.

Takes the same struct as VFIO_IOMMU_SPAPR_REGISTER_MEMORY, with the exact
``vaddr`` and ``size`` that were registered (ENOENT for anything else, EBUSY
while a TCE still maps it).  On x86 the request number means nothing to a
type1 container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import (
    PAGE, X86_SPAPR, anon_memory, answered, argsz, ran, run, show, spapr_call, spapr_container, summary, target,
    title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", "the container fd (sPAPR v2)")
    with anon_memory(16 * PAGE) as (buf, vaddr), spapr_container(t) as (lg, spapr):
        reg = argsz(vfio.vfio_iommu_spapr_register_memory, vaddr=vaddr, size=len(buf))
        show("request", reg)
        if spapr:  # register first, so there is something to release
            spapr_call(t, lg, "VFIO_IOMMU_SPAPR_REGISTER_MEMORY", reg)
        err = spapr_call(t, lg, "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", reg)
    if err is None:
        return ran("64 KiB unregistered")
    if not spapr and err == errno.ENOTTY:
        return answered(err, X86_SPAPR)
    return answered(err, "the sPAPR IOMMU refused")


if __name__ == "__main__":
    raise SystemExit(run(main))
