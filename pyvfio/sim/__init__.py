"""Layer 2': a readable simulated Linux kernel -- VFIO core, type1, iommufd and vfio-pci.

``pyvfio.sim.Kernel()`` is a machine with no devices; ``add_device("edu")``
or ``add_device("mtty")`` plugs one in, bound to vfio-pci, and returns it
(``.group``, ``.cdev``, ``.address``).  The kernel exposes the same surface
as :class:`pyvfio.kernel.Linux`, so code written against one runs on both.
Module names follow the kernel files they model.
"""

from .kernel import Kernel

__all__ = ["Kernel"]
