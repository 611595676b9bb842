"""pyvfio.container: Container and Group -- the legacy open order, its checks, and closing in reverse.

Kernel-agnostic tests take the ``kernel``/``edu`` fixtures; the ones that need a machine layout only the
simulation offers (a non-viable group, several groups on one bus) build their own simulated kernel.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from conftest import EduDevice
from objects_support import open_fds
from pyvfio.container import Container, Group
from pyvfio.device import Device
from pyvfio.errors import VfioError
from pyvfio.info import DmaAvailCap, IovaRangeCap, MigrationCap
from pyvfio.uapi import vfio as uv

PAGE = 4096


@pytest.fixture
def sim() -> Any:
    from pyvfio.sim import Kernel

    return Kernel()


def test_container_open_order_and_state(kernel: Any, edu: EduDevice) -> None:
    before = open_fds()
    with Container(kernel) as c:
        assert c.api_version == uv.VFIO_API_VERSION and c.iommu_type is None
        assert c.check_extension(uv.VFIO_TYPE1v2_IOMMU) == 1
        assert c.check_extension(uv.VFIO_UPDATE_VADDR) == 0  # only once an IOMMU is set
        assert "no IOMMU yet" in repr(c)
        grp = c.group(edu.group)
        assert isinstance(grp, Group) and c.groups == [grp]
        assert c.iommu_type == uv.VFIO_TYPE1v2_IOMMU  # the best type1 flavour, chosen by the first group
        assert c.check_extension(uv.VFIO_UPDATE_VADDR) == 1
        assert grp.status() == uv.VFIO_GROUP_FLAGS_VIABLE | uv.VFIO_GROUP_FLAGS_CONTAINER_SET
        assert grp.viable and grp.status_names() == "VIABLE|CONTAINER_SET"
        dev = grp.device(edu.address)
        assert isinstance(dev, Device) and grp.devices == [dev] and dev.group is grp
        assert f"groups {edu.group}" in repr(c) and "type1v2" in repr(c)
        assert repr(grp) == f"<Group {edu.group} fd {grp.fd}, 1 device(s) open>"
    assert c.closed and grp.closed and dev.closed
    assert repr(c) == "<Container closed>" and repr(dev) == f"<Device {edu.address} closed>"
    assert open_fds() == before
    c.close()  # idempotent


def test_iommu_info_caps(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c:
        with pytest.raises(VfioError) as e:
            c.iommu_info()
        assert e.value.errno == errno.EINVAL and "add a group first" in str(e.value)
        c.group(edu.group)
        info = c.iommu_info()
        assert info.flags & uv.VFIO_IOMMU_INFO_PGSIZES and info.flags & uv.VFIO_IOMMU_INFO_CAPS
        assert info.min_pgsize == PAGE == c.iova_alignment
        assert {type(cap) for cap in info.caps} >= {IovaRangeCap, DmaAvailCap, MigrationCap}
        assert info.iova_ranges == c.iova_ranges() and info.dma_avail and info.dma_avail > 0
        assert info.migration is not None and info.migration.pgsize_bitmap & PAGE
        with c.dma(PAGE):
            assert c.iommu_info().dma_avail == info.dma_avail - 1  # the capability reflects the mapping


def test_explicit_iommu_type(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel, iommu_type=uv.VFIO_TYPE1_IOMMU) as c:
        c.group(edu.group)
        assert c.iommu_type == uv.VFIO_TYPE1_IOMMU


def test_set_iommu_without_a_group_says_what_to_do(kernel: Any) -> None:
    with Container(kernel) as c:
        with pytest.raises(VfioError) as e:
            c.set_iommu(uv.VFIO_TYPE1v2_IOMMU)
        assert e.value.errno == errno.EINVAL and "container.group(N)" in str(e.value)
        assert e.value.ioctl == "VFIO_SET_IOMMU"


def test_group_opens_once_and_unknown_device(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c, Container(kernel) as other:
        grp = c.group(edu.group)
        with pytest.raises(VfioError) as e:
            other.group(edu.group)
        assert e.value.errno == errno.EBUSY and "already open" in str(e.value)
        assert other.groups == [] and other.iommu_type is None  # the failed attempt left nothing behind
        with pytest.raises(VfioError) as e:
            grp.device("0000:ff:1f.7")
        assert e.value.errno == errno.ENODEV and "has no device '0000:ff:1f.7'" in str(e.value)
        assert e.value.ioctl == "VFIO_GROUP_GET_DEVICE_FD"


def test_missing_group_node(kernel: Any) -> None:
    with Container(kernel) as c:
        with pytest.raises(VfioError) as e:
            c.group(4242)
        assert e.value.errno == errno.ENOENT and "vfio-pci" in str(e.value)


def test_non_viable_group_is_refused_with_the_fix(sim: Any) -> None:
    vdev = sim.add_device("edu")
    vdev.group.viable = False  # another device of the group is bound to a DMA-capable kernel driver
    before = open_fds()
    with Container(sim) as c:
        with pytest.raises(VfioError) as e:
            c.group(vdev.group_id)
        assert e.value.errno == errno.EPERM and "not viable" in str(e.value)
        assert f"/sys/kernel/iommu_groups/{vdev.group_id}/devices" in str(e.value)
        assert c.groups == []
    assert open_fds() == before and sim.open_files() == []


def test_container_maps_and_unmaps(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c:
        c.group(edu.group)
        a = c.dma(PAGE)
        b = c.dma(2 * PAGE)
        assert c.unmap_dma(0x900000, PAGE) == 0  # type1: unmapping nothing is not an error
        assert c.unmap_all() == 3 * PAGE
        assert not a.mapped and not b.mapped and c.mappings == [] and c.iova_allocator.used() == []
        a.unmap()  # already gone: no second unmap reaches the kernel
        assert a.buffer.closed
        b.unmap()


def test_dirty_tracking_on_type1(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c:
        dev = c.group(edu.group).device(edu.address)
        dev.set_bus_master()
        bar0 = dev.region(0)
        with c.dma(4 * PAGE, limit=1 << 28) as m:
            c.dirty_tracking(True)
            c.dirty_bitmap(m.iova, m.size)  # reading clears: start from a clean slate
            bar0.write64(0x80, 0x40000)  # edu: device buffer -> RAM page 1
            bar0.write64(0x88, m.iova + PAGE)
            bar0.write64(0x90, 64)
            bar0.write64(0x98, 0x3)
            while bar0.read64(0x98) & 1:
                pass
            bitmap = c.dirty_bitmap(m.iova, m.size)
            # type1 cannot see what a vfio-pci device wrote: every mapped page is dirty (7.3.4 in the VM lane and
            # the simulation's default), the written one included
            assert len(bitmap) == 8 and bitmap[0] == 0b1111
            c.dirty_tracking(False)
            with pytest.raises(OSError) as e:  # tracking off: no bitmap
                c.dirty_bitmap(m.iova, m.size)
            assert e.value.errno == errno.EINVAL


def test_group_close_closes_its_devices_first(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c:
        grp = c.group(edu.group)
        dev = grp.device(edu.address)
        dev.close()
        assert dev.closed and grp.devices == []
        dev2 = grp.device(edu.address)  # open again after an early close
        grp.close()
        assert dev2.closed and c.groups == []
        with pytest.raises(ValueError, match="closed"):
            dev2.region(0)


def test_hot_reset_group_form_needs_every_affected_group(sim: Any) -> None:
    a = sim.add_device("edu", name="0000:01:00.0", group=5)
    b = sim.add_device("edu", name="0000:01:00.1", group=6)
    with Container(sim) as c:
        dev = c.group(5).device(a.address)
        info = dev.hot_reset_info()
        assert [(d.address, d.group_id, d.by_devid) for d in info.devices] == [(a.address, 5, False),
                                                                                 (b.address, 6, False)]
        with pytest.raises(VfioError) as e:
            dev.hot_reset()
        assert e.value.errno == errno.EPERM and "group(s) 6" in str(e.value)
        with pytest.raises(OSError) as e2:  # proving only group 5 is not enough for the kernel either
            dev.hot_reset([c.groups[0]])
        assert e2.value.errno == errno.EINVAL
        c.group(6)
        dev.region(0).write32(0x04, 0)  # touch the device; the reset clears the edu's registers
        dev.hot_reset()
        assert dev.region(0).read32(0x00) == 0x010000ED


def test_hot_reset_info_grows_its_buffer(sim: Any) -> None:
    for fn in range(8):
        for slot in range(2):
            sim.add_device("pci", name=f"0000:02:{slot:02x}.{fn}", group=10)  # 16 functions, one group
    with Container(sim) as c:
        dev = c.group(10).device("0000:02:00.0")
        info = dev.hot_reset_info()  # more devices than the first guess of 8: ENOSPC, then the right size
        assert len(info.devices) == 16 and {d.group_id for d in info.devices} == {10}
        dev.hot_reset()


def test_close_releases_everything_and_reports_the_first_error(caplog: pytest.LogCaptureFixture) -> None:
    from pyvfio._resource import Resource

    closed: list[str] = []

    class Thing(Resource):
        def __init__(self, name: str, fail: bool = False) -> None:
            super().__init__()
            self.name, self.fail = name, fail

        def _close_self(self) -> None:
            closed.append(self.name)
            if self.fail:
                raise OSError(errno.EIO, f"{self.name} failed")

    root = Thing("root")
    for name, fail in (("a", False), ("b", True), ("c", False)):
        root._adopt(Thing(name, fail))
    with pytest.raises(OSError, match="b failed"):
        root.close()
    assert closed == ["c", "b", "a", "root"] and root.closed and root._children == []
    closed.clear()
    with pytest.raises(KeyError):  # inside a failing with-block, a close error is logged, never raised over it
        with Thing("outer", fail=True):
            raise KeyError("the real error")
    assert closed == ["outer"] and "the real error" not in caplog.text and "outer failed" in caplog.text


def test_vaddr_invalidation_keeps_the_mappings(kernel: Any, edu: EduDevice) -> None:
    with Container(kernel) as c:
        c.group(edu.group)
        m = c.dma(PAGE)
        assert c.unmap_dma(0, 0, uv.VFIO_DMA_UNMAP_FLAG_VADDR | uv.VFIO_DMA_UNMAP_FLAG_ALL) == PAGE
        assert m.mapped and c.mappings == [m]  # only the process address was dropped (CPR), not the IOVA
        c.map_dma_raw(uv.VFIO_DMA_MAP_FLAG_VADDR, m.vaddr, m.iova, m.size)  # give it back
        m.unmap()
        assert m.buffer.closed and c.mappings == []
