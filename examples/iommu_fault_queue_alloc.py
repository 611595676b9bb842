"""IOMMU_FAULT_QUEUE_ALLOC: a queue (and an fd) through which the IOMMU reports I/O page faults.

A device with PRI may DMA to pages that are not mapped yet; the IOMMU then
reports a *page fault* instead of failing the DMA, and user space maps the
page and answers.  struct iommu_fault_alloc (``flags`` 0) returns
``out_fault_id`` -- pass it with IOMMU_HWPT_FAULT_ID_VALID to IOMMU_HWPT_ALLOC
-- and ``out_fault_fd``: read(2) it for struct iommu_hwpt_pgfault records,
write(2) struct iommu_hwpt_page_response records back.  The open fd keeps
the queue alive (IOMMU_DESTROY is EBUSY until it is closed).

The queue itself needs no special hardware, so it is allocated here; no
device in this machine can fault (none has PRI), so it stays empty.
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, expect_errno, open_iommufd, ran, read_fd, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_FAULT_QUEUE_ALLOC", "the iommufd (/dev/iommu)")
    k = t.kernel
    fd = open_iommufd(t)
    try:
        alloc = argsz(iu.iommu_fault_alloc)
        show("before", alloc)
        k.ioctl(fd, iu.IOMMU_FAULT_QUEUE_ALLOC, alloc)
        show("after", alloc)
        qfd = alloc.out_fault_fd
        try:
            records = read_fd(k, qfd, ctypes.sizeof(iu.iommu_hwpt_pgfault))  # whole records only
            say(f"read(fault fd {qfd}, one record) -> {len(records)} bytes: "
                f"{'a fault is waiting' if records else 'nothing to read (no device faulted)'}")
            destroy = argsz(iu.iommu_destroy, id=alloc.out_fault_id)
            expect_errno(f"IOMMU_DESTROY of fault queue {alloc.out_fault_id} while its fd is open",
                         lambda: k.ioctl(fd, iu.IOMMU_DESTROY, destroy), errno.EBUSY)
        finally:
            k.close(qfd)
        k.ioctl(fd, iu.IOMMU_DESTROY, destroy)
        say(f"closed the fault fd; IOMMU_DESTROY of {alloc.out_fault_id} -> 0")
        expect_errno("flags 1", lambda: k.ioctl(fd, iu.IOMMU_FAULT_QUEUE_ALLOC, argsz(iu.iommu_fault_alloc, flags=1)),
                     errno.EOPNOTSUPP)
    finally:
        k.close(fd)
    return ran(f"fault queue {alloc.out_fault_id} allocated with fd {qfd}")


if __name__ == "__main__":
    raise SystemExit(run(main))
