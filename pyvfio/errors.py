"""The one exception type pyvfio raises for a failed kernel call.

A bare ``OSError(22)`` from deep inside a VMM says nothing about which of a
dozen ioctls failed or why.  :class:`VfioError` keeps the errno (so ``except
OSError`` and ``e.errno == errno.EINVAL`` keep working, on the real kernel and
the simulated one alike) and adds the ioctl's name and a sentence saying what
was wrong, so the message can be acted on.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any, Optional


class VfioError(OSError):
    """An ioctl (or other VFIO/iommufd syscall) failed.

    ``errno`` is the kernel's; ``ioctl`` names the request (``VFIO_IOMMU_MAP_DMA``)
    or the syscall (``open``/``pread``); ``reason`` says what was wrong in words.
    """

    ioctl: str
    reason: str

    def __init__(self, err: int, ioctl: str, reason: str = "", filename: Optional[str] = None) -> None:
        self.ioctl = ioctl
        self.reason = reason
        super().__init__(err, os.strerror(err), filename)

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        text = f"{self.ioctl}: {name} ({self.strerror})"
        if self.filename is not None:
            text += f" on {self.filename}"
        if self.reason:
            text += f": {self.reason}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the extra fields when the error crosses a process boundary (pickle).
        return (type(self), (self.errno, self.ioctl, self.reason, self.filename))
