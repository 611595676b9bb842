"""VFIO_CHECK_EXTENSION: ask a container which IOMMU types and features this kernel offers.

The argument is the extension number, passed by value; the answer is the
return value: 1 (or more) for yes, 0 for no -- never an error for an unknown
number.  Before VFIO_SET_IOMMU the container asks every IOMMU backend the
kernel has; afterwards only the chosen one answers, which is why some
features (VFIO_UPDATE_VADDR on type1) only show up after SET_IOMMU.
"""

from __future__ import annotations

import ctypes
from typing import Any

from _common import legacy, ran, run, say, summary, target, title

from pyvfio.uapi import vfio

#: every extension number vfio.h defines (6 was type1 nesting, withdrawn and now reserved)
EXTENSIONS = list(vfio.VfioExtension)


def ask(k: Any, container: int) -> dict[str, int]:
    """One VFIO_CHECK_EXTENSION per extension: the number goes by value, the answer is the return value."""
    return {ext.name: int(k.ioctl(container, vfio.VFIO_CHECK_EXTENSION, int(ext))) for ext in EXTENSIONS}


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_CHECK_EXTENSION", "the container fd")
    k = t.kernel
    with legacy(t, set_container=False) as lg:
        before = ask(k, lg.container)  # an empty container: every backend answers
        k.ioctl(lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(lg.container))
        k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        after = ask(k, lg.container)  # type1v2 chosen: only type1 answers now
        say(f"{'extension':<30} {'number':>6}  before SET_IOMMU  after SET_IOMMU(TYPE1v2)")
        for ext in EXTENSIONS:
            say(f"{ext.name:<30} {int(ext):>6}  {before[ext.name]:>16}  {after[ext.name]:>24}")
        unknown = k.ioctl(lg.container, vfio.VFIO_CHECK_EXTENSION, 999)
        say(f"an extension number nobody knows (999) -> {unknown}: 'no' is an answer, not an error")
    return ran(f"type1v2 is {'available' if before['TYPE1v2_IOMMU'] else 'MISSING'}")


if __name__ == "__main__":
    raise SystemExit(run(main))
