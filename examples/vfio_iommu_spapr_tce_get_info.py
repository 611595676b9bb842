"""VFIO_IOMMU_SPAPR_TCE_GET_INFO: (IBM POWER) the default 32-bit DMA window and dynamic-window limits.

struct vfio_iommu_spapr_tce_info returns ``dma32_window_start``/``_size``
(the window every device gets at boot) and, with the DDW flag, ``ddw``:
the page sizes, how many more windows can be created
(VFIO_IOMMU_SPAPR_TCE_CREATE) and how many table levels they may use.

Its request number, 0x3b70, is also VFIO_IOMMU_GET_INFO: sent to the type1
container x86 has, the kernel would read this struct as a type1 info
request.  So it is not sent here -- the struct is built and shown, and the
kernel's own answer is the CHECK_EXTENSION line: no sPAPR IOMMU.
"""

from __future__ import annotations

from _common import argsz, ran, reference_only, run, say, show, spapr_call, spapr_container, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_SPAPR_TCE_GET_INFO", "the container fd (sPAPR)")
    info = argsz(vfio.vfio_iommu_spapr_tce_info)
    show("request", info)
    with spapr_container(t) as (lg, spapr):
        if spapr:
            if spapr_call(t, lg, "VFIO_IOMMU_SPAPR_TCE_GET_INFO", info) is None:
                show("after", info)
                return ran(f"32-bit window at {info.dma32_window_start:#x}, {info.dma32_window_size:#x} bytes")
        say(f"not sent: {vfio.VFIO_IOMMU_SPAPR_TCE_GET_INFO:#x} on a type1 container is VFIO_IOMMU_GET_INFO")
    return reference_only("no sPAPR IOMMU here, and this request number is VFIO_IOMMU_GET_INFO on a type1 "
                          "container")


if __name__ == "__main__":
    raise SystemExit(run(main))
