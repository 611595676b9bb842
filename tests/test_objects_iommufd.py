"""pyvfio.iommufd: Iommufd, Ioas, Hwpt, FaultQueue -- objects, errnos with reasons, and the close order.

Tests take the ``kernel``/``edu`` fixtures and skip where the kernel lacks iommufd; the few that change the
simulated IOMMU's abilities (PRI for fault queues) build their own simulated kernel.
"""

from __future__ import annotations

import errno
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from objects_support import open_fds
from pyvfio.device import Device
from pyvfio.dma import DmaBuffer
from pyvfio.errors import VfioError
from pyvfio.info import IovaRange
from pyvfio.iommufd import U64_MAX, FaultQueue, Hwpt, Ioas, Iommufd
from pyvfio.uapi import iommufd as ui

PAGE = 4096
MSI_WINDOW = 0xFEE00000


@pytest.fixture
def ictx(kernel: Any, edu: EduDevice) -> Iterator[Iommufd]:
    try:
        ctx = Iommufd(kernel)
    except VfioError as e:
        assert e.errno == errno.ENOENT and "CONFIG_IOMMUFD" in str(e)
        pytest.skip("no /dev/iommu on this kernel")
    if edu.cdev is None:
        ctx.close()
        pytest.skip("no VFIO cdev on this kernel")
    with ctx:
        yield ctx


@pytest.fixture
def sim() -> Any:
    from pyvfio.sim import Kernel

    return Kernel()


def test_ioas_and_device_lifecycle(ictx: Iommufd, edu: EduDevice) -> None:
    before = open_fds()
    ioas = ictx.ioas()
    assert isinstance(ioas, Ioas) and ioas.id > 0 and "Ioas" in repr(ictx)
    dev = ictx.device(edu.cdev or "", name=edu.address)
    assert isinstance(dev, Device) and dev.devid > 0 and dev.hwpt_id == 0 and ictx.devices == [dev]
    assert "not attached" in repr(dev)
    hwpt_id = dev.attach(ioas)
    assert hwpt_id == dev.hwpt_id and hwpt_id not in (0, ioas.id) and dev.attached_to is ioas
    dev.detach()
    assert dev.hwpt_id == 0
    assert dev.attach(ioas) not in (0, ioas.id)  # a compatible automatic page table again
    dev.close()
    assert ictx.devices == [] and open_fds() == before
    ioas.close()  # not attached any more: IOMMU_DESTROY succeeds
    with pytest.raises(OSError) as e:
        ictx.destroy(ioas.id)
    assert e.value.errno == errno.ENOENT and f"no object has id {ioas.id}" in str(e.value)


def test_destroying_an_attached_ioas_is_ebusy_with_reason(ictx: Iommufd, edu: EduDevice) -> None:
    ioas = ictx.ioas()
    ictx.device(edu.cdev or "", attach=ioas)
    with pytest.raises(VfioError) as e:
        ictx.destroy(ioas.id)
    assert e.value.errno == errno.EBUSY and "still in use" in str(e.value) and e.value.ioctl == "IOMMU_DESTROY"
    assert not ioas.closed


def test_iova_ranges_narrow_on_attach(ictx: Iommufd, edu: EduDevice) -> None:
    ioas = ictx.ioas()
    fresh = ioas.iova_ranges()
    assert any(MSI_WINDOW in r for r in fresh)  # a fresh IOAS allows everything
    ictx.device(edu.cdev or "", attach=ioas)
    attached = ioas.iova_ranges()
    assert attached and not any(MSI_WINDOW in r for r in attached)  # the device reserved its MSI window
    assert ioas.iova_alignment >= 1
    m = ioas.dma(PAGE)
    assert not any(r.start <= MSI_WINDOW <= r.last for r in [IovaRange(m.iova, m.iova + m.size - 1)])
    m.unmap()


def test_map_user_lets_the_kernel_choose_and_the_allocator_knows(ictx: Iommufd) -> None:
    ioas = ictx.ioas()
    with DmaBuffer(2 * PAGE) as buf:
        iova = ioas.map_user(buf.addr, 2 * PAGE)
        assert ioas.iova_allocator.overlaps(iova, 2 * PAGE) == (iova, 2 * PAGE)
        with pytest.raises(OSError) as e:  # a mapping is never split: ENOENT (type1v2 would say EINVAL)
            ioas.unmap_dma(iova, PAGE)
        assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:  # unmapping nothing is also ENOENT on iommufd
            ioas.unmap_dma(0x7000000, PAGE)
        assert e.value.errno == errno.ENOENT
        assert ioas.unmap_dma(iova, 2 * PAGE) == 2 * PAGE
        assert ioas.iova_allocator.used() == []
        fixed = ioas.map_user(buf.addr, PAGE, 0x400000, writable=False)
        assert fixed == 0x400000
        assert ioas.unmap_all() == PAGE
        assert ioas.unmap_dma(0, U64_MAX) == 0  # unmap-all of an empty IOAS succeeds


def test_map_file_and_copy_between_ioases(ictx: Iommufd) -> None:
    src, dst = ictx.ioas(), ictx.ioas()
    with DmaBuffer(2 * PAGE) as buf:
        iova = src.map_file(buf.fd, 0, 2 * PAGE)
        copied = dst.copy_from(src, iova, 2 * PAGE, 0x800000)
        assert copied == 0x800000 and dst.iova_allocator.overlaps(copied, PAGE) is not None
        with pytest.raises(OSError) as e:  # the source range must be covered by mappings
            dst.copy_from(src, iova + 0x100000, PAGE)
        assert e.value.errno == errno.ENOENT
        assert dst.unmap_all() == 2 * PAGE and src.unmap_all() == 2 * PAGE


def test_allow_iovas_pins_where_maps_go(ictx: Iommufd, edu: EduDevice) -> None:
    with pytest.raises(OSError) as e:  # start above last
        ictx.ioas().allow_iovas([(0x20, 0x10)])
    assert e.value.errno == errno.EINVAL
    ioas = ictx.ioas()
    ioas.allow_iovas([IovaRange(0x10000000, 0x1FFFFFFF)])
    ictx.device(edu.cdev or "", attach=ioas)
    with DmaBuffer(PAGE) as buf:
        iova = ioas.map_user(buf.addr, PAGE)  # the kernel's own choice honours the allowed range
        assert 0x10000000 <= iova <= 0x1FFFFFFF
        ioas.unmap_dma(iova, PAGE)


def test_attach_conflicting_with_allowed_iovas_is_refused(ictx: Iommufd, edu: EduDevice) -> None:
    ioas = ictx.ioas()
    ioas.allow_iovas([(0xFE000000, 0xFEFFFFFF)])  # promises the range the device's MSI window needs
    before = open_fds()
    with pytest.raises(OSError) as e:
        ictx.device(edu.cdev or "", attach=ioas)
    assert e.value.errno == errno.EADDRINUSE
    assert ictx.devices == [] and open_fds() == before  # the half-opened device was closed again


def test_hwpt_dirty_tracking_refused_without_the_capability(ictx: Iommufd, edu: EduDevice) -> None:
    # QEMU's intel-iommu (the VM lane, and the simulation's default IOMMU) cannot track dirty pages
    ioas = ictx.ioas()
    dev = ictx.device(edu.cdev or "", name=edu.address)
    assert not ictx.hw_info(dev).dirty_tracking
    with pytest.raises(OSError) as e:
        ictx.hwpt(dev, ioas, flags=ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    assert e.value.errno == errno.EOPNOTSUPP and "cannot track dirty pages" in str(e.value)


def test_hwpt_with_dirty_tracking_sees_device_writes(kernel: Any, ictx: Iommufd) -> None:
    if not hasattr(kernel, "add_device"):
        pytest.skip("QEMU's intel-iommu in the VM lane cannot track dirty pages")
    capable = kernel.add_device("edu", iommu_dirty_tracking=True)  # the simulation's opt-in dirty-capable IOMMU
    ioas = ictx.ioas()
    dev = ictx.device(capable.cdev or "", name=capable.address)
    assert ictx.hw_info(dev).dirty_tracking
    hwpt = ictx.hwpt(dev, ioas, flags=ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    assert isinstance(hwpt, Hwpt) and f"over IOAS {ioas.id}" in repr(hwpt) and "DIRTY_TRACKING" in repr(hwpt)
    assert dev.attach(hwpt) == hwpt.id
    dev.set_bus_master()
    bar0 = dev.region(0)
    with ioas.dma(4 * PAGE, limit=1 << 28) as m:
        hwpt.set_dirty_tracking(True)
        bar0.write64(0x80, 0x40000)
        bar0.write64(0x88, m.iova + 2 * PAGE)
        bar0.write64(0x90, 64)
        bar0.write64(0x98, 0x3)
        while bar0.read64(0x98) & 1:
            pass
        assert hwpt.dirty_bitmap(m.iova, m.size, clear=False)[0] == 0b0100
        assert hwpt.dirty_bitmap(m.iova, m.size)[0] == 0b0100
        assert hwpt.dirty_bitmap(m.iova, m.size)[0] == 0  # the previous read cleared it
        hwpt.set_dirty_tracking(False)
    with pytest.raises(VfioError) as e:  # the device uses it
        hwpt.close()
    assert e.value.errno == errno.EBUSY and hwpt.closed  # closed on our side; the iommufd frees it later


def test_hwpt_without_dirty_tracking_refuses_it(ictx: Iommufd, edu: EduDevice) -> None:
    ioas = ictx.ioas()
    dev = ictx.device(edu.cdev or "")
    hwpt = ictx.hwpt(dev, ioas)
    with pytest.raises(OSError) as e:
        hwpt.set_dirty_tracking(True)
    assert e.value.errno == errno.EOPNOTSUPP
    hwpt.close()  # nothing attached: destroyed
    with pytest.raises(ValueError, match="closed"):
        hwpt.dirty_bitmap(0, PAGE)


def test_options_and_hw_info(ictx: Iommufd, edu: EduDevice) -> None:
    ioas = ictx.ioas()
    assert ictx.rlimit_mode in (0, 1)
    assert ioas.huge_pages is True
    ioas.huge_pages = False
    assert ioas.huge_pages is False and ioas.iova_alignment == PAGE
    dev = ictx.device(edu.cdev or "")
    hw = ictx.hw_info(dev)
    assert hw.type_name in ("NONE", "DEFAULT", "INTEL_VTD", "ARM_SMMUV3", "AMD") and isinstance(hw.data, bytes)


def test_fault_queue(ictx: Iommufd) -> None:
    before = open_fds()
    q = ictx.fault_queue()
    assert isinstance(q, FaultQueue) and q.fd >= 0 and open_fds() == before + 1
    assert q.read() == []  # nothing faulted
    with pytest.raises(OSError) as e:  # no fault group has this cookie
        q.respond(1234)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(VfioError) as e2:  # the open descriptor holds the object
        ictx.destroy(q.id)
    assert e2.value.errno == errno.EBUSY
    q.close()  # descriptor first, then IOMMU_DESTROY: both succeed
    assert q.closed and open_fds() == before
    with pytest.raises(OSError) as e:
        ictx.destroy(q.id)
    assert e.value.errno == errno.ENOENT


def test_hwpt_with_a_fault_queue(sim: Any) -> None:
    vdev = sim.add_device("edu")
    vdev.ops.iopf_capable = True  # a device with PRI, which the simulated IOMMU can then fault for
    with Iommufd(sim) as ictx:
        ioas = ictx.ioas()
        dev = ictx.device(vdev.cdev)
        q = ictx.fault_queue()
        hwpt = ictx.hwpt(dev, ioas, fault=q)
        assert hwpt.fault is q
        assert dev.attach(hwpt) == hwpt.id
    assert sim.open_files() == []


def test_close_order_devices_first(kernel: Any, edu: EduDevice) -> None:
    try:
        ictx = Iommufd(kernel)
    except VfioError:
        pytest.skip("no /dev/iommu on this kernel")
    if edu.cdev is None:
        ictx.close()
        pytest.skip("no VFIO cdev")
    before = open_fds() - 1
    ioas = ictx.ioas()
    dev = ictx.device(edu.cdev, attach=ioas)
    hwpt = ictx.hwpt(dev, ioas)  # made after the device, and the device moves onto it
    dev.attach(hwpt)
    q = ictx.fault_queue()
    m = ioas.dma(PAGE)
    ictx.close()  # a naive reverse order would destroy the HWPT under the attached device (EBUSY)
    assert all(o.closed for o in (ictx, ioas, dev, hwpt, q)) and not m.mapped and m.buffer.closed
    assert open_fds() == before
    if hasattr(kernel, "open_files"):
        assert kernel.open_files() == []
    with pytest.raises(ValueError, match="closed"):
        ictx.ioas()


def test_device_from_cdev_undoes_on_failure(ictx: Iommufd, edu: EduDevice) -> None:
    before = open_fds()
    with pytest.raises(OSError) as e:  # attach to an id that is no page table
        Device.from_cdev(ictx.kernel, edu.cdev or "", ictx, attach=0xDEAD)
    assert e.value.errno == errno.ENOENT
    assert open_fds() == before and ictx.devices == []
    dev = Device.from_cdev(ictx.kernel, edu.cdev or "", ictx)  # the cdev was released: bind works again
    with pytest.raises(VfioError) as e2:  # but a second bind of another open of it is refused
        Device.from_cdev(ictx.kernel, edu.cdev or "", ictx)
    assert e2.value.errno in (errno.EBUSY, errno.EINVAL) and (edu.cdev or "") in str(e2.value)
    dev.close()
