"""VFIO_EEH_PE_OP: (IBM POWER) Enhanced Error Handling on a partitionable endpoint (PE).

When a POWER host bridge detects a PCI error it freezes the PE (MMIO and DMA
stop).  struct vfio_eeh_pe_op's ``op`` lets the owner see and repair that:
ENABLE/DISABLE EEH, GET_STATE (the answer is the return value:
VFIO_EEH_PE_STATE_*), UNFREEZE_IO/_DMA, RESET_HOT/_FUNDAMENTAL, CONFIGURE,
INJECT_ERR (with ``err``).  Needs CHECK_EXTENSION(VFIO_EEH).  On x86 the
request number means nothing to a type1 container: the kernel answers ENOTTY.
"""

from __future__ import annotations

import errno

from _common import (
    X86_SPAPR, answered, argsz, ran, run, say, show, spapr_call, spapr_container, summary, target, title,
)

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_EEH_PE_OP", "the container fd (sPAPR)")
    op = argsz(vfio.vfio_eeh_pe_op, op=vfio.VFIO_EEH_PE_GET_STATE)
    show("request", op)
    say("op VFIO_EEH_PE_GET_STATE: 'is my PE working, frozen or being reset?'")
    with spapr_container(t) as (lg, spapr):
        err = spapr_call(t, lg, "VFIO_EEH_PE_OP", op)
    if err is None:
        return ran("the PE state was read")
    if not spapr and err == errno.ENOTTY:
        return answered(err, "EEH is an IBM POWER platform feature; " + X86_SPAPR)
    return answered(err, "EEH refused")


if __name__ == "__main__":
    raise SystemExit(run(main))
