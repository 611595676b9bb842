"""VFIO_IOMMU_SPAPR_REGISTER_MEMORY: (IBM POWER, sPAPR v2) pre-register memory that DMA windows may map.

struct vfio_iommu_spapr_register_memory: ``vaddr`` and ``size`` of a
page-aligned block of the process's memory.  The kernel pins and accounts it
once; TCE entries for it can then be set up fast (also from the guest, in
real mode).  ``flags`` must be 0.

Its request number, 0x3b75, is also VFIO_IOMMU_DIRTY_PAGES: sent to the
type1 container x86 has, the kernel would read this struct as a dirty-page
request.  So it is not sent here; the struct is built and shown.
"""

from __future__ import annotations

from _common import (
    PAGE, anon_memory, argsz, ran, reference_only, run, say, show, spapr_call, spapr_container, summary, target,
    title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_SPAPR_REGISTER_MEMORY", "the container fd (sPAPR v2)")
    with anon_memory(16 * PAGE) as (buf, vaddr), spapr_container(t) as (lg, spapr):
        reg = argsz(vfio.vfio_iommu_spapr_register_memory, vaddr=vaddr, size=len(buf))
        show("request", reg)
        if spapr and spapr_call(t, lg, "VFIO_IOMMU_SPAPR_REGISTER_MEMORY", reg) is None:
            spapr_call(t, lg, "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", reg)
            return ran("64 KiB registered and unregistered")
        say(f"not sent: {vfio.VFIO_IOMMU_SPAPR_REGISTER_MEMORY:#x} on a type1 container is "
            "VFIO_IOMMU_DIRTY_PAGES")
    return reference_only("no sPAPR IOMMU here, and this request number is VFIO_IOMMU_DIRTY_PAGES on a type1 "
                          "container")


if __name__ == "__main__":
    raise SystemExit(run(main))
