"""pyvfio: the Linux VFIO and iommufd userspace API in pure Python (ctypes).

Layers, each importing only from the ones before it (see the README):
``pyvfio.uapi`` mirrors the kernel headers byte for byte; ``pyvfio.kernel``
reaches the real kernel; ``pyvfio.sim`` is a readable simulated kernel with the
same surface.  Importing the package itself is cheap: submodules load on use.
"""

__version__ = "0.1.0"
