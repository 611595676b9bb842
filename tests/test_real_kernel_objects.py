"""The object layer against QEMU's edu device, on whichever kernel the fixtures give (simulated or real).

Each test runs once per IOMMU backend -- the cdev + iommufd path and the group + type1 container path --
through the same object API, the way the kernel's VFIO selftests run one body across IOMMU modes.  On a
real kernel (the VM lane, ``PYVFIO_KERNEL=real``) these are the checks that the objects speak to Linux
exactly as to the simulation.  The failure-injection test lives here too: a kernel wrapper fails the Nth
call of a whole open-map-mmap-interrupt sequence, for every N, and nothing may stay open.
"""

from __future__ import annotations

import errno
import os
import select
import struct
from typing import Any, Iterator

import pytest

from conftest import EduDevice, real_kernel_requested
from objects_support import FailingKernel, open_fds
from pyvfio.discovery import OpenDevice, find_device, iommufd_available, open_device
from pyvfio.dma import DmaBuffer
from pyvfio.errors import VfioError
from pyvfio.info import IovaRangeCap
from pyvfio.uapi import vfio as uv

EDU_IDENT, EDU_IRQ_STATUS, EDU_IRQ_RAISE, EDU_IRQ_ACK = 0x00, 0x24, 0x60, 0x64
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD, EDU_BUFFER = 0x80, 0x88, 0x90, 0x98, 0x40000
EDU_DMA_MASK = 1 << 28  # QEMU's edu: 28-bit DMA addresses
MSI_WINDOW = (0xFEE00000, 0xFEEFFFFF)


@pytest.fixture(params=["iommufd", "type1"])
def backend(request: pytest.FixtureRequest, kernel: Any, edu: EduDevice) -> str:
    if request.param == "iommufd" and (edu.cdev is None or not iommufd_available(kernel)):
        pytest.skip("this kernel has no iommufd or no VFIO cdev (CONFIG_IOMMUFD / CONFIG_VFIO_DEVICE_CDEV)")
    return str(request.param)


@pytest.fixture
def od(kernel: Any, edu: EduDevice, backend: str) -> Iterator[OpenDevice]:
    with open_device(kernel, edu.address, backend=backend) as opened:
        bar0 = opened.device.region(uv.VFIO_PCI_BAR0_REGION_INDEX)
        bar0.write32(EDU_IRQ_ACK, bar0.read32(EDU_IRQ_STATUS))  # the real edu keeps its IRQ status across opens
        yield opened


@pytest.fixture
def efd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


def wait_eventfd(efd: int, timeout: float = 5.0) -> int:
    ready, _, _ = select.select([efd], [], [], timeout)
    assert ready, f"eventfd not signalled within {timeout} s"
    return int(struct.unpack("<Q", os.read(efd, 8))[0])


def quiet(efd: int) -> bool:
    """No signal pending: the simulated kernel signals synchronously, a real one within a fraction of a second."""
    return not select.select([efd], [], [], 0.2 if real_kernel_requested() else 0.01)[0]


def edu_copy(regs: Any, src: int, dst: int, count: int, *, to_ram: bool, irq: bool = False) -> None:
    assert count < 4096, "QEMU 7.2's edu aborts the VM on a 4096-byte transfer"
    regs.write64(EDU_DMA_SRC, src)
    regs.write64(EDU_DMA_DST, dst)
    regs.write64(EDU_DMA_COUNT, count)
    regs.write64(EDU_DMA_CMD, 1 | (2 if to_ram else 0) | (4 if irq else 0))
    for _ in range(10000):  # the simulated edu is done at once; QEMU's takes a timer tick
        if not regs.read64(EDU_DMA_CMD) & 1:
            return
    raise AssertionError("edu DMA never completed")


# ---------------------------------------------------------------------------------------------------------
# the objects on both backends


def test_open_reports_the_backend_and_device(od: OpenDevice, backend: str, edu: EduDevice) -> None:
    assert od.backend == backend
    assert od.device.name == edu.address
    info = od.device.info
    assert info.is_pci and not info.reset_supported  # edu has no FLR and sits on the root bus
    assert (info.num_regions, info.num_irqs) == (uv.VFIO_PCI_NUM_REGIONS, uv.VFIO_PCI_NUM_IRQS)
    if backend == "iommufd":
        assert od.device.via_cdev and od.device.devid > 0
        assert od.device.hwpt_id not in (0, od.ioas.id if od.ioas else 0)
    else:
        assert od.container is not None and od.container.iommu_type == uv.VFIO_TYPE1v2_IOMMU
    assert repr(od.device).startswith(f"<Device {edu.address} fd ")


def test_regions_and_config_space(od: OpenDevice) -> None:
    dev = od.device
    bar0 = dev.region(uv.VFIO_PCI_BAR0_REGION_INDEX)
    assert (bar0.size, bar0.offset) == (1 << 20, 0)
    assert bar0.readable and bar0.writable and bar0.mmappable
    assert bar0.mmap_areas == [(0, 1 << 20)]
    assert dev.region(uv.VFIO_PCI_CONFIG_REGION_INDEX).size == 256
    assert struct.unpack("<HH", dev.config_read(0, 4)) == (0x1234, 0x11E8)
    assert bar0.read32(EDU_IDENT) == 0x010000ED
    with pytest.raises(OSError) as e:  # refused before the kernel sees it
        bar0.read(bar0.size - 2, 4)
    assert e.value.errno == errno.EINVAL and "outside BAR0" in str(e.value)
    with pytest.raises(OSError) as e:  # the VGA region does not exist on edu: the kernel says EINVAL
        dev.region(uv.VFIO_PCI_VGA_REGION_INDEX)
    assert e.value.errno == errno.EINVAL and "VFIO_DEVICE_GET_REGION_INFO" in str(e.value)


def test_bar_mmap_one_api_on_both_kernels(od: OpenDevice) -> None:
    bar0 = od.device.region(uv.VFIO_PCI_BAR0_REGION_INDEX)
    with bar0.mmap(0, 4096) as regs:
        assert regs.read32(EDU_IDENT) == 0x010000ED
        assert struct.unpack("<I", bytes(regs[0:4]))[0] == 0x010000ED
        regs.write32(0x04, 0x12345678)  # liveness: reads back inverted
        assert regs.read32(0x04) == 0xEDCBA987
        assert regs.has_view == (not hasattr(od.device.kernel, "devices"))  # a memoryview only on real memory
    assert regs.closed and bar0._mappings == []


def test_iommu_ranges_exclude_the_msi_window(od: OpenDevice, backend: str) -> None:
    ranges = od.iommu.iova_ranges()
    assert ranges and all(not (r.start <= MSI_WINDOW[0] <= r.last) for r in ranges)
    if backend == "type1":
        assert od.container is not None
        info = od.container.iommu_info()
        assert info.iova_pgsizes & 4096 and info.min_pgsize == 4096
        cap = next(c for c in info.caps if isinstance(c, IovaRangeCap))
        assert list(cap.ranges) == ranges


def test_dma_round_trip_through_the_edu(od: OpenDevice) -> None:
    dev = od.device
    assert dev.set_bus_master() & 0x4
    with od.dma(2 * 4096, limit=EDU_DMA_MASK) as m, dev.region(0).mmap(0, 4096) as regs:
        assert m.iova + m.size <= EDU_DMA_MASK and m.mapped
        data = bytes((i * 13 + 1) & 0xFF for i in range(2000))
        m.write(0, data)
        edu_copy(regs, m.iova, EDU_BUFFER, len(data), to_ram=False)
        edu_copy(regs, EDU_BUFFER, m.iova + 4096, len(data), to_ram=True)
        assert m.read(4096, len(data)) == data
    assert not m.mapped and m.buffer.closed and od.iommu.mappings == []


def test_msi_on_an_eventfd(od: OpenDevice, efd: int) -> None:
    dev = od.device
    dev.set_bus_master()
    msi = dev.irq_info(uv.VFIO_PCI_MSI_IRQ_INDEX)
    assert (msi.count, msi.eventfd, msi.noresize) == (1, True, True)
    dev.set_irq_eventfds(uv.VFIO_PCI_MSI_IRQ_INDEX, 0, [efd])
    try:
        bar0 = dev.region(0)
        bar0.write32(EDU_IRQ_RAISE, 0x10)
        assert wait_eventfd(efd) == 1
        assert bar0.read32(EDU_IRQ_STATUS) == 0x10
        bar0.write32(EDU_IRQ_ACK, 0x10)
        dev.trigger_irqs(uv.VFIO_PCI_MSI_IRQ_INDEX)  # loopback: the kernel signals without the device
        assert wait_eventfd(efd) == 1
    finally:
        dev.disable_irqs(uv.VFIO_PCI_MSI_IRQ_INDEX)


def test_intx_automask_and_unmask(od: OpenDevice, efd: int) -> None:
    dev = od.device
    intx = dev.irq_info(uv.VFIO_PCI_INTX_IRQ_INDEX)
    assert intx.automasked and intx.maskable and intx.count == 1
    bar0 = dev.region(0)
    dev.set_irq_eventfds(uv.VFIO_PCI_INTX_IRQ_INDEX, 0, [efd])
    try:
        bar0.write32(EDU_IRQ_RAISE, 0x2)
        assert wait_eventfd(efd) == 1
        bar0.write32(EDU_IRQ_ACK, 0x2)
        bar0.write32(EDU_IRQ_RAISE, 0x2)
        assert quiet(efd), "INTx fired while auto-masked"
        bar0.write32(EDU_IRQ_ACK, 0x2)
        dev.unmask_intx()
        bar0.write32(EDU_IRQ_RAISE, 0x2)
        assert wait_eventfd(efd) == 1
        bar0.write32(EDU_IRQ_ACK, 0x2)
        dev.unmask_intx()
    finally:
        dev.disable_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX)


def test_reset_and_features_on_edu(od: OpenDevice) -> None:
    dev = od.device
    with pytest.raises(OSError) as e:
        dev.reset()
    assert e.value.errno == errno.EINVAL and "no function reset" in str(e.value)
    assert dev.migration_flags() is None
    assert not dev.feature_probe(uv.VFIO_DEVICE_FEATURE_MIGRATION)
    assert dev.feature_probe(uv.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, uv.VFIO_DEVICE_FEATURE_SET)
    with pytest.raises(OSError) as e:
        dev.feature(uv.VFIO_DEVICE_FEATURE_MIGRATION, uv.VFIO_DEVICE_FEATURE_GET, size=8)
    assert e.value.errno == errno.ENOTTY and "MIGRATION" in str(e.value)
    with pytest.raises(OSError) as e:  # edu is on the root bus: no slot or bus reset
        dev.hot_reset_info()
    assert e.value.errno == errno.ENODEV


def test_second_open_of_the_same_device_is_ebusy(od: OpenDevice, kernel: Any, edu: EduDevice) -> None:
    with pytest.raises(OSError) as e:
        with open_device(kernel, edu.address, backend="type1"):
            pass
    assert e.value.errno == errno.EBUSY


def test_map_a_caller_owned_buffer_and_close_unmaps(kernel: Any, edu: EduDevice, backend: str) -> None:
    buf = DmaBuffer(3 * 4096)
    try:
        with open_device(kernel, edu.address, backend=backend) as opened:
            first = opened.map(buf, size=4096, limit=EDU_DMA_MASK)
            second = opened.map(buf, offset=4096, size=2 * 4096, limit=EDU_DMA_MASK)
            assert second.iova >= first.iova + 4096 and len(opened.iommu.mappings) == 2
        assert not first.mapped and not second.mapped  # the close unmapped them; the buffer is still ours
        assert not buf.closed and buf.read(0, 4) == bytes(4)
    finally:
        buf.close()


# ---------------------------------------------------------------------------------------------------------
# failure injection: fail each step of a whole session, check nothing leaked


def _session(kernel: Any, address: str, backend: str, efd: int) -> None:
    """Open the edu, read its info and a region, mmap BAR0, map DMA, wire MSI, DMA once: every layer once."""
    with open_device(kernel, address, backend=backend) as o:
        dev = o.device
        _ = dev.info
        assert dev.region(0).read32(EDU_IDENT) == 0x010000ED
        with dev.region(0).mmap(0, 4096) as regs, o.dma(4096, limit=EDU_DMA_MASK) as m:
            dev.set_irq_eventfds(uv.VFIO_PCI_MSI_IRQ_INDEX, 0, [efd])
            dev.set_bus_master()
            m.write(0, b"x" * 64)
            edu_copy(regs, m.iova, EDU_BUFFER, 64, to_ram=False)


def test_failure_at_every_step_leaks_nothing(kernel: Any, edu: EduDevice, backend: str, efd: int) -> None:
    loc = find_device(kernel, edu.address)
    probe = FailingKernel(kernel)
    _session(probe, loc.name, backend, efd)  # count the steps of a clean run
    steps = probe.calls
    assert steps >= 10
    baseline = open_fds()
    failed_calls = set()
    for n in range(1, steps + 1):
        fk = FailingKernel(kernel, fail_at=n)
        with pytest.raises(VfioError) as e:  # the objects may re-raise it with a hint, errno and text kept
            _session(fk, loc.name, backend, efd)
        assert e.value.errno == errno.EIO and "injected failure" in str(e.value), e.value
        failed_calls.add(fk.failed_call.split()[0] + " " + fk.failed_call.split()[-1])
        assert open_fds() == baseline, f"descriptor leaked when call {n} ({fk.failed_call}) failed"
        if not real_kernel_requested():
            assert kernel.open_files() == [], f"simulated files left open when call {n} ({fk.failed_call}) failed"
            kernel.check_invariants()
    # the device is free again: a clean session still works after every injected failure
    _session(kernel, loc.name, backend, efd)
    assert open_fds() == baseline
    assert any(c.startswith("open") for c in failed_calls) and any(c.startswith("mmap") for c in failed_calls)
