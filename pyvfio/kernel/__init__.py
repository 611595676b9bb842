"""Layer 2: the syscall surface every higher layer talks through.

:class:`Kernel` is the contract (open, close, ioctl, pread, pwrite, mmap);
:class:`Linux` is the real kernel through libc.  The simulated kernel in
:mod:`pyvfio.sim` implements the same protocol, so code written against it
runs unchanged on both.
"""

from .base import Kernel, ioctl_name
from .linux import Linux

__all__ = ["Kernel", "Linux", "ioctl_name"]
