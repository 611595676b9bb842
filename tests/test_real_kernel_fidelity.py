"""Where the simulated kernel once disagreed with the real one: the values 7.3.4 gives in the VM lane.

Each test pins a fact measured on the VM lane's kernel (7.3.4 on QEMU 7.2 q35 with ``-device intel-iommu`` and
``-device edu``) through the syscall surface only, so it runs on both kernels: on the host against
``pyvfio.sim`` and in the guest (``python3 -m tests.vm``) against the real thing, which keeps the model honest.

- the ERR IRQ index exists on the edu although it is not PCI Express (upstream "vfio: Remove the pcie check
  for VFIO_PCI_ERR_IRQ_INDEX");
- QEMU's edu declares 4 bytes as its smallest valid access, so narrower ones never reach it: they read 0 and
  writes are dropped, through ``pread``/``pwrite`` and through an mmap of BAR0;
- QEMU 7.2's intel-iommu has 39 address bits: the usable IOVA ends at 0x7fffffffff, minus the MSI window;
- ``IOMMU_GET_HW_INFO`` answers with VT-d registers and no dirty tracking;
- type1's dirty bitmap reports every mapped page of a vfio-pci device dirty, on every read;
- the edu's config bytes no capability owns keep what is written (QEMU's ``pci_init_wmask``);
- MSI flags: Multiple Message Capable is the function's own, never ``msi_qmax`` (the kernel's refresh lands
  on the capability ID), QSIZE is clamped to ``msi_qmax``, and the low byte is otherwise a plain shadow;
- an empty iommufd fault queue polls writable, not readable, and reads empty;
- mtty, an mdev without a ``device_feature`` op, answers ENOTTY for vfio-pci's LOW_POWER features.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import struct
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import EduDevice, real_kernel_requested, require_linux
from edu_driver import EDU_BUFFER, EDU_IDENT, EDU_IDENT_VALUE, EDU_LIVENESS, PAGE, Legacy, address_of, argsz
from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array

MSI_LO, MSI_HI = 0xFEE00000, 0xFEEFFFFF
APERTURE_LAST = 0x7FFFFFFFFF  # 39 address bits
VTD_CAP_REG, VTD_ECAP_REG = 0xD2008C22260286, 0xF00F4A
IOVA = 0x100000  # below the edu's 28-bit DMA mask
EDU_DMA_SRC = 0x80
ERR = vfio.VFIO_PCI_ERR_IRQ_INDEX


@pytest.fixture
def legacy(kernel: Any, edu: EduDevice) -> Iterator[Legacy]:
    lg = Legacy(kernel, edu)
    yield lg
    lg.close()


@pytest.fixture
def efd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


# ---------------------------------------------------------------------------------------------------------
# the ERR IRQ index on a conventional PCI device


def test_err_irq_info_on_the_edu(legacy: Legacy) -> None:
    require_linux(legacy.kernel, (7, 3), "the ERR index on conventional PCI (Debian 6.12 answers EINVAL: it still required a PCIe capability)")
    info = legacy.device.irq_info(ERR)
    assert (info.flags, info.count) == (vfio.VFIO_IRQ_INFO_EVENTFD | vfio.VFIO_IRQ_INFO_NORESIZE, 1)


def test_err_irq_trigger_on_the_edu(legacy: Legacy, efd: int) -> None:
    require_linux(legacy.kernel, (7, 3), "the ERR index on conventional PCI (Debian 6.12 answers EINVAL: it still required a PCIe capability)")
    dev = legacy.device
    dev.set_irq_eventfd(ERR, efd)
    dev.set_irq_eventfd(ERR, efd)  # replacing it is fine
    bool_set = alloc_flex(vfio.vfio_irq_set, 1, index=ERR, start=0, count=1,
                          flags=vfio.VFIO_IRQ_SET_DATA_BOOL | vfio.VFIO_IRQ_SET_ACTION_TRIGGER)
    flex_array(bool_set)[0] = 0
    assert legacy.kernel.ioctl(dev.fd, vfio.VFIO_DEVICE_SET_IRQS, bool_set) == 0
    dev.disable_irq(ERR)
    with pytest.raises(OSError) as e:  # DATA_NONE loop-back with no eventfd left
        dev.irq_action(ERR, vfio.VFIO_IRQ_SET_ACTION_TRIGGER)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        dev.irq_action(ERR, vfio.VFIO_IRQ_SET_ACTION_TRIGGER, count=2)
    assert e.value.errno == errno.EINVAL
    for action in (vfio.VFIO_IRQ_SET_ACTION_MASK, vfio.VFIO_IRQ_SET_ACTION_UNMASK):
        with pytest.raises(OSError) as e:
            dev.irq_action(ERR, action)
        assert e.value.errno == errno.ENOTTY


# ---------------------------------------------------------------------------------------------------------
# edu MMIO narrower than 4 bytes


@pytest.mark.parametrize("reg", [EDU_IDENT, EDU_LIVENESS, 0x20, EDU_DMA_SRC, EDU_BUFFER])
def test_edu_narrow_reads_return_zero(legacy: Legacy, reg: int) -> None:
    assert (legacy.pread(reg, 1), legacy.pread(reg, 2), legacy.pread(reg + 2, 2)) == (b"\0", b"\0\0", b"\0\0")


def test_edu_unaligned_and_wide_reads(legacy: Legacy) -> None:
    assert struct.unpack("<I", legacy.pread(EDU_IDENT, 4))[0] == EDU_IDENT_VALUE
    # vfio-pci splits an unaligned access into 1- and 2-byte pieces, each refused by QEMU
    assert legacy.pread(EDU_IDENT + 1, 4) == legacy.pread(EDU_IDENT + 3, 4) == bytes(4)
    assert legacy.pread(EDU_IDENT, 3) == bytes(3)
    # an aligned 8-byte access below 0x80 reaches the edu, which answers all ones
    assert legacy.pread(EDU_IDENT, 8) == legacy.pread(0x20, 8) == b"\xff" * 8


def test_edu_narrow_writes_are_dropped(legacy: Legacy) -> None:
    dev, kernel = legacy.device, legacy.kernel
    dev.write32(EDU_LIVENESS, 0x11223344)
    assert dev.read32(EDU_LIVENESS) == 0xEEDDCCBB
    assert kernel.pwrite(dev.fd, b"\xaa\xbb", legacy.bar0.offset + EDU_LIVENESS) == 2
    assert kernel.pwrite(dev.fd, b"\xcc", legacy.bar0.offset + EDU_LIVENESS) == 1
    assert dev.read32(EDU_LIVENESS) == 0xEEDDCCBB
    kernel.pwrite(dev.fd, struct.pack("<Q", 0x5566778899AABBCC), legacy.bar0.offset + EDU_DMA_SRC)
    assert kernel.pwrite(dev.fd, b"\x11\x22", legacy.bar0.offset + EDU_DMA_SRC) == 2
    assert legacy.pread(EDU_DMA_SRC, 8) == struct.pack("<Q", 0x5566778899AABBCC)


def test_edu_narrow_mmap_accesses(legacy: Legacy) -> None:
    dev = legacy.device
    m = legacy.kernel.mmap(dev.fd, legacy.bar0.size, legacy.bar0.offset, mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        assert struct.unpack("<I", bytes(m[0:4]))[0] == EDU_IDENT_VALUE
        assert (bytes(m[0:1]), bytes(m[0:2]), bytes(m[2:4])) == (b"\0", b"\0\0", b"\0\0")
        dev.write32(EDU_LIVENESS, 0)
        m[EDU_LIVENESS:EDU_LIVENESS + 2] = b"\x34\x12"
        assert dev.read32(EDU_LIVENESS) == 0xFFFFFFFF
    finally:
        m.close()


# ---------------------------------------------------------------------------------------------------------
# type1: GET_INFO and the aperture


def test_type1_get_info_caps(legacy: Legacy) -> None:
    info = argsz(vfio.vfio_iommu_type1_info)
    legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_GET_INFO, info)
    assert (info.argsz, info.flags, info.iova_pgsizes, info.cap_offset) == (
        120, vfio.VFIO_IOMMU_INFO_PGSIZES | vfio.VFIO_IOMMU_INFO_CAPS, 0x40201000, 0)

    class Full(ctypes.Structure):
        _fields_ = [("info", vfio.vfio_iommu_type1_info), ("caps", ctypes.c_uint8 * (120 - ctypes.sizeof(info)))]

    full = Full()
    full.info.argsz = 120
    legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_GET_INFO, full)
    raw = bytes(full)
    assert full.info.cap_offset == 24
    caps = {}
    off = full.info.cap_offset
    while off:
        cap_id, version, nxt = struct.unpack_from("<HHI", raw, off)
        caps[cap_id] = (version, off)
        off = nxt
    assert {k: v[0] for k, v in caps.items()} == {vfio.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
                                                  vfio.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: 1,
                                                  vfio.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: 1}
    mig = caps[vfio.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION][1]
    assert struct.unpack_from("<I4xQQ", raw, mig + 8) == (0, 0x1000, 0x10000000)
    assert struct.unpack_from("<I", raw, caps[vfio.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL][1] + 8) == (65535,)
    rng = caps[vfio.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE][1]
    (nr,) = struct.unpack_from("<I", raw, rng + 8)
    ranges = [struct.unpack_from("<QQ", raw, rng + 16 + 16 * i) for i in range(nr)]
    assert ranges == [(0, MSI_LO - 1), (MSI_HI + 1, APERTURE_LAST)]


def test_type1_map_above_the_aperture_einval(legacy: Legacy) -> None:
    buf = mmap.mmap(-1, PAGE)
    try:
        for iova in (APERTURE_LAST + 1, MSI_LO):
            m = argsz(vfio.vfio_iommu_type1_dma_map, flags=vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE,
                      vaddr=address_of(buf), iova=iova, size=PAGE)
            with pytest.raises(OSError) as e:
                legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_MAP_DMA, m)
            assert e.value.errno == errno.EINVAL
        m = argsz(vfio.vfio_iommu_type1_dma_map, flags=vfio.VFIO_DMA_MAP_FLAG_READ, vaddr=address_of(buf),
                  iova=APERTURE_LAST + 1 - PAGE, size=PAGE)
        legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_MAP_DMA, m)  # the last page is usable
        u = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=APERTURE_LAST + 1 - PAGE, size=PAGE)
        legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_UNMAP_DMA, u)
        assert u.size == PAGE
    finally:
        buf.close()


# ---------------------------------------------------------------------------------------------------------
# type1 dirty bitmap: every mapped page


class DirtyGet(ctypes.Structure):
    _fields_ = [("hdr", vfio.vfio_iommu_type1_dirty_bitmap), ("get", vfio.vfio_iommu_type1_dirty_bitmap_get)]


def _dirty_bits(legacy: Legacy, iova: int, size: int) -> int:
    bits = ctypes.c_uint64(0)
    arg = DirtyGet()
    arg.hdr.argsz, arg.hdr.flags = ctypes.sizeof(arg), vfio.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP
    arg.get.iova, arg.get.size = iova, size
    arg.get.bitmap.pgsize, arg.get.bitmap.size = PAGE, 8
    arg.get.bitmap.data = ctypes.cast(ctypes.pointer(bits), type(arg.get.bitmap.data))
    legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_DIRTY_PAGES, arg)
    return int(bits.value)


def test_type1_dirty_bitmap_reports_every_mapped_page(legacy: Legacy) -> None:
    buf = mmap.mmap(-1, 4 * PAGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
    size = 4 * PAGE
    m = argsz(vfio.vfio_iommu_type1_dma_map, flags=vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE,
              vaddr=address_of(buf), iova=IOVA, size=size)
    legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_MAP_DMA, m)
    try:
        start = argsz(vfio.vfio_iommu_type1_dirty_bitmap, flags=vfio.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
        legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_DIRTY_PAGES, start)
        assert _dirty_bits(legacy, IOVA, size) == 0b1111  # nothing written yet: all dirty
        assert _dirty_bits(legacy, IOVA, size) == 0b1111  # reading does not clean them
        legacy.device.enable_bus_master()
        legacy.device.dma(EDU_BUFFER, IOVA + PAGE, 64, to_ram=True)
        assert _dirty_bits(legacy, IOVA, size) == 0b1111
        stop = argsz(vfio.vfio_iommu_type1_dirty_bitmap, flags=vfio.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)
        legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_DIRTY_PAGES, stop)
    finally:
        u = argsz(vfio.vfio_iommu_type1_dma_unmap, iova=IOVA, size=size)
        legacy.kernel.ioctl(legacy.container, vfio.VFIO_IOMMU_UNMAP_DMA, u)
        buf.close()


# ---------------------------------------------------------------------------------------------------------
# iommufd: IOVA ranges, GET_HW_INFO, dirty tracking


class Bound:
    """An iommufd with one IOAS and the edu's cdev bound to it (not attached)."""

    def __init__(self, kernel: Any, edu: EduDevice) -> None:
        if edu.cdev is None:
            pytest.skip("no VFIO cdev on this kernel")
        if not os.path.exists("/dev/iommu") and not hasattr(kernel, "add_device"):
            pytest.skip("no /dev/iommu on this kernel")
        self.kernel = kernel
        self.fd = kernel.open("/dev/iommu")
        alloc = argsz(iu.iommu_ioas_alloc)
        kernel.ioctl(self.fd, iu.IOMMU_IOAS_ALLOC, alloc)
        self.ioas = int(alloc.out_ioas_id)
        self.cdev = kernel.open(edu.cdev)
        bind = argsz(vfio.vfio_device_bind_iommufd, iommufd=self.fd)
        kernel.ioctl(self.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, bind)
        self.devid = int(bind.out_devid)

    def ranges(self) -> tuple[int, list[tuple[int, int]]]:
        arr = (iu.iommu_iova_range * 8)()
        r = argsz(iu.iommu_ioas_iova_ranges, ioas_id=self.ioas, num_iovas=8, allowed_iovas=ctypes.addressof(arr))
        self.kernel.ioctl(self.fd, iu.IOMMU_IOAS_IOVA_RANGES, r)
        return int(r.out_iova_alignment), [(int(arr[i].start), int(arr[i].last)) for i in range(r.num_iovas)]

    def hw_info(self, data: Any = None, **fields: Any) -> Any:
        h = argsz(iu.iommu_hw_info, dev_id=self.devid, **fields)
        if data is not None:
            h.data_len, h.data_uptr = ctypes.sizeof(data), ctypes.addressof(data)
        self.kernel.ioctl(self.fd, iu.IOMMU_GET_HW_INFO, h)
        return h

    def close(self) -> None:
        self.kernel.close(self.cdev)
        self.kernel.close(self.fd)


@pytest.fixture
def bound(kernel: Any, edu: EduDevice) -> Iterator[Bound]:
    b = Bound(kernel, edu)
    yield b
    b.close()


def test_iommufd_iova_ranges_after_attach(bound: Bound) -> None:
    u64_max = (1 << 64) - 1
    assert bound.ranges() == (1, [(0, u64_max)])  # binding alone narrows nothing
    attach = argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=bound.ioas)
    bound.kernel.ioctl(bound.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach)
    assert bound.ranges() == (PAGE, [(0, MSI_LO - 1), (MSI_HI + 1, APERTURE_LAST)])


def test_iommufd_get_hw_info_is_intel_vtd(bound: Bound) -> None:
    probe = bound.hw_info()
    assert (probe.data_len, probe.out_data_type) == (ctypes.sizeof(iu.iommu_hw_info_vtd),
                                                     iu.IOMMU_HW_INFO_TYPE_INTEL_VTD)
    vtd = iu.iommu_hw_info_vtd()
    h = bound.hw_info(vtd)
    assert (h.out_data_type, h.out_capabilities, h.out_max_pasid_log2) == (
        iu.IOMMU_HW_INFO_TYPE_INTEL_VTD, iu.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, 0)
    assert (vtd.flags, vtd.cap_reg, vtd.ecap_reg) == (iu.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, VTD_CAP_REG,
                                                      VTD_ECAP_REG)
    h = bound.hw_info(flags=iu.IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type=iu.IOMMU_HW_INFO_TYPE_INTEL_VTD)
    assert h.out_data_type == iu.IOMMU_HW_INFO_TYPE_INTEL_VTD
    with pytest.raises(OSError) as e:
        bound.hw_info(flags=iu.IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type=iu.IOMMU_HW_INFO_TYPE_ARM_SMMUV3)
    assert e.value.errno == errno.EOPNOTSUPP


def test_iommufd_hwpt_alloc_without_dirty_tracking(bound: Bound) -> None:
    for flags in (iu.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, iu.IOMMU_HWPT_ALLOC_NEST_PARENT):
        hwpt = argsz(iu.iommu_hwpt_alloc, dev_id=bound.devid, pt_id=bound.ioas, flags=flags)
        with pytest.raises(OSError) as e:
            bound.kernel.ioctl(bound.fd, iu.IOMMU_HWPT_ALLOC, hwpt)
        assert e.value.errno == errno.EOPNOTSUPP
    plain = argsz(iu.iommu_hwpt_alloc, dev_id=bound.devid, pt_id=bound.ioas)
    bound.kernel.ioctl(bound.fd, iu.IOMMU_HWPT_ALLOC, plain)
    assert plain.out_hwpt_id > bound.ioas
    bound.kernel.ioctl(bound.fd, iu.IOMMU_DESTROY, argsz(iu.iommu_destroy, id=plain.out_hwpt_id))


# ---------------------------------------------------------------------------------------------------------
# config space: the edu's unclaimed bytes, MSI flags

CFG = vfio.VFIO_PCI_CONFIG_REGION_INDEX << 40
MSI_CAP = 0x40  # the edu's only capability: MSI, 64-bit, 1 vector, 14 bytes
MSI_FLAGS = MSI_CAP + 2


def _cfg(legacy: Legacy, off: int, n: int) -> int:
    return int.from_bytes(legacy.kernel.pread(legacy.device.fd, n, CFG + off), "little")


def _cfg_write(legacy: Legacy, off: int, n: int, value: int) -> None:
    assert legacy.kernel.pwrite(legacy.device.fd, value.to_bytes(n, "little"), CFG + off) == n


@pytest.mark.parametrize("off,n", [(0x4E, 2), (0x50, 4), (0x80, 4), (0xF0, 4), (0xFC, 4), (0x91, 1)])
def test_edu_unclaimed_config_bytes_keep_writes(legacy: Legacy, off: int, n: int) -> None:
    """vfio passes them raw; QEMU made every byte from 0x40 writable and only the MSI cap took its 14 back."""
    assert _cfg(legacy, off, n) == 0
    value = 0xA5C3B4D2 & ((1 << (8 * n)) - 1)
    _cfg_write(legacy, off, n, value)
    try:
        assert _cfg(legacy, off, n) == value
        assert _cfg(legacy, off & ~3, 4) == value << (8 * (off & 3))  # the neighbours are untouched
    finally:
        _cfg_write(legacy, off, n, 0)
    assert _cfg(legacy, off, n) == 0


def test_edu_msi_flags_are_the_hardware_mmc_and_a_shadow(legacy: Legacy, efd: int) -> None:
    dev = legacy.device
    assert _cfg(legacy, MSI_CAP, 4) == 0x00800005  # ID 5, NEXT 0, flags: 64-bit, 1 vector
    _cfg_write(legacy, MSI_FLAGS, 2, 0x0080 | 0x70)  # QSIZE beyond msi_qmax (0): clamped
    assert _cfg(legacy, MSI_FLAGS, 2) == 0x0080
    _cfg_write(legacy, MSI_FLAGS, 2, 0)  # the low byte is all virtual and writable: 64-bit reads gone
    assert _cfg(legacy, MSI_FLAGS, 2) == 0
    _cfg_write(legacy, MSI_FLAGS, 2, 0x0080)
    dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
    try:
        assert _cfg(legacy, MSI_CAP, 4) == 0x00800005  # SET_IRQS changes neither the flags nor the ID
        _cfg_write(legacy, MSI_FLAGS, 2, 0x0080 | 0x70 | 1)  # ENABLE sticks while MSI is the active type
        assert _cfg(legacy, MSI_FLAGS, 2) == 0x0081
    finally:
        dev.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)
    assert _cfg(legacy, MSI_FLAGS, 2) == 0x0081  # disabling by ioctl leaves the shadow as written
    _cfg_write(legacy, MSI_FLAGS, 2, 0x0081)  # ... until the next write, with MSI off, drops ENABLE
    assert _cfg(legacy, MSI_FLAGS, 2) == 0x0080


# ---------------------------------------------------------------------------------------------------------
# the iommufd fault queue descriptor


def test_empty_fault_queue_polls_writable_only(kernel: Any) -> None:
    try:
        ictx = kernel.open("/dev/iommu")
    except OSError as e:
        if e.errno == errno.ENOENT:
            pytest.skip("no /dev/iommu: this kernel has no iommufd (Debian kernels ship CONFIG_IOMMUFD unset)")
        raise
    try:
        alloc = argsz(iu.iommu_fault_alloc)
        kernel.ioctl(ictx, iu.IOMMU_FAULT_QUEUE_ALLOC, alloc)
        fd = int(alloc.out_fault_fd)
        try:
            assert select.select([fd], [fd], [fd], 0) == ([], [fd], [])
            p = select.poll()
            p.register(fd, select.POLLIN | select.POLLOUT | select.POLLPRI)
            assert p.poll(0) == [(fd, select.POLLOUT)]
            size = ctypes.sizeof(iu.iommu_hwpt_pgfault)
            data = kernel.read(fd, size) if hasattr(kernel, "read") else os.read(fd, size)
            assert data == b""
            assert select.select([fd], [], [], 0) == ([], [], [])
        finally:
            kernel.close(fd)
    finally:
        kernel.close(ictx)


# ---------------------------------------------------------------------------------------------------------
# mtty: no vfio-pci device features

MTTY_TYPE = Path("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1")


@pytest.fixture
def mtty_fd(kernel: Any) -> Iterator[int]:
    """One mtty opened through its group and a type1v2 container (an mdev on a real kernel)."""
    mdev = None
    if real_kernel_requested():
        if not MTTY_TYPE.is_dir():
            pytest.skip("no mtty parent device (mtty.ko not loaded): the VM lane loads it")
        name = str(uuid.uuid4())
        (MTTY_TYPE / "create").write_text(name)
        mdev = Path("/sys/bus/mdev/devices") / name
        group = int(os.path.basename(os.readlink(mdev / "iommu_group")))
    else:
        vdev = kernel.add_device("mtty")
        name, group = vdev.name, int(vdev.group_id)
    container = kernel.open("/dev/vfio/vfio")
    grp = kernel.open(f"/dev/vfio/{group}")
    try:
        kernel.ioctl(grp, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        kernel.ioctl(container, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
        fd = kernel.ioctl(grp, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(name.encode()))
        yield fd
        kernel.close(fd)
    finally:
        kernel.close(grp)
        kernel.close(container)
        if mdev is not None:
            (mdev / "remove").write_text("1")


@pytest.mark.parametrize("feature", [vfio.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
                                     vfio.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
                                     vfio.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
                                     vfio.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN])
@pytest.mark.parametrize("probe", [True, False])
def test_mtty_has_no_vfio_pci_features(kernel: Any, mtty_fd: int, feature: int, probe: bool) -> None:
    flags = feature | vfio.VFIO_DEVICE_FEATURE_SET | (vfio.VFIO_DEVICE_FEATURE_PROBE if probe else 0)
    arg = alloc_flex(vfio.vfio_device_feature, 16, flags=flags)
    with pytest.raises(OSError) as e:
        kernel.ioctl(mtty_fd, vfio.VFIO_DEVICE_FEATURE, arg)
    assert e.value.errno == errno.ENOTTY
