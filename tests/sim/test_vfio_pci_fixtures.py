"""Shared helpers for the vfio-pci tests (no tests here): open a device through the surface, drive it.

:class:`PciDev` opens a simulated device the way QEMU does -- container,
group, SET_CONTAINER, SET_IOMMU(TYPE1v2), GET_DEVICE_FD -- and wraps the
device-fd calls the tests need: region/IRQ info, config and BAR access,
SET_IRQS, eventfds.  Everything goes through ``pyvfio.sim.Kernel``'s
syscall surface; nothing here touches the model's objects.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import pytest

import pyvfio.sim
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import alloc_flex, flex_array

PAGE = 4096
CFG = uv.VFIO_PCI_CONFIG_REGION_INDEX << 40
EDU_IOVA = 0x100000

# Kernel-facing constant aliases used across the three test files.
TRIGGER = uv.VFIO_IRQ_SET_ACTION_TRIGGER
MASK = uv.VFIO_IRQ_SET_ACTION_MASK
UNMASK = uv.VFIO_IRQ_SET_ACTION_UNMASK
NONE = uv.VFIO_IRQ_SET_DATA_NONE
BOOL = uv.VFIO_IRQ_SET_DATA_BOOL
EVENTFD = uv.VFIO_IRQ_SET_DATA_EVENTFD
INTX = uv.VFIO_PCI_INTX_IRQ_INDEX
MSI = uv.VFIO_PCI_MSI_IRQ_INDEX
MSIX = uv.VFIO_PCI_MSIX_IRQ_INDEX
ERR = uv.VFIO_PCI_ERR_IRQ_INDEX
REQ = uv.VFIO_PCI_REQ_IRQ_INDEX


def expect(err: int, fn: Callable[..., Any], *args: Any, **kw: Any) -> BaseException:
    """Call ``fn`` and insist it fails with ``err``; returns the exception for further checks."""
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    got = e.value.errno
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got or 0, got)}: {e.value}"
    return e.value


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def new_eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def take(efd: int) -> int:
    """The eventfd's counter (0 if nothing was signalled), resetting it."""
    try:
        return os.eventfd_read(efd)
    except BlockingIOError:
        return 0


def wait(efd: int, timeout: float = 2.0) -> int:
    """Wait for an asynchronous signal (virqfd paths run on the model's watcher thread)."""
    ready, _, _ = select.select([efd], [], [], timeout)
    return take(efd) if ready else 0


def settle(cond: Callable[[], bool], timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


class PciDev:
    """A device opened through the legacy group path, plus the calls the tests make on it."""

    def __init__(self, k: pyvfio.sim.Kernel, vdev: Any, container: Optional[int] = None) -> None:
        self.k = k
        self.vdev = vdev
        self.own_container = container is None
        self.container = k.open("/dev/vfio/vfio") if container is None else container
        self.group = k.open(f"/dev/vfio/{vdev.group}")
        k.ioctl(self.group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        if self.own_container:
            k.ioctl(self.container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        self.fd = k.ioctl(self.group, uv.VFIO_GROUP_GET_DEVICE_FD,
                          ctypes.create_string_buffer(vdev.name.encode()))
        self.buffers: list[mmap.mmap] = []

    def close(self) -> None:
        for fd in (self.fd, self.group) + ((self.container,) if self.own_container else ()):
            self.k.close(fd)
        for b in self.buffers:
            b.close()

    # -- info --------------------------------------------------------------------------------------
    def info(self, argsz: int = ctypes.sizeof(uv.vfio_device_info)) -> uv.vfio_device_info:
        info = uv.vfio_device_info(argsz=argsz)
        self.k.ioctl(self.fd, uv.VFIO_DEVICE_GET_INFO, info)
        return info

    def region(self, index: int, argsz: int = ctypes.sizeof(uv.vfio_region_info)) -> uv.vfio_region_info:
        r = uv.vfio_region_info(argsz=argsz, index=index)
        self.k.ioctl(self.fd, uv.VFIO_DEVICE_GET_REGION_INFO, r)
        return r

    def irq_info(self, index: int) -> uv.vfio_irq_info:
        i = uv.vfio_irq_info(argsz=ctypes.sizeof(uv.vfio_irq_info), index=index)
        self.k.ioctl(self.fd, uv.VFIO_DEVICE_GET_IRQ_INFO, i)
        return i

    # -- config space ----------------------------------------------------------------------------------
    def cfg(self, off: int, n: int) -> int:
        return int.from_bytes(self.k.pread(self.fd, n, CFG + off), "little")

    def cfg_write(self, off: int, n: int, val: int) -> int:
        return self.k.pwrite(self.fd, val.to_bytes(n, "little"), CFG + off)

    def enable_bus_master(self) -> None:
        self.cfg_write(4, 2, self.cfg(4, 2) | 0x4)

    # -- BARs --------------------------------------------------------------------------------------------
    def bar_r(self, off: int, n: int = 4, bar: int = 0) -> int:
        return int.from_bytes(self.k.pread(self.fd, n, (bar << 40) + off), "little")

    def bar_w(self, off: int, val: int, n: int = 4, bar: int = 0) -> None:
        self.k.pwrite(self.fd, val.to_bytes(n, "little"), (bar << 40) + off)

    # -- interrupts ----------------------------------------------------------------------------------
    def set_irqs(self, index: int, flags: int, start: int = 0, count: int = 0,
                 data: Optional[Sequence[int]] = None, argsz: Optional[int] = None) -> int:
        if flags & EVENTFD:
            s = alloc_flex(uv.vfio_irq_set, 4 * len(data or []))
            arr = (ctypes.c_int32 * len(data or [])).from_buffer(s, 20)
            for i, v in enumerate(data or []):
                arr[i] = v
        elif flags & BOOL:
            s = alloc_flex(uv.vfio_irq_set, len(data or []))
            flex_array(s)[: len(data or [])] = list(data or [])
        else:
            s = alloc_flex(uv.vfio_irq_set, 0)
        s.flags, s.index, s.start, s.count = flags, index, start, count
        if argsz is not None:
            s.argsz = argsz
        return self.k.ioctl(self.fd, uv.VFIO_DEVICE_SET_IRQS, s)

    # -- DMA ---------------------------------------------------------------------------------------------
    def map_dma(self, size: int = 4 * PAGE, iova: int = EDU_IOVA) -> mmap.mmap:
        buf = mmap.mmap(-1, size)
        self.buffers.append(buf)
        vaddr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        self.k.ioctl(self.container, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(
            argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
            flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE, vaddr=vaddr, iova=iova, size=size))
        return buf


def open_dev(k: pyvfio.sim.Kernel, kind: str = "edu", **options: Any) -> PciDev:
    return PciDev(k, k.add_device(kind, **options))


def kernel_fixture() -> Iterator[pyvfio.sim.Kernel]:
    """A fresh simulated kernel; at the end no model file may be left open."""
    k = pyvfio.sim.Kernel()
    yield k
    for f in k.open_files():
        raise AssertionError(f"leaked model file {f!r}")
