"""One test body across every IOMMU mode, as the kernel's VFIO selftests do with fixture variants.

Modes: legacy type1 and type1v2 containers, the iommufd compat path (a group's SET_CONTAINER given an
iommufd, DMA mapped into the compat IOAS) and the native cdev + iommufd path.  In each: map a buffer,
let the edu copy RAM -> device -> RAM and compare the bytes, take an MSI on an eventfd, and see INTx stay
masked until UNMASK.  Runs on the simulated kernel here and on a real one in the VM lane.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from edu_driver import (BUF_SIZE, EDU_IRQ_ACK, EDU_IRQ_RAISE, IOVA, Device, address_of, argsz,
                        eventfd_quiet, wait_eventfd)
from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio

MODES = ["type1", "type1v2", "iommufd-compat", "iommufd-cdev"]


class Opened:
    """A device opened in one IOMMU mode, with the one map operation the mode offers; closes in reverse order."""

    def __init__(self, kernel: Any, edu: EduDevice, mode: str) -> None:
        self.kernel, self.mode = kernel, mode
        self.fds: list[int] = []
        self.ioas = 0
        try:
            self._open(edu)
        except BaseException:
            self.close()
            raise

    def _keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def _iommufd(self) -> int:
        try:
            return self._keep(self.kernel.open("/dev/iommu"))
        except OSError as e:
            if e.errno == errno.ENOENT:
                pytest.skip("no /dev/iommu: this kernel has no iommufd (Debian kernels ship CONFIG_IOMMUFD unset)")
            raise

    def _open(self, edu: EduDevice) -> None:
        k = self.kernel
        if self.mode in ("type1", "type1v2"):
            self.iommu = self._keep(k.open("/dev/vfio/vfio"))
            group = self._keep(k.open(f"/dev/vfio/{edu.group}"))
            k.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.iommu))
            k.ioctl(self.iommu, vfio.VFIO_SET_IOMMU,
                    vfio.VFIO_TYPE1_IOMMU if self.mode == "type1" else vfio.VFIO_TYPE1v2_IOMMU)
            fd = k.ioctl(group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
        elif self.mode == "iommufd-compat":
            self.iommu = self._iommufd()
            group = self._keep(k.open(f"/dev/vfio/{edu.group}"))
            k.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.iommu))
            fd = k.ioctl(group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
            get = argsz(iu.iommu_vfio_ioas, op=iu.IOMMU_VFIO_IOAS_GET)
            k.ioctl(self.iommu, iu.IOMMU_VFIO_IOAS, get)
            self.ioas = int(get.ioas_id)
        else:
            self.iommu = self._iommufd()
            if edu.cdev is None:
                pytest.skip("no VFIO cdev: this kernel lacks CONFIG_VFIO_DEVICE_CDEV")
            alloc = argsz(iu.iommu_ioas_alloc)
            k.ioctl(self.iommu, iu.IOMMU_IOAS_ALLOC, alloc)
            self.ioas = int(alloc.out_ioas_id)
            fd = k.open(edu.cdev)
            k.ioctl(fd, vfio.VFIO_DEVICE_BIND_IOMMUFD, argsz(vfio.vfio_device_bind_iommufd, iommufd=self.iommu))
            k.ioctl(fd, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                    argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=self.ioas))
        self.device = Device(k, self._keep(fd))
        self.device.ack_irq()

    def map(self, vaddr: int, iova: int, length: int) -> None:
        if self.mode.startswith("type1"):
            rw = vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE
            self.kernel.ioctl(self.iommu, vfio.VFIO_IOMMU_MAP_DMA, argsz(
                vfio.vfio_iommu_type1_dma_map, flags=rw, vaddr=vaddr, iova=iova, size=length))
        else:
            flags = iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE
            self.kernel.ioctl(self.iommu, iu.IOMMU_IOAS_MAP, argsz(
                iu.iommu_ioas_map, flags=flags, ioas_id=self.ioas, user_va=vaddr, length=length, iova=iova))

    def close(self) -> None:
        for fd in reversed(self.fds):
            self.kernel.close(fd)
        self.fds.clear()


@pytest.fixture(params=MODES)
def opened(request: pytest.FixtureRequest, kernel: Any, edu: EduDevice) -> Iterator[Opened]:
    o = Opened(kernel, edu, request.param)
    yield o
    o.close()


@pytest.fixture
def buf() -> Iterator[mmap.mmap]:
    m = mmap.mmap(-1, BUF_SIZE)
    yield m
    m.close()


@pytest.fixture
def efd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


def test_dma_round_trip(opened: Opened, buf: mmap.mmap) -> None:
    """RAM -> edu buffer -> RAM through the mode's IOMMU mappings, bytes compared."""
    opened.map(address_of(buf), IOVA, BUF_SIZE)
    opened.device.enable_bus_master()
    opened.device.round_trip(buf, IOVA)


def test_msi_arrives_on_its_eventfd(opened: Opened, efd: int) -> None:
    dev = opened.device
    dev.enable_bus_master()
    dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        dev.write32(EDU_IRQ_RAISE, 0x10)
        assert wait_eventfd(efd) == 1
        assert dev.ack_irq() == 0x10
    finally:
        dev.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)


def test_intx_stays_masked_until_unmask(opened: Opened, efd: int) -> None:
    dev = opened.device
    dev.set_irq_eventfd(vfio.VFIO_PCI_INTX_IRQ_INDEX, efd)
    try:
        dev.write32(EDU_IRQ_RAISE, 0x20)
        assert wait_eventfd(efd) == 1  # fired, and the kernel masked the line
        dev.write32(EDU_IRQ_ACK, 0x20)
        dev.write32(EDU_IRQ_RAISE, 0x20)
        assert eventfd_quiet(efd), "INTx fired again while auto-masked"
        dev.irq_action(vfio.VFIO_PCI_INTX_IRQ_INDEX, vfio.VFIO_IRQ_SET_ACTION_UNMASK)
        assert wait_eventfd(efd) == 1  # the line was still asserted: unmask delivers it
        dev.write32(EDU_IRQ_ACK, 0x20)
    finally:
        dev.disable_irq(vfio.VFIO_PCI_INTX_IRQ_INDEX)
