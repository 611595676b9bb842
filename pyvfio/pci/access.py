"""Reaching a device's config space through the raw syscall surface.

:class:`~pyvfio.pci.config.VirtualConfig` needs only ``config_read``/``config_write``.  The object
layer's ``Device`` has them; this module provides the same two calls over a bare vfio device fd --
``pread``/``pwrite`` of the config region, found with ``VFIO_DEVICE_GET_REGION_INFO`` -- for tools and
tests that work below the object layer, and :func:`open_group_device`, the shortest legacy
(container + group) sequence that yields such an fd on either kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
from typing import Any, Iterator, Optional

from ..uapi import vfio as uv

#: vfio-pci places region N at N << 40 in the device fd; other drivers may not, so the offset is asked for.
VFIO_PCI_OFFSET_SHIFT = 40


@dataclasses.dataclass(frozen=True)
class RegionInfo:
    """What ``VFIO_DEVICE_GET_REGION_INFO`` says about one region."""

    index: int
    size: int
    offset: int
    flags: int


def region_info(kernel: Any, fd: int, index: int) -> RegionInfo:
    """``VFIO_DEVICE_GET_REGION_INFO`` for region ``index`` of device ``fd`` (fixed fields only)."""
    info = uv.vfio_region_info(argsz=ctypes.sizeof(uv.vfio_region_info), index=index)
    kernel.ioctl(fd, uv.VFIO_DEVICE_GET_REGION_INFO, info)
    return RegionInfo(index, int(info.size), int(info.offset), int(info.flags))


class VfioConfigRegion:
    """``config_read``/``config_write`` over the config region of a vfio device fd it does not own.

    Reads and writes go through the kernel's config virtualization (``vfio_pci_config.c``): this is the
    view a VMM starts from, not the hardware's.  ``region(i)`` answers region info, so a
    :class:`~pyvfio.pci.config.VirtualConfig` built on it takes BAR sizes from the kernel as QEMU does.
    """

    def __init__(self, kernel: Any, fd: int) -> None:
        self.kernel = kernel
        self.fd = fd
        info = region_info(kernel, fd, uv.VFIO_PCI_CONFIG_REGION_INDEX)
        if not info.size:
            raise ValueError(f"device fd {fd} has no PCI config region (region {uv.VFIO_PCI_CONFIG_REGION_INDEX} "
                             f"is empty): not a vfio-pci device?")
        self.offset = info.offset
        self.size = info.size

    def region(self, index: int) -> RegionInfo:
        return region_info(self.kernel, self.fd, index)

    def config_read(self, offset: int, size: int) -> bytes:
        data = bytes(self.kernel.pread(self.fd, size, self.offset + offset))
        if len(data) != size:
            raise OSError(f"short config read: {len(data)} of {size} bytes at {offset:#x}")
        return data

    def config_write(self, offset: int, data: bytes) -> None:
        n = self.kernel.pwrite(self.fd, bytes(data), self.offset + offset)
        if n != len(data):
            raise OSError(f"short config write: {n} of {len(data)} bytes at {offset:#x}")

    def __repr__(self) -> str:
        return f"VfioConfigRegion(fd={self.fd}, {self.size} bytes at {self.offset:#x})"


@contextlib.contextmanager
def open_group_device(kernel: Any, group: int, name: str, iommu: Optional[int] = None) -> Iterator[int]:
    """A device fd through the legacy path (container, group, type1v2 IOMMU), closed in reverse on exit.

    The minimal sequence for read-mostly tools; programs that map DMA use :mod:`pyvfio.container`.
    """
    container = kernel.open("/dev/vfio/vfio")
    fds = [container]
    try:
        grp = kernel.open(f"/dev/vfio/{group}")
        fds.append(grp)
        kernel.ioctl(grp, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        kernel.ioctl(container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU if iommu is None else iommu)
        dev = kernel.ioctl(grp, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(name.encode()))
        fds.append(dev)
        yield dev
    finally:
        for fd in reversed(fds):
            try:
                kernel.close(fd)
            except OSError:
                pass


__all__ = ["RegionInfo", "VfioConfigRegion", "open_group_device", "region_info"]
