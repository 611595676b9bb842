"""Page-fault queues (``drivers/iommu/iommufd/eventq.c``, the FAULT half).

``IOMMU_FAULT_QUEUE_ALLOC`` is generic -- it needs no IOMMU feature -- so it
works here as on any machine: it creates a FAULT object and returns a
descriptor.  Reading it yields ``struct iommu_hwpt_pgfault`` records and
writing it takes ``struct iommu_hwpt_page_response`` records.  No simulated
device raises I/O page faults (none has PRI), so reads return nothing and
every response names an unknown cookie.  The open descriptor holds a
reference on the FAULT object (``IOMMU_DESTROY`` is EBUSY until it is closed)
and on the iommufd itself.
"""

from __future__ import annotations

import ctypes
from typing import Optional

from ...uapi import iommufd as ui
from ..errno import EINVAL, EOPNOTSUPP, ESPIPE, KernelError
from ..file import File, Task
from .main import IommufdCtx, IommufdObject, Ucmd

_FAULT_SIZE = ctypes.sizeof(ui.iommu_hwpt_pgfault)
_RESPONSE_SIZE = ctypes.sizeof(ui.iommu_hwpt_page_response)


class Fault(IommufdObject):
    """``struct iommufd_fault``: a queue of I/O page faults for the HWPTs allocated with it."""

    kind = "FAULT"

    def __init__(self, ictx: IommufdCtx) -> None:
        super().__init__(ictx)
        self.file_open = False
        self.deliver: list[bytes] = []  # pending iommu_hwpt_pgfault records

    def external_users(self) -> int:
        return int(self.file_open)


class FaultFile(File):
    """The fault queue's descriptor (``anon_inode:[iommufd-pgfault]``): a stream, no positioned I/O."""

    kind = "fault"
    name = "anon_inode:[iommufd-pgfault]"

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    def read(self, task: Task, size: int, offset: Optional[int]) -> bytes:
        """Whole fault records only (ESPIPE otherwise, as the kernel says); nothing pending reads empty."""
        if offset or size % _FAULT_SIZE:
            raise KernelError(ESPIPE, f"reads must be a multiple of {_FAULT_SIZE} bytes at no offset")
        out = b""
        while self.fault.deliver and len(out) + _FAULT_SIZE <= size:
            out += self.fault.deliver.pop(0)
        return out

    def write(self, task: Task, data: bytes, offset: Optional[int]) -> int:
        """Page responses: the code must be SUCCESS or INVALID and the cookie an outstanding fault (EINVAL)."""
        if offset or len(data) % _RESPONSE_SIZE:
            raise KernelError(ESPIPE, f"writes must be a multiple of {_RESPONSE_SIZE} bytes at no offset")
        if not data:
            return 0
        resp = ui.iommu_hwpt_page_response.from_buffer_copy(data[:_RESPONSE_SIZE])
        if resp.code not in (ui.IOMMUFD_PAGE_RESP_SUCCESS, ui.IOMMUFD_PAGE_RESP_INVALID):
            raise KernelError(EINVAL, f"response code {resp.code} is not SUCCESS or INVALID")
        raise KernelError(EINVAL, f"no outstanding fault has cookie {resp.cookie}")

    def release(self) -> None:
        self.fault.file_open = False
        self.fault.users -= 1
        self.fault.ictx.put()


def iommufd_fault_alloc(ucmd: Ucmd) -> int:
    """``IOMMU_FAULT_QUEUE_ALLOC``: a FAULT object and its descriptor (``out_fault_id``, ``out_fault_fd``)."""
    cmd = ucmd.cmd
    if cmd.flags:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags:#x}")
    ictx = ucmd.ictx
    fault = ictx.object_alloc(Fault(ictx))
    fault.file_open = True
    fault.users += 1
    ictx.get()
    file = FaultFile(fault)
    fd = ucmd.task.fd_install(file)
    cmd.out_fault_id = fault.id
    cmd.out_fault_fd = fd
    ucmd.respond()
    return 0


__all__ = ["Fault", "FaultFile", "iommufd_fault_alloc"]
