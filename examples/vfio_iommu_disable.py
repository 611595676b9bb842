"""VFIO_IOMMU_DISABLE: (IBM POWER, sPAPR TCE v1) switch the container's DMA window off again.

The inverse of VFIO_IOMMU_ENABLE: no argument; the locked-memory accounting
for the window is dropped.  On x86 the request number means nothing to a
type1 container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import X86_SPAPR, answered, ran, run, say, spapr_call, spapr_container, summary, target, title


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_IOMMU_DISABLE", "the container fd (sPAPR)")
    with spapr_container(t) as (lg, spapr):
        say("no argument: the request number alone says 'disable'")
        err = spapr_call(t, lg, "VFIO_IOMMU_DISABLE", 0)
    if err is None:
        return ran("the sPAPR container is disabled")
    if not spapr and err == errno.ENOTTY:
        return answered(err, X86_SPAPR)
    return answered(err, "an sPAPR TCE v2 container has nothing to disable")


if __name__ == "__main__":
    raise SystemExit(run(main))
