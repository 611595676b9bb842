"""A tiny driver for QEMU's edu device over the syscall surface, shared by the tests that run on both kernels.

The edu device (QEMU ``hw/misc/edu.c``): BAR0 holds an ident register (0x00, reads 0x010000ed), a liveness
register (0x04, reads back the complement), IRQ status/raise/ack (0x24/0x60/0x64) and a DMA engine
(source 0x80, destination 0x88, count 0x90, command 0x98: bit 0 starts, bit 1 set means device -> RAM,
bit 2 raises IRQ 0x100 on completion) moving data between RAM and its 4 KiB buffer at 0x40000.  QEMU 7.2's
edu aborts the whole VM on a transfer of 4096 bytes or beyond its buffer, so transfers here stay smaller,
and its DMA mask is 28 bits, so every IOVA stays below 2**28.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import struct
import time
from typing import Any

from conftest import EduDevice
from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array

PAGE = 4096
IOVA = 0x100000  # well below the edu's 28-bit DMA mask
DMA_LEN = 2048  # < 4096: QEMU 7.2's edu aborts the VM on a full-buffer transfer
BUF_SIZE = 4 * PAGE

# edu BAR0 registers
EDU_IDENT, EDU_LIVENESS, EDU_IRQ_STATUS, EDU_IRQ_RAISE, EDU_IRQ_ACK = 0x00, 0x04, 0x24, 0x60, 0x64
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_START, EDU_DMA_TO_RAM, EDU_DMA_IRQ = 0x1, 0x2, 0x4
EDU_BUFFER = 0x40000
EDU_IDENT_VALUE = 0x010000ED
EDU_IRQ_DMA = 0x100

PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER = 0x2, 0x4


# ---------------------------------------------------------------------------------------------------------
# small helpers over the surface


def argsz(cls: type[ctypes.Structure], **fields: Any) -> Any:
    """A UAPI struct with its ``argsz`` (vfio) or ``size`` (iommufd) set to its own size."""
    first = cls._fields_[0][0]
    return cls(**{first: ctypes.sizeof(cls), **fields})


def address_of(buf: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def wait_eventfd(efd: int, timeout: float = 10.0) -> int:
    ready, _, _ = select.select([efd], [], [], timeout)
    assert ready, f"eventfd {efd} not signalled within {timeout} s"
    return int(struct.unpack("<Q", os.read(efd, 8))[0])


def eventfd_quiet(efd: int, wait: float = 0.2) -> bool:
    ready, _, _ = select.select([efd], [], [], wait)
    return not ready


class Device:
    """A VFIO device fd of the edu device with the few region and IRQ operations the tests need."""

    def __init__(self, kernel: Any, fd: int) -> None:
        self.kernel = kernel
        self.fd = fd
        self._regions: dict[int, Any] = {}

    def info(self) -> Any:
        info = argsz(vfio.vfio_device_info)
        self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_GET_INFO, info)
        return info

    def region(self, index: int) -> Any:
        if index not in self._regions:
            info = argsz(vfio.vfio_region_info, index=index)
            self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_GET_REGION_INFO, info)
            self._regions[index] = info
        return self._regions[index]

    def irq_info(self, index: int) -> Any:
        info = argsz(vfio.vfio_irq_info, index=index)
        self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_GET_IRQ_INFO, info)
        return info

    # config space
    def cfg_read(self, offset: int, size: int) -> bytes:
        return bytes(self.kernel.pread(self.fd, size, self.region(vfio.VFIO_PCI_CONFIG_REGION_INDEX).offset + offset))

    def cfg_write(self, offset: int, data: bytes) -> int:
        return int(self.kernel.pwrite(self.fd, data, self.region(vfio.VFIO_PCI_CONFIG_REGION_INDEX).offset + offset))

    def enable_bus_master(self) -> int:
        cmd = struct.unpack("<H", self.cfg_read(PCI_COMMAND, 2))[0]
        self.cfg_write(PCI_COMMAND, struct.pack("<H", cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER))
        return int(struct.unpack("<H", self.cfg_read(PCI_COMMAND, 2))[0])

    # BAR0
    def read32(self, reg: int) -> int:
        data = self.kernel.pread(self.fd, 4, self.region(vfio.VFIO_PCI_BAR0_REGION_INDEX).offset + reg)
        return int(struct.unpack("<I", bytes(data))[0])

    def write32(self, reg: int, value: int) -> None:
        n = self.kernel.pwrite(self.fd, struct.pack("<I", value & 0xFFFFFFFF),
                               self.region(vfio.VFIO_PCI_BAR0_REGION_INDEX).offset + reg)
        assert n == 4

    # the edu's DMA engine and interrupt line
    def dma(self, src: int, dst: int, count: int, *, to_ram: bool, irq: bool = False, wait: bool = True) -> None:
        assert count < 4096, "QEMU 7.2's edu aborts the VM on a 4096-byte transfer"
        self.write32(EDU_DMA_SRC, src)
        self.write32(EDU_DMA_DST, dst)
        self.write32(EDU_DMA_COUNT, count)
        self.write32(EDU_DMA_CMD, EDU_DMA_START | (EDU_DMA_TO_RAM if to_ram else 0) | (EDU_DMA_IRQ if irq else 0))
        if wait:
            self.wait_dma()

    def wait_dma(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.read32(EDU_DMA_CMD) & EDU_DMA_START:
            assert time.monotonic() < deadline, f"edu DMA still running after {timeout} s"
            time.sleep(0.005)

    def round_trip(self, buf: mmap.mmap, iova: int, offset: int = 0, *, irq_efd: int = -1) -> None:
        """RAM (iova) -> edu buffer -> RAM (iova + one page), and check the bytes arrived."""
        data = pattern(DMA_LEN, seed=iova >> 12)
        buf[offset:offset + DMA_LEN] = data
        buf[offset + PAGE:offset + PAGE + DMA_LEN] = bytes(DMA_LEN)
        irq = irq_efd >= 0
        self.dma(iova, EDU_BUFFER, DMA_LEN, to_ram=False, irq=irq)
        if irq:
            assert wait_eventfd(irq_efd) >= 1
            self.ack_irq()
        self.dma(EDU_BUFFER, iova + PAGE, DMA_LEN, to_ram=True, irq=irq)
        if irq:
            assert wait_eventfd(irq_efd) >= 1
            self.ack_irq()
        assert bytes(buf[offset + PAGE:offset + PAGE + DMA_LEN]) == data, "edu DMA did not bring the bytes back"

    def ack_irq(self) -> int:
        status = self.read32(EDU_IRQ_STATUS)
        self.write32(EDU_IRQ_ACK, status)
        return status

    def set_irq_eventfd(self, index: int, efd: int) -> None:
        irqs = alloc_flex(vfio.vfio_irq_set, 4, index=index, start=0, count=1,
                          flags=vfio.VFIO_IRQ_SET_DATA_EVENTFD | vfio.VFIO_IRQ_SET_ACTION_TRIGGER)
        (ctypes.c_int32 * 1).from_buffer(flex_array(irqs))[0] = efd
        self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_SET_IRQS, irqs)

    def irq_action(self, index: int, action: int, count: int = 1) -> None:
        irqs = argsz(vfio.vfio_irq_set, index=index, start=0, count=count,
                     flags=vfio.VFIO_IRQ_SET_DATA_NONE | action)
        self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_SET_IRQS, irqs)

    def disable_irq(self, index: int) -> None:
        self.irq_action(index, vfio.VFIO_IRQ_SET_ACTION_TRIGGER, count=0)


class Legacy:
    """An opened container + group + device fd (type1v2), closed in reverse order."""

    def __init__(self, kernel: Any, edu: EduDevice) -> None:
        self.kernel = kernel
        self.container = kernel.open("/dev/vfio/vfio")
        self.group = kernel.open(f"/dev/vfio/{edu.group}")
        kernel.ioctl(self.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        kernel.ioctl(self.container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        self.device = Device(kernel, kernel.ioctl(self.group, vfio.VFIO_GROUP_GET_DEVICE_FD,
                                                  ctypes.create_string_buffer(edu.address.encode())))
        self.device.ack_irq()  # the real edu keeps its IRQ status across opens
        self.bar0 = self.device.region(vfio.VFIO_PCI_BAR0_REGION_INDEX)

    def pread(self, reg: int, size: int) -> bytes:
        """``size`` bytes of BAR0 at ``reg`` through the device fd."""
        return bytes(self.kernel.pread(self.device.fd, size, self.bar0.offset + reg))

    def map(self, vaddr: int, iova: int, size: int,
            flags: int = vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE) -> None:
        m = argsz(vfio.vfio_iommu_type1_dma_map, flags=flags, vaddr=vaddr, iova=iova, size=size)
        self.kernel.ioctl(self.container, vfio.VFIO_IOMMU_MAP_DMA, m)

    def unmap(self, iova: int, size: int, flags: int = 0) -> int:
        u = argsz(vfio.vfio_iommu_type1_dma_unmap, flags=flags, iova=iova, size=size)
        self.kernel.ioctl(self.container, vfio.VFIO_IOMMU_UNMAP_DMA, u)
        return int(u.size)

    def close(self) -> None:
        for fd in (self.device.fd, self.group, self.container):
            self.kernel.close(fd)
