"""How the model fails: raise :class:`KernelError` with the errno the kernel returns.

The model code reads like the kernel's (``if (argsz < minsz) return -EINVAL;``
becomes ``raise KernelError(EINVAL, "argsz 12 < 16")``); the surface turns it
into a :class:`pyvfio.errors.VfioError` naming the ioctl.  The sentence is
pyvfio's addition: the kernel says only the errno, the model also says why.
"""

from __future__ import annotations

from errno import (
    E2BIG, EACCES, EADDRINUSE, EAGAIN, EBADF, EBADFD, EBUSY, EDEADLK, EEXIST, EFAULT, EINVAL, EIO,
    EMSGSIZE, ENODEV, ENOENT, ENOMEM, ENOMSG, ENOSPC, ENOTTY, ENXIO, EOPNOTSUPP, EOVERFLOW, EPERM,
    ESPIPE, ESRCH,
)

__all__ = [
    "E2BIG", "EACCES", "EADDRINUSE", "EAGAIN", "EBADF", "EBADFD", "EBUSY", "EDEADLK", "EEXIST", "EFAULT",
    "EINVAL", "EIO", "EMSGSIZE", "ENODEV", "ENOENT", "ENOMEM", "ENOMSG", "ENOSPC", "ENOTTY", "ENXIO",
    "EOPNOTSUPP", "EOVERFLOW", "EPERM", "ESPIPE", "ESRCH", "KernelError",
]


class KernelError(Exception):
    """A failed call inside the model: ``errno`` plus what was wrong."""

    def __init__(self, errno: int, reason: str = "") -> None:
        super().__init__(errno, reason)
        self.errno = errno
        self.reason = reason
