"""The VFIO and iommufd basics against QEMU's edu device, on whichever kernel the fixtures give.

Written once against the syscall surface (``kernel.open/close/ioctl/pread/pwrite/mmap``) and the UAPI
mirror, so the same file runs on the simulated kernel (the default host run) and on a real Linux in the
VM lane (``python3 -m tests.vm``, ``PYVFIO_KERNEL=real``).  What the real kernel does here is the reference
the simulation must match: see ``../shared/vm/NOTES.md`` and ``SEMANTICS.md``.

The edu device (QEMU ``hw/misc/edu.c``): BAR0 holds an ident register (0x00, reads 0x010000ed), a liveness
register (0x04, reads back the complement), IRQ status/raise/ack (0x24/0x60/0x64) and a DMA engine
(source 0x80, destination 0x88, count 0x90, command 0x98: bit 0 starts, bit 1 set means device -> RAM,
bit 2 raises IRQ 0x100 on completion) moving data between RAM and its 4 KiB buffer at 0x40000.  QEMU 7.2's
edu aborts the whole VM on a transfer of 4096 bytes or beyond its buffer, so transfers here stay smaller,
and its DMA mask is 28 bits, so every IOVA stays below 2**28.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from typing import Any, Callable, Iterator

import pytest

from conftest import EduDevice
from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex

from edu_driver import (
    Legacy,
    PAGE,
    IOVA,
    BUF_SIZE,
    EDU_IDENT,
    EDU_LIVENESS,
    EDU_IRQ_STATUS,
    EDU_IRQ_RAISE,
    EDU_IRQ_ACK,
    EDU_BUFFER,
    EDU_IDENT_VALUE,
    EDU_IRQ_DMA,
    PCI_COMMAND,
    PCI_COMMAND_MASTER,
    argsz,
    address_of,
    pattern,
    wait_eventfd,
    eventfd_quiet,
    Device,
)

@pytest.fixture
def buf() -> Iterator[mmap.mmap]:
    """Page-aligned anonymous memory for DMA."""
    m = mmap.mmap(-1, BUF_SIZE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
    yield m
    m.close()


@pytest.fixture
def efd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


# ---------------------------------------------------------------------------------------------------------
# the legacy container / group path (type1v2)


@pytest.fixture
def legacy(kernel: Any, edu: EduDevice) -> Iterator[Legacy]:
    lg = Legacy(kernel, edu)
    yield lg
    lg.close()


def test_container_get_api_version(kernel: Any) -> None:
    fd = kernel.open("/dev/vfio/vfio")
    try:
        assert kernel.ioctl(fd, vfio.VFIO_GET_API_VERSION) == vfio.VFIO_API_VERSION == 0
    finally:
        kernel.close(fd)


def test_check_extension_before_and_after_set_iommu(kernel: Any, edu: EduDevice) -> None:
    container = kernel.open("/dev/vfio/vfio")
    group = kernel.open(f"/dev/vfio/{edu.group}")
    try:
        before = {ext: kernel.ioctl(container, vfio.VFIO_CHECK_EXTENSION, ext)
                  for ext in (vfio.VFIO_TYPE1_IOMMU, vfio.VFIO_TYPE1v2_IOMMU, vfio.VFIO_UPDATE_VADDR)}
        assert before == {vfio.VFIO_TYPE1_IOMMU: 1, vfio.VFIO_TYPE1v2_IOMMU: 1, vfio.VFIO_UPDATE_VADDR: 0}
        kernel.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        kernel.ioctl(container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        after = {ext: kernel.ioctl(container, vfio.VFIO_CHECK_EXTENSION, ext)
                 for ext in (vfio.VFIO_TYPE1v2_IOMMU, vfio.VFIO_UNMAP_ALL, vfio.VFIO_UPDATE_VADDR)}
        assert after == {vfio.VFIO_TYPE1v2_IOMMU: 1, vfio.VFIO_UNMAP_ALL: 1, vfio.VFIO_UPDATE_VADDR: 1}
    finally:
        kernel.close(group)
        kernel.close(container)


def test_set_iommu_without_group_is_einval(kernel: Any) -> None:
    container = kernel.open("/dev/vfio/vfio")
    try:
        with pytest.raises(OSError) as e:
            kernel.ioctl(container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        assert e.value.errno == errno.EINVAL
    finally:
        kernel.close(container)


def test_group_status_and_set_container(kernel: Any, edu: EduDevice) -> None:
    container = kernel.open("/dev/vfio/vfio")
    group = kernel.open(f"/dev/vfio/{edu.group}")
    try:
        status = argsz(vfio.vfio_group_status)
        kernel.ioctl(group, vfio.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == vfio.VFIO_GROUP_FLAGS_VIABLE
        kernel.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        kernel.ioctl(group, vfio.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == vfio.VFIO_GROUP_FLAGS_VIABLE | vfio.VFIO_GROUP_FLAGS_CONTAINER_SET
        with pytest.raises(OSError) as e:  # a group belongs to one container
            kernel.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        assert e.value.errno == errno.EINVAL
    finally:
        kernel.close(group)
        kernel.close(container)


def test_group_opens_once(kernel: Any, edu: EduDevice) -> None:
    group = kernel.open(f"/dev/vfio/{edu.group}")
    try:
        with pytest.raises(OSError) as e:
            kernel.open(f"/dev/vfio/{edu.group}")
        assert e.value.errno == errno.EBUSY
    finally:
        kernel.close(group)


def test_get_device_fd_needs_an_iommu(kernel: Any, edu: EduDevice) -> None:
    container = kernel.open("/dev/vfio/vfio")
    group = kernel.open(f"/dev/vfio/{edu.group}")
    try:
        kernel.ioctl(group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        with pytest.raises(OSError) as e:
            kernel.ioctl(group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
        assert e.value.errno == errno.EINVAL
    finally:
        kernel.close(group)
        kernel.close(container)


def test_get_device_fd_unknown_name_is_enodev(legacy: Legacy) -> None:
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.group, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:ff:1f.7"))
    assert e.value.errno == errno.ENODEV


def test_device_get_info(legacy: Legacy) -> None:
    info = legacy.device.info()
    # edu has neither FLR nor PM reset, so vfio-pci reports no RESET flag
    assert info.flags & (vfio.VFIO_DEVICE_FLAGS_PCI | vfio.VFIO_DEVICE_FLAGS_RESET) == vfio.VFIO_DEVICE_FLAGS_PCI
    assert info.num_regions >= vfio.VFIO_PCI_NUM_REGIONS
    assert info.num_irqs == vfio.VFIO_PCI_NUM_IRQS


def test_device_get_info_short_argsz_is_einval(legacy: Legacy) -> None:
    info = vfio.vfio_device_info(argsz=8)
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.device.fd, vfio.VFIO_DEVICE_GET_INFO, info)
    assert e.value.errno == errno.EINVAL


def test_device_reset_without_reset_support_is_einval(legacy: Legacy) -> None:
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.device.fd, vfio.VFIO_DEVICE_RESET)
    assert e.value.errno == errno.EINVAL


def test_region_info_bar0_and_config(legacy: Legacy) -> None:
    bar0 = legacy.device.region(vfio.VFIO_PCI_BAR0_REGION_INDEX)
    assert bar0.size == 1 << 20  # edu's 1 MiB MMIO BAR
    assert bar0.offset == vfio.VFIO_PCI_BAR0_REGION_INDEX << 40
    assert bar0.flags & 0x7 == (vfio.VFIO_REGION_INFO_FLAG_READ | vfio.VFIO_REGION_INFO_FLAG_WRITE
                                | vfio.VFIO_REGION_INFO_FLAG_MMAP)
    cfg = legacy.device.region(vfio.VFIO_PCI_CONFIG_REGION_INDEX)
    assert cfg.offset == vfio.VFIO_PCI_CONFIG_REGION_INDEX << 40
    assert cfg.size == 256  # conventional PCI
    assert cfg.flags == vfio.VFIO_REGION_INFO_FLAG_READ | vfio.VFIO_REGION_INFO_FLAG_WRITE


def test_region_info_unimplemented_bars_are_empty(legacy: Legacy) -> None:
    for index in (*range(vfio.VFIO_PCI_BAR1_REGION_INDEX, vfio.VFIO_PCI_BAR5_REGION_INDEX + 1),
                  vfio.VFIO_PCI_ROM_REGION_INDEX):
        region = legacy.device.region(index)
        assert (region.size, region.flags) == (0, 0), f"region {index}"
        assert region.offset == index << 40


@pytest.mark.parametrize("index", [vfio.VFIO_PCI_VGA_REGION_INDEX, vfio.VFIO_PCI_NUM_REGIONS, 1000],
                         ids=["vga-on-non-vga-device", "num_regions", "far-beyond"])
def test_region_info_bad_index_is_einval(legacy: Legacy, index: int) -> None:
    info = argsz(vfio.vfio_region_info, index=index)
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.device.fd, vfio.VFIO_DEVICE_GET_REGION_INFO, info)
    assert e.value.errno == errno.EINVAL


def test_config_space_vendor_and_device_id(legacy: Legacy) -> None:
    vendor, device = struct.unpack("<HH", legacy.device.cfg_read(0, 4))
    assert (vendor, device) == (0x1234, 0x11E8)


def test_bar0_ident_and_liveness(legacy: Legacy) -> None:
    assert legacy.device.read32(EDU_IDENT) == EDU_IDENT_VALUE
    legacy.device.write32(EDU_LIVENESS, 0x12345678)
    assert legacy.device.read32(EDU_LIVENESS) == (~0x12345678) & 0xFFFFFFFF


def test_bar0_mmap_reads_ident(legacy: Legacy) -> None:
    bar0 = legacy.device.region(vfio.VFIO_PCI_BAR0_REGION_INDEX)
    m = legacy.kernel.mmap(legacy.device.fd, PAGE, bar0.offset)
    try:
        # slicing is what both a real mmap and the simulated BAR window offer (one 4-byte load here)
        assert struct.unpack("<I", bytes(m[EDU_IDENT:EDU_IDENT + 4]))[0] == EDU_IDENT_VALUE
    finally:
        m.close()


def test_iommu_get_info_reports_page_sizes_and_caps(legacy: Legacy) -> None:
    info = argsz(vfio.vfio_iommu_type1_info)
    legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_GET_INFO, info)
    assert info.flags & vfio.VFIO_IOMMU_INFO_PGSIZES
    assert info.iova_pgsizes & PAGE
    # the capability chain does not fit: the kernel says so and asks for more room
    assert info.flags & vfio.VFIO_IOMMU_INFO_CAPS
    assert info.argsz > ctypes.sizeof(vfio.vfio_iommu_type1_info)
    assert info.cap_offset == 0


def test_edu_dma_round_trip_type1(legacy: Legacy, buf: mmap.mmap) -> None:
    legacy.map(address_of(buf), IOVA, BUF_SIZE)
    assert legacy.device.enable_bus_master() & PCI_COMMAND_MASTER
    legacy.device.round_trip(buf, IOVA)
    assert legacy.unmap(IOVA, BUF_SIZE) == BUF_SIZE


def _map_case(name: str) -> Callable[[Legacy, int], None]:
    def size_zero(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA, 0)

    def no_access_flags(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA, PAGE, flags=0)

    def unaligned_iova(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA + 0x800, PAGE)

    def unaligned_vaddr(lg: Legacy, va: int) -> None:
        lg.map(va + 0x800, IOVA, PAGE)

    def unknown_flag(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA, PAGE, flags=vfio.VFIO_DMA_MAP_FLAG_READ | (1 << 20))

    def overlap(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA, 2 * PAGE)
        lg.map(va + 2 * PAGE, IOVA + PAGE, PAGE)

    def vaddr_update_unknown(lg: Legacy, va: int) -> None:
        lg.map(va, IOVA, PAGE, flags=vfio.VFIO_DMA_MAP_FLAG_VADDR)

    return {"size_zero": size_zero, "no_access_flags": no_access_flags, "unaligned_iova": unaligned_iova,
            "unaligned_vaddr": unaligned_vaddr, "unknown_flag": unknown_flag, "overlap": overlap,
            "vaddr_update_of_nothing": vaddr_update_unknown}[name]


@pytest.mark.parametrize("case, want", [
    ("size_zero", errno.EINVAL), ("no_access_flags", errno.EINVAL), ("unaligned_iova", errno.EINVAL),
    ("unaligned_vaddr", errno.EINVAL), ("unknown_flag", errno.EINVAL), ("overlap", errno.EEXIST),
    ("vaddr_update_of_nothing", errno.ENOENT),
])
def test_map_dma_errno(legacy: Legacy, buf: mmap.mmap, case: str, want: int) -> None:
    with pytest.raises(OSError) as e:
        _map_case(case)(legacy, address_of(buf))
    assert e.value.errno == want, f"{case}: got {errno.errorcode.get(e.value.errno or 0)}"


@pytest.mark.parametrize("iova, size, flags, want", [
    (IOVA, PAGE, 0, errno.EINVAL),  # bisects the 2-page mapping (type1v2 refuses)
    (IOVA, 2 * PAGE, 1 << 30, errno.EINVAL),  # unknown flag
    (IOVA, 0, vfio.VFIO_DMA_UNMAP_FLAG_ALL, errno.EINVAL),  # ALL needs iova == size == 0
    (IOVA, 0, 0, errno.EINVAL),  # size 0
    (IOVA + 0x800, PAGE, 0, errno.EINVAL),  # unaligned
], ids=["bisect", "unknown-flag", "all-with-iova", "size-zero", "unaligned"])
def test_unmap_dma_errno(legacy: Legacy, buf: mmap.mmap, iova: int, size: int, flags: int, want: int) -> None:
    legacy.map(address_of(buf), IOVA, 2 * PAGE)
    with pytest.raises(OSError) as e:
        legacy.unmap(iova, size, flags)
    assert e.value.errno == want
    assert legacy.unmap(IOVA, 2 * PAGE) == 2 * PAGE  # the mapping is intact


def test_unmap_dma_of_nothing_unmaps_zero_bytes(legacy: Legacy) -> None:
    assert legacy.unmap(0x900000, PAGE) == 0


def test_unmap_dma_all(legacy: Legacy, buf: mmap.mmap) -> None:
    va = address_of(buf)
    legacy.map(va, IOVA, PAGE)
    legacy.map(va + PAGE, IOVA + 0x10000, 2 * PAGE)
    assert legacy.unmap(0, 0, vfio.VFIO_DMA_UNMAP_FLAG_ALL) == 3 * PAGE
    assert legacy.unmap(IOVA, PAGE) == 0


def test_irq_info(legacy: Legacy) -> None:
    intx = legacy.device.irq_info(vfio.VFIO_PCI_INTX_IRQ_INDEX)
    assert (intx.count, intx.flags) == (1, vfio.VFIO_IRQ_INFO_EVENTFD | vfio.VFIO_IRQ_INFO_MASKABLE
                                        | vfio.VFIO_IRQ_INFO_AUTOMASKED)
    msi = legacy.device.irq_info(vfio.VFIO_PCI_MSI_IRQ_INDEX)
    assert (msi.count, msi.flags) == (1, vfio.VFIO_IRQ_INFO_EVENTFD | vfio.VFIO_IRQ_INFO_NORESIZE)
    msix = legacy.device.irq_info(vfio.VFIO_PCI_MSIX_IRQ_INDEX)
    assert msix.count == 0  # edu has no MSI-X capability
    with pytest.raises(OSError) as e:
        legacy.device.irq_info(vfio.VFIO_PCI_NUM_IRQS)
    assert e.value.errno == errno.EINVAL


def test_msi_eventfd_fires_on_raise(legacy: Legacy, efd: int) -> None:
    dev = legacy.device
    dev.enable_bus_master()  # an MSI is a memory write by the device: no bus master, no MSI
    dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        dev.write32(EDU_IRQ_RAISE, 0x1)
        assert wait_eventfd(efd) == 1
        assert dev.read32(EDU_IRQ_STATUS) == 0x1
        dev.write32(EDU_IRQ_ACK, 0x1)
        assert dev.read32(EDU_IRQ_STATUS) == 0
    finally:
        dev.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)


def test_msi_needs_bus_master(legacy: Legacy, efd: int) -> None:
    dev = legacy.device
    cmd = struct.unpack("<H", dev.cfg_read(PCI_COMMAND, 2))[0]
    dev.cfg_write(PCI_COMMAND, struct.pack("<H", cmd & ~PCI_COMMAND_MASTER))
    dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        dev.write32(EDU_IRQ_RAISE, 0x8)
        assert eventfd_quiet(efd, 0.5), "an MSI arrived from a device without bus master"
        assert dev.ack_irq() == 0x8  # raised in the device all the same
    finally:
        dev.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)


def test_dma_needs_bus_master(legacy: Legacy, buf: mmap.mmap) -> None:
    legacy.map(address_of(buf), IOVA, BUF_SIZE)
    dev = legacy.device
    dev.enable_bus_master()
    buf[0:64] = pattern(64, seed=5)
    dev.dma(IOVA, EDU_BUFFER, 64, to_ram=False)  # the edu buffer now holds the pattern
    cmd = struct.unpack("<H", dev.cfg_read(PCI_COMMAND, 2))[0]
    dev.cfg_write(PCI_COMMAND, struct.pack("<H", cmd & ~PCI_COMMAND_MASTER))
    buf[PAGE:PAGE + 64] = bytes(64)
    dev.dma(EDU_BUFFER, IOVA + PAGE, 64, to_ram=True)  # completes, but the write never reaches memory
    assert bytes(buf[PAGE:PAGE + 64]) == bytes(64), "a device without bus master wrote to memory"


def test_edu_dma_completion_raises_msi(legacy: Legacy, buf: mmap.mmap, efd: int) -> None:
    legacy.map(address_of(buf), IOVA, BUF_SIZE)
    legacy.device.enable_bus_master()
    legacy.device.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        legacy.device.dma(IOVA, EDU_BUFFER, 64, to_ram=False, irq=True)
        assert wait_eventfd(efd) == 1
        assert legacy.device.ack_irq() == EDU_IRQ_DMA
        legacy.device.round_trip(buf, IOVA, irq_efd=efd)
    finally:
        legacy.device.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)


def test_intx_is_automasked_until_unmask(legacy: Legacy, efd: int) -> None:
    dev = legacy.device
    dev.set_irq_eventfd(vfio.VFIO_PCI_INTX_IRQ_INDEX, efd)
    try:
        for _ in range(2):
            dev.write32(EDU_IRQ_RAISE, 0x2)
            assert wait_eventfd(efd) == 1
            dev.write32(EDU_IRQ_ACK, 0x2)  # the device lowers its line
            dev.irq_action(vfio.VFIO_PCI_INTX_IRQ_INDEX, vfio.VFIO_IRQ_SET_ACTION_UNMASK)
        # masked again by the kernel after the second interrupt; a raise while masked is not signalled
        dev.write32(EDU_IRQ_RAISE, 0x2)
        assert wait_eventfd(efd) == 1
        dev.write32(EDU_IRQ_ACK, 0x2)
        dev.write32(EDU_IRQ_RAISE, 0x2)
        assert eventfd_quiet(efd), "INTx was signalled while auto-masked"
        dev.write32(EDU_IRQ_ACK, 0x2)
    finally:
        dev.disable_irq(vfio.VFIO_PCI_INTX_IRQ_INDEX)


@pytest.mark.parametrize("index, flags, count, want", [
    (vfio.VFIO_PCI_MSI_IRQ_INDEX, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_MASK, 1, errno.ENOTTY),
    (vfio.VFIO_PCI_MSI_IRQ_INDEX, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_UNMASK, 1, errno.ENOTTY),
    (vfio.VFIO_PCI_NUM_IRQS, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_TRIGGER, 0, errno.EINVAL),
    (vfio.VFIO_PCI_MSI_IRQ_INDEX, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_TRIGGER, 2, errno.EINVAL),
    (vfio.VFIO_PCI_INTX_IRQ_INDEX, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_DATA_BOOL
     | vfio.VFIO_IRQ_SET_ACTION_TRIGGER, 1, errno.EINVAL),
    # two actions: the data type is validated first, the action only by vfio-pci's switch -> ENOTTY
    (vfio.VFIO_PCI_INTX_IRQ_INDEX, vfio.VFIO_IRQ_SET_DATA_NONE | vfio.VFIO_IRQ_SET_ACTION_MASK
     | vfio.VFIO_IRQ_SET_ACTION_UNMASK, 1, errno.ENOTTY),
], ids=["msi-mask", "msi-unmask", "bad-index", "beyond-count", "two-data-types", "two-actions"])
def test_set_irqs_errno(legacy: Legacy, index: int, flags: int, count: int, want: int) -> None:
    irqs = argsz(vfio.vfio_irq_set, index=index, start=0, count=count, flags=flags)
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.device.fd, vfio.VFIO_DEVICE_SET_IRQS, irqs)
    assert e.value.errno == want


def test_device_feature_migration_is_enotty_on_edu(legacy: Legacy) -> None:
    feature = alloc_flex(vfio.vfio_device_feature, 8,
                         flags=vfio.VFIO_DEVICE_FEATURE_GET | vfio.VFIO_DEVICE_FEATURE_MIGRATION)
    with pytest.raises(OSError) as e:
        legacy.kernel.ioctl(legacy.device.fd, vfio.VFIO_DEVICE_FEATURE, feature)
    assert e.value.errno == errno.ENOTTY


# ---------------------------------------------------------------------------------------------------------
# the cdev + iommufd path


class Iommufd:
    """An iommufd with one IOAS and the edu's cdev, bound and attached; closed in reverse order."""

    def __init__(self, kernel: Any, edu: EduDevice) -> None:
        self.kernel = kernel
        self.fd = kernel.open("/dev/iommu")
        alloc = argsz(iu.iommu_ioas_alloc)
        kernel.ioctl(self.fd, iu.IOMMU_IOAS_ALLOC, alloc)
        self.ioas = int(alloc.out_ioas_id)
        assert edu.cdev is not None
        self.cdev = kernel.open(edu.cdev)
        self.device = Device(kernel, self.cdev)
        self.devid = 0
        self.hwpt = 0

    def bind_and_attach(self) -> None:
        bind = argsz(vfio.vfio_device_bind_iommufd, iommufd=self.fd)
        self.kernel.ioctl(self.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, bind)
        self.devid = int(bind.out_devid)
        attach = argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=self.ioas)
        self.kernel.ioctl(self.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach)
        self.hwpt = int(attach.pt_id)
        self.device.ack_irq()

    def map(self, vaddr: int, iova: int, length: int) -> None:
        m = argsz(iu.iommu_ioas_map, ioas_id=self.ioas, user_va=vaddr, length=length, iova=iova,
                  flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE)
        self.kernel.ioctl(self.fd, iu.IOMMU_IOAS_MAP, m)

    def unmap(self, iova: int, length: int) -> int:
        u = argsz(iu.iommu_ioas_unmap, ioas_id=self.ioas, iova=iova, length=length)
        self.kernel.ioctl(self.fd, iu.IOMMU_IOAS_UNMAP, u)
        return int(u.length)

    def close(self) -> None:
        self.kernel.close(self.cdev)
        self.kernel.close(self.fd)


@pytest.fixture
def ictx(kernel: Any, edu: EduDevice) -> Iterator[Iommufd]:
    """The edu's cdev and an iommufd (not yet bound)."""
    try:
        fd = kernel.open("/dev/iommu")
    except OSError as e:
        if e.errno == errno.ENOENT:
            pytest.skip("no /dev/iommu: this kernel has no iommufd (every Debian kernel has CONFIG_IOMMUFD unset)")
        raise
    kernel.close(fd)
    if edu.cdev is None:
        pytest.skip("no VFIO cdev for the edu device: this kernel lacks CONFIG_VFIO_DEVICE_CDEV")
    ctx = Iommufd(kernel, edu)
    yield ctx
    ctx.close()


@pytest.fixture
def bound(ictx: Iommufd) -> Iommufd:
    """The edu's cdev bound to the iommufd and attached to its IOAS."""
    ictx.bind_and_attach()
    return ictx


def test_cdev_ioctl_before_bind_is_einval(ictx: Iommufd) -> None:
    with pytest.raises(OSError) as e:
        ictx.device.info()
    assert e.value.errno == errno.EINVAL


def test_bound_cdev_blocks_the_group_path(bound: Iommufd, edu: EduDevice) -> None:
    with pytest.raises(OSError) as e:
        fd = bound.kernel.open(f"/dev/vfio/{edu.group}")
        bound.kernel.close(fd)
    assert e.value.errno == errno.EBUSY


def test_open_group_blocks_cdev_bind(ictx: Iommufd, edu: EduDevice) -> None:
    # opening the cdev itself is allowed; BIND is where the cdev and group paths exclude each other
    group = ictx.kernel.open(f"/dev/vfio/{edu.group}")
    try:
        with pytest.raises(OSError) as e:
            ictx.kernel.ioctl(ictx.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD,
                              argsz(vfio.vfio_device_bind_iommufd, iommufd=ictx.fd))
        assert e.value.errno == errno.EBUSY
    finally:
        ictx.kernel.close(group)


def test_cdev_bind_attach(bound: Iommufd) -> None:
    assert bound.devid > 0
    assert bound.hwpt not in (0, bound.ioas), "ATTACH to an IOAS reports the auto-created HWPT id"
    info = bound.device.info()
    assert info.flags & vfio.VFIO_DEVICE_FLAGS_PCI


def test_cdev_bind_twice_is_einval(bound: Iommufd) -> None:
    bind = argsz(vfio.vfio_device_bind_iommufd, iommufd=bound.fd)
    with pytest.raises(OSError) as e:
        bound.kernel.ioctl(bound.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, bind)
    assert e.value.errno == errno.EINVAL


def test_iommufd_edu_dma_round_trip(bound: Iommufd, buf: mmap.mmap) -> None:
    bound.map(address_of(buf), IOVA, BUF_SIZE)
    bound.device.enable_bus_master()
    bound.device.round_trip(buf, IOVA)
    assert bound.unmap(IOVA, BUF_SIZE) == BUF_SIZE


def test_iommufd_msi_eventfd(bound: Iommufd, efd: int) -> None:
    bound.device.enable_bus_master()
    bound.device.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        bound.device.write32(EDU_IRQ_RAISE, 0x4)
        assert wait_eventfd(efd) == 1
        assert bound.device.ack_irq() == 0x4
    finally:
        bound.device.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)


def test_ioas_unmap_of_nothing_is_enoent(bound: Iommufd) -> None:
    with pytest.raises(OSError) as e:
        bound.unmap(0x800000, PAGE)
    assert e.value.errno == errno.ENOENT


def test_ioas_unmap_partial_is_enoent(bound: Iommufd, buf: mmap.mmap) -> None:
    bound.map(address_of(buf), IOVA, 2 * PAGE)
    with pytest.raises(OSError) as e:
        bound.unmap(IOVA, PAGE)
    assert e.value.errno == errno.ENOENT
    assert bound.unmap(IOVA, 2 * PAGE) == 2 * PAGE


def test_ioas_map_overlap_is_eexist(bound: Iommufd, buf: mmap.mmap) -> None:
    bound.map(address_of(buf), IOVA, 2 * PAGE)
    with pytest.raises(OSError) as e:
        bound.map(address_of(buf) + 2 * PAGE, IOVA + PAGE, PAGE)
    assert e.value.errno == errno.EEXIST


def test_destroy_attached_ioas_is_ebusy_and_unknown_id_enoent(bound: Iommufd) -> None:
    with pytest.raises(OSError) as e:
        bound.kernel.ioctl(bound.fd, iu.IOMMU_DESTROY, argsz(iu.iommu_destroy, id=bound.ioas))
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        bound.kernel.ioctl(bound.fd, iu.IOMMU_DESTROY, argsz(iu.iommu_destroy, id=0xDEAD))
    assert e.value.errno == errno.ENOENT


def test_ioas_map_file_dma_and_change_process(bound: Iommufd, buf: mmap.mmap) -> None:
    mfd = os.memfd_create("pyvfio-dma", os.MFD_CLOEXEC)
    try:
        os.ftruncate(mfd, BUF_SIZE)
        ram = mmap.mmap(mfd, BUF_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m = argsz(iu.iommu_ioas_map_file, ioas_id=bound.ioas, fd=mfd, start=0, length=BUF_SIZE, iova=0x300000,
                  flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE)
        try:
            bound.kernel.ioctl(bound.fd, iu.IOMMU_IOAS_MAP_FILE, m)
        except OSError as err:
            if err.errno == errno.ENOTTY:
                pytest.skip("IOMMU_IOAS_MAP_FILE needs Linux 6.13")
            raise
        bound.device.enable_bus_master()
        bound.device.round_trip(ram, 0x300000)
        change = argsz(iu.iommu_ioas_change_process)
        bound.kernel.ioctl(bound.fd, iu.IOMMU_IOAS_CHANGE_PROCESS, change)  # only file maps: allowed (a no-op)
        bound.map(address_of(buf), IOVA, PAGE)
        with pytest.raises(OSError) as e:  # a user-VA mapping cannot change process
            bound.kernel.ioctl(bound.fd, iu.IOMMU_IOAS_CHANGE_PROCESS, change)
        assert e.value.errno == errno.EINVAL
        assert bound.unmap(0x300000, BUF_SIZE) == BUF_SIZE
        ram.close()
    finally:
        os.close(mfd)


# ---------------------------------------------------------------------------------------------------------
# only meaningful on a real kernel


@pytest.mark.realkernel
def test_sysfs_shows_edu_bound_to_vfio_pci(edu: EduDevice) -> None:
    dev = f"/sys/bus/pci/devices/{edu.address}"
    assert os.path.basename(os.readlink(f"{dev}/driver")) == "vfio-pci"
    assert int(os.path.basename(os.readlink(f"{dev}/iommu_group"))) == edu.group
    assert os.path.exists(f"/dev/vfio/{edu.group}")
