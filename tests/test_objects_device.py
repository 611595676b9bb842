"""pyvfio.device: Device, Region and RegionMapping, interrupts, resets (function and hot, both forms), features.

Device layouts only the simulation has (sparse BARs, a PCIe function with FLR, devices on a bridged bus,
the migratable mtty) use a simulated kernel built in the test; the edu-based tests take the fixtures.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from objects_support import SparseKernel, open_fds
from pyvfio.container import Container
from pyvfio.device import Device, IrqInfo
from pyvfio.discovery import OpenDevice, open_device
from pyvfio.errors import VfioError
from pyvfio.iommufd import Iommufd
from pyvfio.uapi import vfio as uv

PAGE = 4096


@pytest.fixture
def sim() -> Any:
    from pyvfio.sim import Kernel

    return Kernel()


@pytest.fixture
def od(kernel: Any, edu: EduDevice) -> Iterator[OpenDevice]:
    with open_device(kernel, edu.address) as opened:
        yield opened


@pytest.fixture
def efd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


def signalled(efd: int) -> int:
    if not select.select([efd], [], [], 2.0)[0]:
        return 0
    return int.from_bytes(os.read(efd, 8), "little")


def open_group_device(kernel: Any, vdev: Any) -> tuple[Container, Device]:
    c = Container(kernel)
    return c, c.group(vdev.group_id).device(vdev.address)


# ---------------------------------------------------------------------------------------------------------
# regions


def test_regions_listing_skips_what_the_kernel_refuses(od: OpenDevice) -> None:
    regions = od.device.regions()
    assert [r.index for r in regions] == list(range(8))  # VGA (8) is EINVAL on a non-VGA device
    assert [r.name for r in regions][:2] == ["BAR0", "BAR1"] and regions[7].name == "CONFIG"
    assert regions[1].size == 0 and regions[1].mmap_areas == [] and not regions[1].readable
    assert od.device.region(0) is regions[0]  # asked once, kept
    assert "READ|WRITE|MMAP" in repr(regions[0])


def test_region_access_rules(od: OpenDevice) -> None:
    dev = od.device
    cfg = dev.region(uv.VFIO_PCI_CONFIG_REGION_INDEX)
    with pytest.raises(VfioError) as e:
        cfg.mmap()
    assert e.value.errno == errno.EINVAL and "does not allow mmap" in str(e.value)
    with pytest.raises(VfioError) as e:
        dev.region(0).mmap(0x800, PAGE)
    assert e.value.errno == errno.EINVAL and "page-aligned" in str(e.value)
    with pytest.raises(VfioError) as e:
        dev.region(1).read(0, 4)  # BAR1 is not implemented: size 0
    assert e.value.errno == errno.EINVAL and "outside BAR1" in str(e.value)
    assert dev.config_read16(0) == 0x1234
    old = dev.config_read16(0x04)
    dev.config_write16(0x04, old | 0x4)
    assert dev.config_read16(0x04) & 0x4
    assert dev.set_bus_master(False) & 0x4 == 0


def test_region_mapping_interface(od: OpenDevice) -> None:
    bar0 = od.device.region(0)
    m = bar0.mmap(PAGE, 2 * PAGE)
    assert len(m) == 2 * PAGE and m.windows == [(0, 2 * PAGE)] and "1 window" in repr(m)
    m[0:4] = b"\x01\x02\x03\x04"  # BAR0 + 0x1000: edu decodes nothing there, writes are dropped
    with pytest.raises(IndexError):
        m.read(2 * PAGE - 2, 4)
    with pytest.raises(ValueError):
        m[0:8:2]
    if hasattr(od.device.kernel, "devices"):
        with pytest.raises(TypeError, match="traps every access"):
            _ = m.view
    m.close()
    assert m.closed and "closed" in repr(m)
    with pytest.raises(ValueError, match="closed"):
        m.read32(0)
    with bar0.mmap() as whole:
        assert whole.read32(0) == 0x010000ED and whole[-1] in range(256)
        assert whole[0:4] == b"\xed\x00\x00\x01"  # an aligned 4-byte slice is one 4-byte load, as edu needs
        whole.write8(0x04, 0)  # a 1-byte write to a 4-byte register: the edu ignores it
        whole.write16(0x04, 0)


def test_sparse_region_maps_windows_and_traps_the_holes(sim: Any) -> None:
    vdev = sim.add_device("pci", bars=[{"index": 0, "size": 0x4000}])
    sk = SparseKernel(sim, 0, [(0, 0x1000), (0x3000, 0x1000)])
    c, dev = open_group_device(sk, vdev)
    with c:
        bar0 = dev.region(0)
        assert bar0.mmap_areas == [(0, 0x1000), (0x3000, 0x1000)]
        with bar0.mmap() as m:
            assert m.windows == [(0, 0x1000), (0x3000, 0x1000)]
            m.write32(0x10, 0xAABBCCDD)  # window
            m.write32(0x2000, 0x11223344)  # hole: pwrite on the device fd
            m[0x3008:0x300C] = b"wxyz"  # second window
            assert bar0.read32(0x10) == 0xAABBCCDD and bar0.read32(0x2000) == 0x11223344
            assert m.read(0x3008, 4) == b"wxyz" and m.read32(0x2000) == 0x11223344
            assert m.read(0xFFC, 8) == bar0.read(0xFFC, 8)  # straddles a window's end: the slow path
            with pytest.raises(TypeError, match="sparse|traps"):
                _ = m.view
        with bar0.mmap(0x3000, 0x1000) as part:  # a range inside one window maps only that window
            assert part.windows == [(0, 0x1000)] and part.read(8, 4) == b"wxyz"


def test_msix_mappable_bar_maps_whole(sim: Any) -> None:
    vdev = sim.add_device("pci", msix=4, msix_bar=0, bars=[{"index": 0, "size": 0x4000}])
    c, dev = open_group_device(sim, vdev)
    with c:
        bar0 = dev.region(0)
        assert [type(cap).__name__ for cap in bar0.caps] == ["MsixMappableCap"]
        assert bar0.mmap_areas == [(0, 0x4000)]


def test_closing_the_device_unmaps_its_regions(kernel: Any, edu: EduDevice) -> None:
    with open_device(kernel, edu.address) as opened:
        m = opened.device.region(0).mmap(0, PAGE)
        region = opened.device.region(0)
    assert m.closed and region.closed and opened.device.closed


# ---------------------------------------------------------------------------------------------------------
# interrupts


def test_irq_info(od: OpenDevice) -> None:
    irqs = od.device.irqs()
    indexes = [i.index for i in irqs]
    # ERR (3): 7.3.4 (the VM lane) and the simulation offer it on every PCI device, the conventional edu too
    # ("vfio: Remove the pcie check for VFIO_PCI_ERR_IRQ_INDEX"); older kernels only on PCI Express functions
    assert indexes == [0, 1, 2, 3, 4]
    intx = irqs[0]
    assert isinstance(intx, IrqInfo) and intx.name == "INTx" and intx.flag_names == "EVENTFD|MASKABLE|AUTOMASKED"
    assert irqs[2].name == "MSI-X" and irqs[2].count == 0
    with pytest.raises(OSError) as e:
        od.device.irq_info(uv.VFIO_PCI_NUM_IRQS)
    assert e.value.errno == errno.EINVAL and e.value.ioctl == "VFIO_DEVICE_GET_IRQ_INFO"


def test_set_irqs_errors_name_the_ioctl(od: OpenDevice, efd: int) -> None:
    dev = od.device
    with pytest.raises(OSError) as e:  # MSI has no mask in vfio-pci
        dev.set_irqs(uv.VFIO_PCI_MSI_IRQ_INDEX, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_MASK, 0, 1)
    assert e.value.errno == errno.ENOTTY and "VFIO_DEVICE_SET_IRQS" in str(e.value)
    with pytest.raises(OSError) as e:  # edu has one MSI vector
        dev.set_irq_eventfds(uv.VFIO_PCI_MSI_IRQ_INDEX, 0, [efd, efd])
    assert e.value.errno == errno.EINVAL


def test_intx_unmask_eventfd_and_mask(od: OpenDevice, efd: int) -> None:
    dev = od.device
    bar0 = dev.region(0)
    unmask = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        dev.set_irq_eventfds(uv.VFIO_PCI_INTX_IRQ_INDEX, 0, [efd])
        dev.set_intx_unmask_eventfd(unmask)
        dev.mask_intx()
        bar0.write32(0x60, 0x1)
        assert not select.select([efd], [], [], 0.05)[0]  # masked by the user: no signal
        os.eventfd_write(unmask, 1)  # the resample fd unmasks; the line is still up: signalled at once
        assert signalled(efd) == 1
        bar0.write32(0x64, 0x1)
        dev.set_intx_unmask_eventfd(-1)
    finally:
        dev.disable_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX)
        os.close(unmask)


# ---------------------------------------------------------------------------------------------------------
# resets


def test_function_reset_on_a_device_with_flr(sim: Any) -> None:
    vdev = sim.add_device("pci", express=True, flr=True)
    c, dev = open_group_device(sim, vdev)
    with c:
        assert dev.info.reset_supported and "RESET" in dev.info.flag_names
        dev.region(0).write32(0, 0x5A5A5A5A)
        dev.reset()
        assert dev.region(0).read32(0) == 0  # the function's memory was reset
        assert 3 in [i.index for i in dev.irqs()]  # a PCIe function has the ERR index


def test_hot_reset_cdev_form(sim: Any) -> None:
    a = sim.add_device("edu", name="0000:01:00.0", group=3)
    b = sim.add_device("edu", name="0000:01:00.1", group=4)
    with Iommufd(sim) as ictx:
        ioas = ictx.ioas()
        dev_a = ictx.device(a.cdev, name=a.address, attach=ioas)
        info = dev_a.hot_reset_info()
        assert info.flags & uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID and not info.all_owned
        assert [(d.address, d.devid == dev_a.devid, d.owned) for d in info.devices] == [
            (a.address, True, True), (b.address, False, False)]
        with pytest.raises(OSError) as e:  # b is not ours: the kernel refuses
            dev_a.hot_reset()
        assert e.value.errno == errno.EINVAL
        dev_b = ictx.device(b.cdev, name=b.address, attach=ioas)
        assert dev_a.hot_reset_info().all_owned
        dev_b.region(0).write32(0x04, 0x1)
        dev_a.hot_reset()  # no group fds in the cdev form: ownership comes from the iommufd
        assert dev_b.region(0).read32(0x00) == 0x010000ED


# ---------------------------------------------------------------------------------------------------------
# features


def test_migration_features_on_mtty(sim: Any) -> None:
    vdev = sim.add_device("mtty")
    c, dev = open_group_device(sim, vdev)
    with c:
        flags = dev.migration_flags()
        assert flags == uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_P2P | uv.VFIO_MIGRATION_PRE_COPY
        assert dev.feature_probe(uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                 uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET)
        assert not dev.feature_probe(uv.VFIO_DEVICE_FEATURE_MIGRATION, uv.VFIO_DEVICE_FEATURE_SET)  # GET only
        raw = dev.feature(uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, uv.VFIO_DEVICE_FEATURE_GET,
                          size=ctypes.sizeof(uv.vfio_device_feature_mig_state))
        assert uv.vfio_device_feature_mig_state.from_buffer_copy(raw).device_state == uv.VFIO_DEVICE_STATE_RUNNING
        stop = uv.vfio_device_feature_mig_state(device_state=uv.VFIO_DEVICE_STATE_STOP, data_fd=-1)
        out = dev.feature(uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, uv.VFIO_DEVICE_FEATURE_SET, bytes(stop))
        assert uv.vfio_device_feature_mig_state.from_buffer_copy(out).data_fd == -1
        with pytest.raises(OSError) as e:  # GET and SET together without PROBE
            dev.feature(uv.VFIO_DEVICE_FEATURE_MIGRATION, uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET,
                        size=8)
        assert e.value.errno == errno.EINVAL and "GET|SET MIGRATION" in str(e.value)


def test_device_repr_and_closed_use(kernel: Any, edu: EduDevice) -> None:
    before = open_fds()
    with Container(kernel) as c:
        dev = c.group(edu.group).device(edu.address)
        assert repr(dev) == f"<Device {edu.address} fd {dev.fd} (group {edu.group})>" and dev.label == edu.address
        with pytest.raises(VfioError) as e:
            dev.attach(1)
        assert e.value.errno == errno.EINVAL and "opened through its group" in str(e.value)
        dev.close()
        for call in (lambda: dev.irq_info(0), dev.reset, lambda: dev.feature(1, 0), lambda: dev.region(0)):
            with pytest.raises(ValueError, match="Device is closed"):
                call()
    assert open_fds() == before
