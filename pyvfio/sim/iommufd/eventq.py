"""Page-fault queues (``drivers/iommu/iommufd/eventq.c``, the FAULT half).

``IOMMU_FAULT_QUEUE_ALLOC`` is generic -- it needs no IOMMU feature -- so it
works here as on any machine: it creates a FAULT object and returns a
descriptor.  Reading it yields ``struct iommu_hwpt_pgfault`` records and
writing it takes ``struct iommu_hwpt_page_response`` records.  No simulated
device raises I/O page faults (none has PRI), so reads return nothing and
every response names an unknown cookie; :meth:`Fault.report` queues a record
as a device with PRI would.  The descriptor polls as the kernel's does:
always writable, readable only while a record waits.  The open descriptor holds a
reference on the FAULT object (``IOMMU_DESTROY`` is EBUSY until it is closed)
and on the iommufd itself.
"""

from __future__ import annotations

import ctypes
import os
from typing import Callable, Optional

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
        self.file: Optional[FaultFile] = None
        self.file_open = False
        self.deliver: list[bytes] = []  # pending iommu_hwpt_pgfault records

    def external_users(self) -> int:
        return int(self.file_open)

    def report(self, record: bytes) -> None:
        """Queue one ``iommu_hwpt_pgfault`` record (what ``iommufd_fault_iopf_handler`` does for a device)."""
        if len(record) != _FAULT_SIZE:
            raise ValueError(f"a fault record is {_FAULT_SIZE} bytes, not {len(record)}")
        self.deliver.append(bytes(record))
        if self.file is not None:
            self.file.update_poll()


class FaultFile(File):
    """The fault queue's descriptor (``anon_inode:[iommufd-pgfault]``): a stream, no positioned I/O."""

    kind = "fault"
    name = "anon_inode:[iommufd-pgfault]"

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        # in-process transport: opens a short-lived descriptor of the pipe behind the caller's one
        self.poll_open: Optional[Callable[[], Optional[int]]] = None
        self.readable = False

    def attach_poll(self, opener: Callable[[], Optional[int]]) -> None:
        """The transport backs this file with a pipe: keep a byte in it exactly while a fault waits."""
        self.poll_open = opener
        self.update_poll()

    def update_poll(self) -> None:
        pending = bool(self.fault.deliver)
        if self.poll_open is None or pending == self.readable:
            return
        fd = self.poll_open()
        if fd is None:
            return
        try:
            if pending:
                os.write(fd, b"\0")
            else:
                try:
                    os.read(fd, 1)
                except BlockingIOError:
                    pass  # the caller read the byte behind the model's back: already not readable
        finally:
            os.close(fd)
        self.readable = pending

    def read(self, task: Task, size: int, offset: Optional[int]) -> bytes:
        """Whole fault records only (ESPIPE otherwise, as the kernel says); nothing pending reads empty."""
        if offset or size % _FAULT_SIZE:
            raise KernelError(ESPIPE, f"reads must be a multiple of {_FAULT_SIZE} bytes at no offset")
        out = b""
        while self.fault.deliver and len(out) + _FAULT_SIZE <= size:
            out += self.fault.deliver.pop(0)
        self.update_poll()
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
        self.poll_open = None
        self.fault.file = None
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
    fault.file = file
    fd = ucmd.task.fd_install(file)
    cmd.out_fault_id = fault.id
    cmd.out_fault_fd = fd
    ucmd.respond()
    return 0


__all__ = ["Fault", "FaultFile", "iommufd_fault_alloc"]
