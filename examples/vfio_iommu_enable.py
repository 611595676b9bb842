"""VFIO_IOMMU_ENABLE: (IBM POWER, sPAPR TCE v1) switch on the container's DMA window after setup.

On POWER with the v1 sPAPR IOMMU, mapping is only allowed once the container
is enabled: ENABLE also accounts the whole 32-bit DMA window as locked
memory.  No argument.  v2 containers do not need it, and on x86 the request
number means nothing to a type1 container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import X86_SPAPR, answered, ran, run, say, spapr_call, spapr_container, summary, target, title


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_ENABLE", "the container fd (sPAPR)")
    with spapr_container(t) as (lg, spapr):
        say("no argument: the request number alone says 'enable'")
        err = spapr_call(t, lg, "VFIO_IOMMU_ENABLE", 0)
    if err is None:
        return ran("the sPAPR container is enabled")
    if not spapr and err == errno.ENOTTY:
        return answered(err, X86_SPAPR)
    return answered(err, "an sPAPR TCE v2 container needs no ENABLE")


if __name__ == "__main__":
    raise SystemExit(run(main))
