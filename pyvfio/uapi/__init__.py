"""Layer 1: ctypes mirrors of the Linux UAPI headers pyvfio speaks.

Nothing here has behaviour.  Each module mirrors one header under the
kernel's names and in the header's order, so a reader can hold the module and
the header side by side: ``ioctl`` (request encoding), ``vfio``
(``linux/vfio.h``), ``iommufd`` (``linux/iommufd.h``).
"""
