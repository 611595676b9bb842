"""vfio-pci device fd on the simulated kernel: SEMANTICS 3 (info, regions, reset, hot reset, ioeventfd,
features, read/write/mmap) and 4.1/4.2 (config-space virtualization, BAR sizing).

Interrupts (SET_IRQS) are in ``test_vfio_pci_irqs.py``; the edu device's own
registers in ``test_edu.py``.  Every test goes through the syscall surface
(``pyvfio.sim.Kernel``); the kernel fixture fails the test if a model file is
left open.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Iterator

import pytest

import pyvfio.sim
from pyvfio.errors import VfioError
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import alloc_flex, flex_array
from test_vfio_pci_fixtures import (
    CFG, PAGE, PciDev, expect, fd_count, kernel_fixture, new_eventfd, open_dev, settle, take, wait,
)

RW = uv.VFIO_REGION_INFO_FLAG_READ | uv.VFIO_REGION_INFO_FLAG_WRITE
MMAP = uv.VFIO_REGION_INFO_FLAG_MMAP
CAPS = uv.VFIO_REGION_INFO_FLAG_CAPS


@pytest.fixture
def k() -> Iterator[pyvfio.sim.Kernel]:
    yield from kernel_fixture()


@pytest.fixture
def edu(k: pyvfio.sim.Kernel) -> Iterator[PciDev]:
    d = open_dev(k)
    yield d
    d.close()


@pytest.fixture
def gen(k: pyvfio.sim.Kernel) -> Iterator[PciDev]:
    """A configurable function: PCIe with FLR and AER, PM, MSI x4 maskable, MSI-X x4 in BAR0, a 64-bit
    prefetchable BAR2, an I/O BAR4, a ROM, a vendor cap and a cap vfio-pci hides."""
    d = open_dev(k, "pci", bars=[{"index": 0, "size": 0x4000}, {"index": 2, "size": 0x10000, "kind": "mem64",
                                                                 "prefetch": True},
                                 {"index": 4, "size": 0x20, "kind": "io"}],
                 msi=4, msi_maskable=True, msix=4, msix_bar=0, express=True, pm=True,
                 vendor_cap=b"\x11\x22\x33\x44\x55", hidden_cap=True, rom_size=0x8000)
    yield d
    d.close()


# =====================================================================================================
# VFIO_DEVICE_GET_INFO
# =====================================================================================================
def test_get_info_pci_no_reset_on_root_bus(edu: PciDev) -> None:
    """SEMANTICS 3 GET_INFO: PCI flag, 9 regions, 5 irqs; edu on the root bus has no reset method (real q35)."""
    info = edu.info()
    assert info.flags == uv.VFIO_DEVICE_FLAGS_PCI
    assert (info.num_regions, info.num_irqs) == (uv.VFIO_PCI_NUM_REGIONS, uv.VFIO_PCI_NUM_IRQS)
    assert info.cap_offset == 0 and info.argsz == 24


def test_get_info_reset_flag_with_flr(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 GET_INFO: RESET when the function has a reset method (PCIe FLR here)."""
    d = open_dev(k, "edu", express=True)
    assert d.info().flags == uv.VFIO_DEVICE_FLAGS_PCI | uv.VFIO_DEVICE_FLAGS_RESET
    d.close()


@pytest.mark.parametrize("argsz", [0, 8, 15])
def test_get_info_short_argsz_einval(edu: PciDev, argsz: int) -> None:
    """SEMANTICS 3 GET_INFO: argsz < offsetofend(num_irqs) (16) -> EINVAL."""
    expect(errno.EINVAL, edu.info, argsz)


def test_get_info_copies_back_only_argsz_bytes(edu: PciDev) -> None:
    """SEMANTICS 3 GET_INFO: the fixed part is copied back with min(argsz, sizeof): bytes past argsz untouched."""
    info = uv.vfio_device_info(argsz=16, cap_offset=0xDEAD, pad=0xBEEF)
    edu.k.ioctl(edu.fd, uv.VFIO_DEVICE_GET_INFO, info)
    assert info.num_irqs == 5 and info.cap_offset == 0xDEAD and info.pad == 0xBEEF


# =====================================================================================================
# VFIO_DEVICE_GET_REGION_INFO
# =====================================================================================================
def test_region_info_edu(edu: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO: BAR0 1 MiB RW+MMAP at offset 0; absent BARs and ROM size 0 flags 0;
    CONFIG 256 bytes RW; offset = index << 40."""
    r = edu.region(0)
    assert (r.size, r.flags, r.offset, r.cap_offset) == (1 << 20, RW | MMAP, 0, 0)
    for i in range(1, 7):
        r = edu.region(i)
        assert (r.size, r.flags, r.offset) == (0, 0, i << 40)
    r = edu.region(uv.VFIO_PCI_CONFIG_REGION_INDEX)
    assert (r.size, r.flags, r.offset) == (256, RW, 7 << 40)


def test_region_info_pcie_config_is_4k(gen: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO: CONFIG is 4096 bytes for a PCIe function."""
    assert gen.region(uv.VFIO_PCI_CONFIG_REGION_INDEX).size == 4096


def test_region_info_64bit_bar_upper_half_is_empty(gen: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO: a 64-bit BAR is reported at its first index; the upper half has size 0, flags 0."""
    r2, r3 = gen.region(2), gen.region(3)
    assert (r2.size, r2.flags) == (0x10000, RW | MMAP)
    assert (r3.size, r3.flags) == (0, 0)


def test_region_info_io_bar_has_no_mmap(gen: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO: an I/O BAR is R|W without MMAP."""
    r = gen.region(4)
    assert (r.size, r.flags) == (0x20, RW)


def test_region_info_rom_read_only(gen: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO: the ROM region is READ only with the ROM BAR size."""
    r = gen.region(uv.VFIO_PCI_ROM_REGION_INDEX)
    assert (r.size, r.flags) == (0x8000, uv.VFIO_REGION_INFO_FLAG_READ)
    assert gen.k.pread(gen.fd, 2, 6 << 40) == b"\x55\xaa"


def test_region_info_msix_mappable_cap_protocol(gen: PciDev) -> None:
    """SEMANTICS 3 GET_REGION_INFO + cap chain: the MSI-X BAR carries MSIX_MAPPABLE (id 3, header only).
    With argsz 32 the kernel sets CAPS, asks for 40 and leaves cap_offset 0; with 40 it appends the cap."""
    r = gen.region(0)
    assert r.flags == RW | MMAP | CAPS and r.argsz == 40 and r.cap_offset == 0
    buf = (ctypes.c_uint8 * 40)()
    info = uv.vfio_region_info.from_buffer(buf)
    info.argsz, info.index = 40, 0
    gen.k.ioctl(gen.fd, uv.VFIO_DEVICE_GET_REGION_INFO, buf)
    assert info.cap_offset == 32 and info.flags & CAPS
    hdr = uv.vfio_info_cap_header.from_buffer(buf, 32)
    assert (hdr.id, hdr.version, hdr.next) == (uv.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 0)


@pytest.mark.parametrize("argsz", [0, 16, 31])
def test_region_info_short_argsz_einval(edu: PciDev, argsz: int) -> None:
    """SEMANTICS 3 GET_REGION_INFO: argsz < 32 -> EINVAL."""
    expect(errno.EINVAL, edu.region, 0, argsz)


@pytest.mark.parametrize("index", [uv.VFIO_PCI_VGA_REGION_INDEX, 9, 100, 0xFFFFFFFF])
def test_region_info_bad_index_einval(edu: PciDev, index: int) -> None:
    """SEMANTICS 3 GET_REGION_INFO: VGA on a non-VGA device and any index >= num_regions -> EINVAL."""
    expect(errno.EINVAL, edu.region, index)


# =====================================================================================================
# VFIO_DEVICE_GET_IRQ_INFO
# =====================================================================================================
def test_irq_info_edu(edu: PciDev) -> None:
    """SEMANTICS 3 GET_IRQ_INFO: INTx EVENTFD|MASKABLE|AUTOMASKED x1; MSI EVENTFD|NORESIZE x1; no MSI-X; ERR and
    REQ EVENTFD|NORESIZE x1 (ERR on a conventional PCI device too: 7.3.4 in the VM lane)."""
    E, M, A, N = (uv.VFIO_IRQ_INFO_EVENTFD, uv.VFIO_IRQ_INFO_MASKABLE, uv.VFIO_IRQ_INFO_AUTOMASKED,
                  uv.VFIO_IRQ_INFO_NORESIZE)
    got = {i: (edu.irq_info(i).flags, edu.irq_info(i).count) for i in (0, 1, 2, 3, 4)}
    assert got == {0: (E | M | A, 1), 1: (E | N, 1), 2: (E | N, 0), 3: (E | N, 1), 4: (E | N, 1)}


def test_irq_info_msix_dynamic_and_err_on_pcie(gen: PciDev) -> None:
    """SEMANTICS 3 GET_IRQ_INFO: MSI count from QMASK (4); MSI-X with dynamic allocation has no NORESIZE;
    ERR exists (count 1) on PCIe."""
    assert (gen.irq_info(1).count, gen.irq_info(2).count) == (4, 4)
    assert gen.irq_info(2).flags == uv.VFIO_IRQ_INFO_EVENTFD
    assert gen.irq_info(3).count == 1


def test_irq_info_err_on_conventional_pci(edu: PciDev) -> None:
    """vfio_pci_ioctl_get_irq_info: 7.3.4 (upstream "vfio: Remove the pcie check for VFIO_PCI_ERR_IRQ_INDEX")
    reports ERR on the edu, which has no PCIe capability: EVENTFD|NORESIZE, count 1 (older kernels: EINVAL)."""
    info = edu.irq_info(uv.VFIO_PCI_ERR_IRQ_INDEX)
    assert (info.flags, info.count) == (uv.VFIO_IRQ_INFO_EVENTFD | uv.VFIO_IRQ_INFO_NORESIZE, 1)


@pytest.mark.parametrize("index", [5, 6, 0xFFFFFFFF])
def test_irq_info_bad_index_einval(edu: PciDev, index: int) -> None:
    """SEMANTICS 3 GET_IRQ_INFO: index >= num_irqs -> EINVAL."""
    expect(errno.EINVAL, edu.irq_info, index)


@pytest.mark.parametrize("argsz", [0, 15])
def test_irq_info_short_argsz_einval(edu: PciDev, argsz: int) -> None:
    """SEMANTICS 3 GET_IRQ_INFO: argsz < 16 -> EINVAL."""
    i = uv.vfio_irq_info(argsz=argsz, index=0)
    expect(errno.EINVAL, edu.k.ioctl, edu.fd, uv.VFIO_DEVICE_GET_IRQ_INFO, i)


def test_irq_info_no_pin(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 GET_IRQ_INFO: INTx count 0 when the interrupt pin is 0 (config PIN reads 0 too)."""
    d = open_dev(k, "pci", irq_pin=0)
    assert d.irq_info(0).count == 0 and d.cfg(0x3D, 1) == 0
    d.close()


# =====================================================================================================
# Unsupported ioctls
# =====================================================================================================
@pytest.mark.parametrize("request_", [uv.VFIO_DEVICE_QUERY_GFX_PLANE, uv.VFIO_DEVICE_GET_GFX_DMABUF,
                                      uv.VFIO_MIG_GET_PRECOPY_INFO, uv.VFIO_DEVICE_FEATURE + 13],
                         ids=["QUERY_GFX_PLANE", "GET_GFX_DMABUF", "PRECOPY_INFO", "unassigned_nr"])
def test_unsupported_ioctl_enotty(edu: PciDev, request_: int) -> None:
    """SEMANTICS 3: vfio-pci answers ioctls it does not implement (the gfx pair is mdev-only) with ENOTTY."""
    expect(errno.ENOTTY, edu.k.ioctl, edu.fd, request_, uv.vfio_device_gfx_plane_info(argsz=64))


# =====================================================================================================
# Config space (SEMANTICS 4.1, 4.2)
# =====================================================================================================
def test_config_ids_and_class(edu: PciDev) -> None:
    """SEMANTICS 4.1: vendor/device/class pass through: 1234:11e8, class 00ff00, revision 0x10."""
    assert (edu.cfg(0, 2), edu.cfg(2, 2), edu.cfg(8, 4)) == (0x1234, 0x11E8, 0x00FF0010)


def test_config_ids_not_writable(edu: PciDev) -> None:
    """SEMANTICS 4.1 basic perms: VENDOR/DEVICE ID have no write bits: the write 'succeeds' and changes nothing."""
    assert edu.cfg_write(0, 4, 0xFFFFFFFF) == 4
    assert edu.cfg(0, 4) == 0x11E81234


def test_config_status_write_dropped(edu: PciDev) -> None:
    """SEMANTICS 4.1 / pitfall 4: STATUS is NO_WRITE, so W1C cannot clear anything and CAP_LIST stays."""
    before = edu.cfg(6, 2)
    edu.cfg_write(6, 2, 0xFFFF)
    assert edu.cfg(6, 2) == before and before & 0x10


def test_config_cap_list_read_only(edu: PciDev) -> None:
    """SEMANTICS 4.1 basic perms: CAPABILITY_LIST is virtual, not writable; edu's MSI cap is at 0x40."""
    edu.cfg_write(0x34, 1, 0x80)
    assert edu.cfg(0x34, 1) == 0x40 and edu.cfg(0x40, 1) == 0x05


def test_config_interrupt_line_virtual_pin_read_only(edu: PciDev) -> None:
    """SEMANTICS 4.1: INTERRUPT_LINE is a pure shadow (writable); INTERRUPT_PIN is read-only (1 = INTA)."""
    edu.cfg_write(0x3C, 1, 0x5A)
    edu.cfg_write(0x3D, 1, 3)
    assert (edu.cfg(0x3C, 1), edu.cfg(0x3D, 1)) == (0x5A, 1)


def test_config_command_memory_passes_to_device(edu: PciDev) -> None:
    """SEMANTICS 4.1: COMMAND.MEMORY is not virtual: clearing it stops BAR access (EIO), setting it restores."""
    assert edu.cfg(4, 2) & 0x2  # pci_enable_device turned decode on at open
    edu.cfg_write(4, 2, edu.cfg(4, 2) & ~0x2)
    assert not edu.cfg(4, 2) & 0x2
    expect(errno.EIO, edu.bar_r, 0)
    expect(errno.EIO, edu.bar_w, 4, 1)
    edu.cfg_write(4, 2, edu.cfg(4, 2) | 0x2)
    assert edu.bar_r(0) == 0x010000ED


def test_config_bus_master_cleared_at_open(edu: PciDev) -> None:
    """vfio_pci_core_enable: bus mastering is off when the device is opened; the user turns it on."""
    assert not edu.cfg(4, 2) & 0x4
    edu.enable_bus_master()
    assert edu.cfg(4, 2) & 0x4


def test_config_intx_disable_is_virtual(edu: PciDev) -> None:
    """SEMANTICS 4.1: INTX_DISABLE is virtual: it reads back as written (the device's own bit is vfio's)."""
    edu.cfg_write(4, 2, edu.cfg(4, 2) | 0x400)
    assert edu.cfg(4, 2) & 0x400
    edu.cfg_write(5, 1, 0)
    assert not edu.cfg(4, 2) & 0x400


def test_bar_sizing_mem32(edu: PciDev) -> None:
    """SEMANTICS 4.2: writing all-ones to BAR0 reads back ~(size-1) | type bits (1 MiB, 32-bit memory)."""
    edu.cfg_write(0x10, 4, 0xFFFFFFFF)
    assert edu.cfg(0x10, 4) == 0xFFF00000
    assert edu.bar_r(0) == 0x010000ED  # the value never reached the real BAR


def test_bar_sizing_unimplemented_reads_zero(edu: PciDev) -> None:
    """SEMANTICS 4.2: an unimplemented BAR reads 0 even after an all-ones write."""
    for off in range(0x14, 0x28, 4):
        edu.cfg_write(off, 4, 0xFFFFFFFF)
        assert edu.cfg(off, 4) == 0


def test_bar_sizing_mem64_prefetch(gen: PciDev) -> None:
    """SEMANTICS 4.2: a 64-bit prefetchable BAR sizes as ~(size-1)|0xc and its upper dword as ~(size-1)>>32."""
    gen.cfg_write(0x18, 4, 0xFFFFFFFF)
    gen.cfg_write(0x1C, 4, 0xFFFFFFFF)
    assert (gen.cfg(0x18, 4), gen.cfg(0x1C, 4)) == (0xFFFF000C, 0xFFFFFFFF)


def test_bar_sizing_io(gen: PciDev) -> None:
    """SEMANTICS 4.2: an I/O BAR sizes as ~(size-1) | 1."""
    gen.cfg_write(0x20, 4, 0xFFFFFFFF)
    assert gen.cfg(0x20, 4) == 0xFFFFFFE1


def test_bar_address_write_keeps_type_bits(gen: PciDev) -> None:
    """SEMANTICS 4.2: a programmed address keeps only the bits above the size, the type bits are regenerated."""
    gen.cfg_write(0x10, 4, 0x12345678)
    assert gen.cfg(0x10, 4) == 0x12344000


def test_rom_sizing(gen: PciDev, edu: PciDev) -> None:
    """SEMANTICS 4.2: ROM BAR: vrom &= ~(len-1) | ENABLE; no ROM reads 0."""
    gen.cfg_write(0x30, 4, 0xFFFFFFFF)
    assert gen.cfg(0x30, 4) == 0xFFFF8001
    edu.cfg_write(0x30, 4, 0xFFFFFFFF)
    assert edu.cfg(0x30, 4) == 0


def test_msi_cap_enable_does_not_stick_without_set_irqs(edu: PciDev) -> None:
    """SEMANTICS 4.1 MSI: writing ENABLE in config never enables MSI: it reads back 0 unless SET_IRQS enabled it;
    address/data are virtual and writable."""
    edu.cfg_write(0x44, 4, 0xFEE01000)
    edu.cfg_write(0x4C, 2, 0x4321)
    edu.cfg_write(0x42, 2, 0x0001)
    assert edu.cfg(0x42, 2) & 1 == 0
    assert (edu.cfg(0x44, 4), edu.cfg(0x4C, 2)) == (0xFEE01000, 0x4321)


def test_msi_mmc_reads_the_hardware_value(gen: PciDev) -> None:
    """vfio_msi_config_read: the msi_qmax refresh lands on the capability's ID byte (not virtualized), so
    Multiple Message Capable reads the function's own value -- 4 vectors -- before and after SET_IRQS;
    QSIZE writes are clamped to msi_qmax (0 before any SET_IRQS, then log2 of what was enabled)."""
    cap = _find_cap(gen, 0x05)
    assert cap and (gen.cfg(cap + 2, 2) & 0xE) >> 1 == 2  # 4-capable before any SET_IRQS
    assert gen.cfg(cap, 2) & 0xFF == 0x05  # the ID still reads the device's
    flags = gen.cfg(cap + 2, 2)
    gen.cfg_write(cap + 2, 2, flags | 0x70)  # ask for 128 vectors with nothing allocated
    assert gen.cfg(cap + 2, 2) == flags  # clamped to msi_qmax 0
    efds = [new_eventfd() for _ in range(2)]
    gen.set_irqs(1, uv.VFIO_IRQ_SET_ACTION_TRIGGER | uv.VFIO_IRQ_SET_DATA_EVENTFD, 0, 2, efds)
    assert gen.cfg(cap + 2, 2) == flags  # still the hardware's 4-capable, not the 2 allocated
    gen.cfg_write(cap + 2, 2, flags | 0x70 | 1)
    assert gen.cfg(cap + 2, 2) == flags | 0x10 | 1  # QSIZE clamped to 2 vectors, ENABLE kept (MSI is on)
    gen.set_irqs(1, uv.VFIO_IRQ_SET_ACTION_TRIGGER | uv.VFIO_IRQ_SET_DATA_NONE, 0, 0)
    assert (gen.cfg(cap + 2, 2) & 0xE) >> 1 == 2
    gen.cfg_write(cap + 2, 2, 0)  # the low flags byte is a plain shadow: MMC and 64BIT can be written over
    assert gen.cfg(cap + 2, 2) == flags & 0xFF00
    for e in efds:
        os.close(e)


def _find_cap(d: PciDev, cap_id: int) -> int:
    pos = d.cfg(0x34, 1)
    while pos:
        if d.cfg(pos, 1) == cap_id:
            return pos
        pos = d.cfg(pos + 1, 1)
    return 0


def test_capability_chain_hides_unknown(gen: PciDev) -> None:
    """SEMANTICS 4.1 cap hiding: a cap with length 0 (SLOTID) is unlinked; PM, EXP, MSI, MSI-X, VNDR remain."""
    ids = []
    pos = gen.cfg(0x34, 1)
    while pos:
        ids.append(gen.cfg(pos, 1))
        pos = gen.cfg(pos + 1, 1)
    assert ids == [0x01, 0x10, 0x05, 0x11, 0x09]


def test_msix_cap_read_only(gen: PciDev) -> None:
    """SEMANTICS 4.1 / pitfall 5: the MSI-X capability is read-only through vfio (ENABLE does not stick)."""
    cap = _find_cap(gen, 0x11)
    gen.cfg_write(cap + 2, 2, 0x8000)
    assert gen.cfg(cap + 2, 2) == 3  # 4 entries, not enabled
    assert gen.cfg(cap + 4, 4) == 0x2000  # table at 0x2000 in BAR0


def test_vendor_cap_writes_pass_through(gen: PciDev) -> None:
    """vfio_pci_init_perm_bits ([M] checked): VNDR caps use vfio_raw_config_write."""
    cap = _find_cap(gen, 0x09)
    assert gen.cfg(cap + 2, 1) == 8 and gen.cfg(cap + 3, 1) == 0x11
    gen.cfg_write(cap + 3, 1, 0xAB)
    assert gen.cfg(cap + 3, 1) == 0xAB


def test_pm_pme_bits_virtualized_and_state_read_only(gen: PciDev) -> None:
    """SEMANTICS 4.1 PM ([M] checked, newer kernels): PME_Support reads 0; writing PM_CTRL.STATE to D3hot moves
    the device (BAR access then fails with EIO) and back to D0 restores it."""
    cap = _find_cap(gen, 0x01)
    assert gen.cfg(cap + 2, 2) & 0xF800 == 0
    gen.cfg_write(cap + 4, 2, 3)
    expect(errno.EIO, gen.bar_r, 0)
    gen.cfg_write(cap + 4, 2, 0)
    gen.bar_w(0, 0x55)
    assert gen.bar_r(0) == 0x55


def test_pcie_flr_bit_resets_and_reads_zero(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 4.1 PCIe: writing DEVCTL.BCR_FLR resets the function when DEVCAP.FLR; the bit reads 0."""
    d = open_dev(k, "edu", express=True)
    cap = _find_cap(d, 0x10)
    d.bar_w(4, 0x12345678)
    assert d.bar_r(4) == ~0x12345678 & 0xFFFFFFFF
    d.cfg_write(cap + 8, 2, d.cfg(cap + 8, 2) | 0x8000)
    assert d.cfg(cap + 8, 2) & 0x8000 == 0
    assert d.bar_r(4) == 0  # the liveness register went back to reset value
    d.close()


def test_pcie_devctl2_ari_not_writable(gen: PciDev) -> None:
    """SEMANTICS 4.1 PCIe: DEVCTL2 is writable except ARI."""
    cap = _find_cap(gen, 0x10)
    gen.cfg_write(cap + 0x28, 2, 0xFFFF)
    assert gen.cfg(cap + 0x28, 2) & 0x20 == 0 and gen.cfg(cap + 0x28, 2) & 0x10


def test_extended_caps_aer_visible(gen: PciDev) -> None:
    """SEMANTICS 4.1 ecaps: AER at 0x100 with its header virtual (not writable)."""
    hdr = gen.cfg(0x100, 4)
    assert hdr & 0xFFFF == 1
    gen.cfg_write(0x100, 4, 0)
    assert gen.cfg(0x100, 4) == hdr


def test_extended_caps_hidden_first_keeps_next(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 4.1 ecaps: a hidden first ecap keeps only its NEXT (ID 0, version 0) to anchor the chain."""
    d = open_dev(k, "pci", express=True, hidden_ecap_first=True)
    hdr = d.cfg(0x100, 4)
    assert hdr & 0xFFFF == 0 and (hdr >> 16) & 0xF == 0
    nxt = hdr >> 20
    assert nxt and d.cfg(nxt, 4) & 0xFFFF == 1
    d.close()


def test_config_gap_bytes_raw(gen: PciDev) -> None:
    """SEMANTICS 4.1: bytes no capability owns pass through raw (be2net); the device decides what sticks."""
    assert gen.cfg(0xFC, 4) == 0  # unassigned, read from the device
    gen.cfg_write(0xFC, 4, 0xFFFFFFFF)
    assert gen.cfg(0xFC, 4) == 0  # the device has no register there


@pytest.mark.parametrize("off,n", [(256, 4), (255, 2), (0, 257), (0x1000, 1)])
def test_config_access_outside_einval_efault(edu: PciDev, off: int, n: int) -> None:
    """vfio_config_do_rw ([M] checked): an access past the config space -> EFAULT (not EINVAL)."""
    expect(errno.EFAULT, edu.k.pread, edu.fd, n, CFG + off)


def test_config_large_read_chunks(edu: PciDev) -> None:
    """vfio_pci_config_rw: a 256-byte read is split per capability and dword; it returns the whole space."""
    data = edu.k.pread(edu.fd, 256, CFG)
    assert len(data) == 256 and data[:4] == b"\x34\x12\xe8\x11"


# =====================================================================================================
# read / write of regions
# =====================================================================================================
def test_bar_read_write(edu: PciDev) -> None:
    """SEMANTICS 3 regions: BAR0 read/write through the device fd at offset 0 << 40."""
    assert edu.bar_r(0) == 0x010000ED
    edu.bar_w(4, 0xF0F0F0F0)
    assert edu.bar_r(4) == 0x0F0F0F0F


@pytest.mark.parametrize("offset", [9 << 40, 0xFF << 40, (8 << 40), (1 << 40), (6 << 40)],
                         ids=["region9", "region255", "VGA", "absent_BAR1", "absent_ROM"])
def test_read_bad_region_einval(edu: PciDev, offset: int) -> None:
    """vfio_pci_rw: no such region, VGA absent, unimplemented BAR or ROM -> EINVAL."""
    expect(errno.EINVAL, edu.k.pread, edu.fd, 4, offset)


def test_read_past_bar_end_einval(edu: PciDev) -> None:
    """vfio_pci_bar_rw: pos >= BAR size -> EINVAL; a read crossing the end is truncated."""
    expect(errno.EINVAL, edu.k.pread, edu.fd, 4, 1 << 20)
    assert len(edu.k.pread(edu.fd, 16, (1 << 20) - 4)) == 4


def test_rom_write_einval(gen: PciDev) -> None:
    """vfio_pci_rw: the ROM region is read-only -> EINVAL on write."""
    expect(errno.EINVAL, gen.k.pwrite, gen.fd, b"\0\0\0\0", 6 << 40)


def test_zero_length_read_write(edu: PciDev) -> None:
    """vfio_pci_core_read/write: count 0 returns 0 without touching the region."""
    assert edu.k.pread(edu.fd, 0, 9 << 40) == b"" and edu.k.pwrite(edu.fd, b"", 9 << 40) == 0


def test_msix_table_excluded_from_rw(gen: PciDev) -> None:
    """vfio_pci_bar_rw: the MSI-X table range reads as 0xff and drops writes; the rest of the BAR works."""
    gen.bar_w(0x2000, 0x12345678)
    assert gen.bar_r(0x2000) == 0xFFFFFFFF
    gen.bar_w(0x1000, 0x12345678)
    assert gen.bar_r(0x1000) == 0x12345678


# =====================================================================================================
# mmap
# =====================================================================================================
def test_mmap_bar0_traps_to_device(edu: PciDev) -> None:
    """SEMANTICS 3 mmap: a BAR mapping reaches the device registers (ident, liveness)."""
    m = edu.k.mmap(edu.fd, 4096, 0)
    assert len(m) == 4096 and m.read32(0) == 0x010000ED
    m[4:8] = (0x11111111).to_bytes(4, "little")
    assert int.from_bytes(m[4:8], "little") == ~0x11111111 & 0xFFFFFFFF
    m.close()


def test_mmap_msix_bar_allowed(gen: PciDev) -> None:
    """SEMANTICS 3 mmap (MSIX_MAPPABLE): the whole MSI-X BAR, table included, can be mapped."""
    m = gen.k.mmap(gen.fd, 0x4000, 0)
    assert m.read32(0x200C) & 1  # vector control of entry 0: masked while MSI-X is off
    m.close()


@pytest.mark.parametrize("length,offset", [(4096, 7 << 40), (4096, 6 << 40), (4096, 1 << 40), (4096, 9 << 40),
                                           (2 << 20, 0), (4096, 1 << 20), (4096, 100), (0, 0)],
                         ids=["config", "rom", "absent_bar", "region9", "too_long", "past_end", "unaligned",
                              "zero_len"])
def test_mmap_refused_einval(edu: PciDev, length: int, offset: int) -> None:
    """vfio_pci_core_mmap: only implemented, mmap-able BARs, page-aligned, within PAGE_ALIGN(size) -> else EINVAL."""
    expect(errno.EINVAL, edu.k.mmap, edu.fd, length, offset)


def test_mmap_io_bar_einval(gen: PciDev) -> None:
    """vfio_pci_probe_mmaps: I/O BARs are never mmap-able -> EINVAL."""
    expect(errno.EINVAL, gen.k.mmap, gen.fd, 4096, 4 << 40)


def test_mmap_subpage_bar_rules(k: pyvfio.sim.Kernel) -> None:
    """vfio_pci_probe_mmaps: a sub-page BAR is mmap-able only if page-aligned (the rest of the page reads 0xff)."""
    d = open_dev(k, "pci", bars=[{"index": 0, "size": 0x100, "page_offset": 0},
                                 {"index": 1, "size": 0x100, "page_offset": 0x100}])
    assert d.region(0).flags == RW | MMAP and d.region(1).flags == RW
    m = d.k.mmap(d.fd, 4096, 0)
    m.write32(0, 7)
    assert m.read32(0) == 7 and m.read32(0x200) == 0xFFFFFFFF
    expect(errno.EINVAL, d.k.mmap, d.fd, 4096, 1 << 40)
    d.close()


def test_mmap_faults_when_memory_disabled_or_closed(k: pyvfio.sim.Kernel) -> None:
    """vfio_pci_mmap_huge_fault: with COMMAND.MEMORY off the access faults (SIGBUS); after close too."""
    d = open_dev(k)
    m = d.k.mmap(d.fd, 4096, 0)
    d.cfg_write(4, 2, d.cfg(4, 2) & ~2)
    expect(errno.EFAULT, m.read32, 0)
    d.cfg_write(4, 2, d.cfg(4, 2) | 2)
    assert m.read32(0) == 0x010000ED
    d.close()
    with pytest.raises(VfioError):
        m.read32(0)


# =====================================================================================================
# VFIO_DEVICE_RESET and hot reset
# =====================================================================================================
def test_reset_without_method_einval(edu: PciDev) -> None:
    """SEMANTICS 3 RESET: !reset_works -> EINVAL (edu on the root bus: no FLR, PM or bus reset)."""
    expect(errno.EINVAL, edu.k.ioctl, edu.fd, uv.VFIO_DEVICE_RESET)


def test_reset_flr_clears_device_keeps_config(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 RESET: pci_try_reset_function resets the function and restores its saved config
    (COMMAND, BARs), so BAR access keeps working."""
    d = open_dev(k, "edu", express=True)
    d.enable_bus_master()
    d.bar_w(4, 1)
    assert d.k.ioctl(d.fd, uv.VFIO_DEVICE_RESET) == 0
    assert d.bar_r(4) == 0 and d.bar_r(0) == 0x010000ED
    assert d.cfg(4, 2) & 0x6 == 0x6  # memory decode and bus master restored
    d.close()


def test_reset_pm_method(k: pyvfio.sim.Kernel) -> None:
    """pci_pm_reset: a PM capability without NoSoftReset is a reset method -> RESET flag."""
    d = open_dev(k, "pci", pm=True, no_soft_reset=False)
    assert d.info().flags & uv.VFIO_DEVICE_FLAGS_RESET
    d.close()


def test_reset_bus_method_alone_behind_bridge(k: pyvfio.sim.Kernel) -> None:
    """pci_parent_bus_reset: a function alone on a non-root bus can be reset by its bridge -> RESET flag."""
    d = PciDev(k, k.add_device("edu", name="0000:01:00.0"))
    assert d.info().flags & uv.VFIO_DEVICE_FLAGS_RESET
    d.close()


def _hot_reset_info(d: PciDev, n: int = 8, argsz: int | None = None) -> uv.vfio_pci_hot_reset_info:
    info = alloc_flex(uv.vfio_pci_hot_reset_info, n)
    if argsz is not None:
        info.argsz = argsz
    d.k.ioctl(d.fd, uv.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
    return info


@pytest.fixture
def bus1(k: pyvfio.sim.Kernel) -> Iterator[tuple[PciDev, PciDev]]:
    """Two edu functions behind one bridge (bus 1), in two groups, sharing one container."""
    a = PciDev(k, k.add_device("edu", name="0000:01:00.0"))
    b = PciDev(k, k.add_device("edu", name="0000:01:01.0"), container=a.container)
    yield a, b
    b.close()
    a.close()


def test_hot_reset_info_lists_groups(bus1: tuple[PciDev, PciDev]) -> None:
    """SEMANTICS 3 HOT_RESET_INFO: group-opened devices report each affected function's group id and address."""
    a, b = bus1
    info = _hot_reset_info(a)
    assert info.count == 2 and info.flags == 0
    devs = flex_array(info, 2)
    assert [(x.group_id, x.bus, x.devfn) for x in devs] == [(a.vdev.group_id, 1, 0), (b.vdev.group_id, 1, 8)]


def test_hot_reset_info_enospc_reports_count(bus1: tuple[PciDev, PciDev]) -> None:
    """SEMANTICS 3 HOT_RESET_INFO: a too-small buffer -> ENOSPC with count set to the number needed."""
    a, _ = bus1
    info = uv.vfio_pci_hot_reset_info(argsz=12)
    expect(errno.ENOSPC, a.k.ioctl, a.fd, uv.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
    assert info.count == 2


def test_hot_reset_info_root_bus_enodev(edu: PciDev) -> None:
    """SEMANTICS 3 HOT_RESET_INFO: no slot or bus reset possible -> ENODEV."""
    expect(errno.ENODEV, _hot_reset_info, edu)


def test_hot_reset_info_short_argsz_einval(bus1: tuple[PciDev, PciDev]) -> None:
    """SEMANTICS 3 HOT_RESET_INFO: argsz < 12 -> EINVAL."""
    expect(errno.EINVAL, _hot_reset_info, bus1[0], 0, 8)


def _hot_reset(d: PciDev, fds: list[int], argsz: int | None = None, flags: int = 0) -> int:
    hr = alloc_flex(uv.vfio_pci_hot_reset, len(fds), flags=flags, count=len(fds))
    for i, fd in enumerate(fds):
        flex_array(hr)[i] = fd
    if argsz is not None:
        hr.argsz = argsz
    return d.k.ioctl(d.fd, uv.VFIO_DEVICE_PCI_HOT_RESET, hr)


def test_hot_reset_with_all_groups(bus1: tuple[PciDev, PciDev]) -> None:
    """SEMANTICS 3 PCI_HOT_RESET: the group fds prove ownership of every affected function; both are reset."""
    a, b = bus1
    a.bar_w(4, 0)
    b.bar_w(4, 0)
    assert _hot_reset(a, [a.group, b.group]) == 0
    assert a.bar_r(4) == 0 and b.bar_r(4) == 0  # edu registers back to reset values (were 0xffffffff)


def test_hot_reset_missing_group_einval(bus1: tuple[PciDev, PciDev]) -> None:
    """SEMANTICS 3 PCI_HOT_RESET: a group of an affected device missing -> EINVAL, nothing reset."""
    a, b = bus1
    b.bar_w(4, 0)
    expect(errno.EINVAL, _hot_reset, a, [a.group])
    assert b.bar_r(4) == 0xFFFFFFFF


def test_hot_reset_bad_inputs(bus1: tuple[PciDev, PciDev]) -> None:
    """vfio_pci_ioctl_pci_hot_reset ([M] checked): argsz < 12, flags != 0, empty array on the group path,
    more fds than affected devices -> EINVAL; a closed fd -> EBADF; a non-group fd -> EINVAL."""
    a, b = bus1
    expect(errno.EINVAL, _hot_reset, a, [a.group], 8)
    expect(errno.EINVAL, _hot_reset, a, [a.group, b.group], None, 1)
    expect(errno.EINVAL, _hot_reset, a, [])
    expect(errno.EINVAL, _hot_reset, a, [a.group, b.group, a.group])
    expect(errno.EBADF, _hot_reset, a, [a.group, 9999])
    expect(errno.EINVAL, _hot_reset, a, [a.group, a.container])
    efd = new_eventfd()
    expect(errno.EINVAL, _hot_reset, a, [a.group, efd])
    os.close(efd)


def test_hot_reset_root_bus_enodev(edu: PciDev) -> None:
    """SEMANTICS 3 PCI_HOT_RESET: no bus reset for a root-bus device -> ENODEV."""
    expect(errno.ENODEV, _hot_reset, edu, [edu.group])


# =====================================================================================================
# VFIO_DEVICE_IOEVENTFD
# =====================================================================================================
def _ioeventfd(d: PciDev, offset: int, data: int, flags: int, fd: int, argsz: int = 32) -> int:
    return d.k.ioctl(d.fd, uv.VFIO_DEVICE_IOEVENTFD,
                     uv.vfio_device_ioeventfd(argsz=argsz, flags=flags, offset=offset, data=data, fd=fd))


def test_ioeventfd_writes_bar_on_signal(edu: PciDev) -> None:
    """vfio_pci_ioeventfd: each write to the eventfd performs the registered BAR write (edu liveness)."""
    efd = new_eventfd()
    assert _ioeventfd(edu, 4, 0x0000FFFF, uv.VFIO_DEVICE_IOEVENTFD_32, efd) == 0
    os.eventfd_write(efd, 1)
    assert settle(lambda: edu.bar_r(4) == 0xFFFF0000)
    assert _ioeventfd(edu, 4, 0x0000FFFF, uv.VFIO_DEVICE_IOEVENTFD_32, -1) == 0
    os.close(efd)


@pytest.mark.parametrize("offset,flags,fd,argsz,err", [
    (4, uv.VFIO_DEVICE_IOEVENTFD_32, 0, 27, errno.EINVAL),
    (4, 0x10 | uv.VFIO_DEVICE_IOEVENTFD_32, 0, 32, errno.EINVAL),
    (4, 0, 0, 32, errno.EINVAL),
    (4, uv.VFIO_DEVICE_IOEVENTFD_32 | uv.VFIO_DEVICE_IOEVENTFD_16, 0, 32, errno.EINVAL),
    (4, uv.VFIO_DEVICE_IOEVENTFD_32, -2, 32, errno.EINVAL),
    (7 << 40, uv.VFIO_DEVICE_IOEVENTFD_32, 0, 32, errno.EINVAL),
    ((1 << 20) - 2, uv.VFIO_DEVICE_IOEVENTFD_32, 0, 32, errno.EINVAL),
    (1 << 40, uv.VFIO_DEVICE_IOEVENTFD_32, 0, 32, errno.EINVAL),
    (0x80, uv.VFIO_DEVICE_IOEVENTFD_64, 0, 32, errno.EINVAL),
    (4, uv.VFIO_DEVICE_IOEVENTFD_32, -1, 32, errno.ENODEV),
    (4, uv.VFIO_DEVICE_IOEVENTFD_32, 9999, 32, errno.EBADF),
], ids=["argsz", "unknown_flag", "no_size", "two_sizes", "fd_lt_-1", "config_region", "past_bar", "absent_bar",
        "64bit", "remove_missing", "bad_fd"])
def test_ioeventfd_bad_input(edu: PciDev, offset: int, flags: int, fd: int, argsz: int, err: int) -> None:
    """vfio_pci_ioctl_ioeventfd / vfio_pci_ioeventfd ([M] checked): each bad input and its errno."""
    efd = new_eventfd()
    expect(err, _ioeventfd, edu, offset, 1, flags, efd if fd == 0 else fd, argsz)
    os.close(efd)


def test_ioeventfd_duplicate_eexist_and_non_eventfd(edu: PciDev) -> None:
    """vfio_pci_ioeventfd: the same (offset, data, size) twice -> EEXIST; a non-eventfd fd -> EINVAL."""
    efd = new_eventfd()
    _ioeventfd(edu, 4, 1, uv.VFIO_DEVICE_IOEVENTFD_32, efd)
    expect(errno.EEXIST, _ioeventfd, edu, 4, 1, uv.VFIO_DEVICE_IOEVENTFD_32, efd)
    r, w = os.pipe()
    expect(errno.EINVAL, _ioeventfd, edu, 8, 1, uv.VFIO_DEVICE_IOEVENTFD_32, r)
    for _fd in (r, w):
        os.close(_fd)
    os.close(efd)  # still registered: released when the device closes


def test_ioeventfd_msix_table_einval(gen: PciDev) -> None:
    """vfio_pci_ioeventfd: an ioeventfd overlapping the MSI-X table -> EINVAL."""
    efd = new_eventfd()
    expect(errno.EINVAL, _ioeventfd, gen, 0x2008, 1, uv.VFIO_DEVICE_IOEVENTFD_32, efd)
    os.close(efd)


# =====================================================================================================
# VFIO_DEVICE_FEATURE (vfio-pci's own)
# =====================================================================================================
def _feature(d: PciDev, flags: int, payload: bytes = b"", argsz: int | None = None) -> int:
    f = alloc_flex(uv.vfio_device_feature, len(payload), flags=flags)
    flex_array(f)[: len(payload)] = list(payload)
    if argsz is not None:
        f.argsz = argsz
    return d.k.ioctl(d.fd, uv.VFIO_DEVICE_FEATURE, f)


GET, SET, PROBE = uv.VFIO_DEVICE_FEATURE_GET, uv.VFIO_DEVICE_FEATURE_SET, uv.VFIO_DEVICE_FEATURE_PROBE


@pytest.mark.parametrize("feature", [uv.VFIO_DEVICE_FEATURE_MIGRATION, uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                     uv.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, uv.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
                                     uv.VFIO_DEVICE_FEATURE_BUS_MASTER, uv.VFIO_DEVICE_FEATURE_DMA_BUF, 0x100],
                         ids=["MIGRATION", "MIG_DEVICE_STATE", "MIG_DATA_SIZE", "PCI_VF_TOKEN", "BUS_MASTER",
                              "DMA_BUF", "unknown"])
def test_feature_not_supported_enotty(edu: PciDev, feature: int) -> None:
    """SEMANTICS 3 FEATURE: no mig_ops -> ENOTTY; VF token only on SR-IOV PFs; BUS_MASTER is CDX-only;
    DMA_BUF needs VFIO_PCI_DMABUF (not in the VM kernel); unknown -> ENOTTY."""
    expect(errno.ENOTTY, _feature, edu, GET | feature, bytes(16))


def test_feature_low_power_entry_exit(edu: PciDev) -> None:
    """vfio_pci_core_pm_entry/exit: SET-only features; PROBE succeeds; entering twice -> EINVAL; GET -> EINVAL."""
    e, x = uv.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, uv.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
    assert _feature(edu, PROBE | SET | e) == 0
    expect(errno.EINVAL, _feature, edu, GET | e)
    assert _feature(edu, SET | e) == 0
    m = edu.k.mmap(edu.fd, 4096, 0)
    expect(errno.EFAULT, m.read32, 0)  # runtime-suspended: mmap access faults
    expect(errno.EINVAL, _feature, edu, SET | e)
    assert _feature(edu, SET | x) == 0
    assert m.read32(0) == 0x010000ED


def test_feature_low_power_wakeup_eventfd(edu: PciDev) -> None:
    """vfio_pci_core_pm_entry_with_wakeup: an access to the device signals the wakeup eventfd and exits low power."""
    w = uv.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
    efd = new_eventfd()
    before = fd_count()
    _feature(edu, SET | w, efd.to_bytes(4, "little", signed=True) + bytes(4))
    assert take(efd) == 0 and fd_count() == before + 1  # the model holds a reference
    edu.bar_r(0)
    assert take(efd) == 1
    assert fd_count() == before  # the model's eventfd reference was dropped on exit
    os.close(efd)


@pytest.mark.parametrize("payload,argsz,err", [
    ((-1).to_bytes(4, "little", signed=True) + bytes(4), None, errno.EINVAL),
    ((9999).to_bytes(4, "little") + bytes(4), None, errno.EBADF),
    (bytes(8), 12, errno.EINVAL),
], ids=["negative_fd", "bad_fd", "short_argsz"])
def test_feature_low_power_wakeup_bad_input(edu: PciDev, payload: bytes, argsz: int | None, err: int) -> None:
    """vfio_pci_core_pm_entry_with_wakeup: fd < 0 -> EINVAL; closed fd -> EBADF; payload < 8 bytes -> EINVAL."""
    expect(err, _feature, edu, SET | uv.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, payload, argsz)


# =====================================================================================================
# open / close lifecycle and leaks
# =====================================================================================================
def test_close_restores_device_and_leaks_nothing(k: pyvfio.sim.Kernel) -> None:
    """vfio_pci_core_disable: close drops every eventfd reference, ioeventfd and trigger; no descriptor leaks."""
    before = fd_count()
    d = open_dev(k, "edu", express=True)
    efds = [new_eventfd() for _ in range(4)]
    d.set_irqs(1, uv.VFIO_IRQ_SET_ACTION_TRIGGER | uv.VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, [efds[0]])
    d.set_irqs(3, uv.VFIO_IRQ_SET_ACTION_TRIGGER | uv.VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, [efds[1]])
    d.set_irqs(4, uv.VFIO_IRQ_SET_ACTION_TRIGGER | uv.VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, [efds[2]])
    _ioeventfd(d, 4, 1, uv.VFIO_DEVICE_IOEVENTFD_32, efds[3])
    d.close()
    for e in efds:
        os.close(e)
    assert fd_count() == before
    d2 = open_dev(k, "edu")  # the model is usable again afterwards
    d2.close()


def test_reopen_sees_fresh_virtual_config(k: pyvfio.sim.Kernel) -> None:
    """vfio_config_init at every first open: virtual state (INTERRUPT_LINE, sized BARs) does not survive close."""
    vdev = k.add_device("edu")
    d = PciDev(k, vdev)
    d.cfg_write(0x3C, 1, 0x42)
    d.cfg_write(0x10, 4, 0xFFFFFFFF)
    d.close()
    d = PciDev(k, vdev)
    assert d.cfg(0x3C, 1) == 0 and d.cfg(0x10, 4) != 0xFFF00000
    d.close()


# =====================================================================================================
# cdev-opened devices (iommufd): hot reset by devid
# =====================================================================================================
class CdevDev:
    """A device opened through its cdev and bound to an iommufd."""

    def __init__(self, k: pyvfio.sim.Kernel, vdev: Any, iommufd: int) -> None:
        self.k = k
        self.vdev = vdev
        self.fd = k.open(vdev.cdev)
        bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=iommufd)
        k.ioctl(self.fd, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)
        self.devid = bind.out_devid


def test_hot_reset_cdev_devids(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 HOT_RESET_INFO/HOT_RESET on cdev-opened devices: FLAG_DEV_ID with devids; an affected device
    not bound to the caller's iommufd is NOT_OWNED (-1) and clears DEV_ID_OWNED, and the reset (empty array)
    is refused with EINVAL; once every device is bound the reset goes through.  A group-style fd array on
    the cdev path -> EINVAL."""
    va = k.add_device("edu", name="0000:02:00.0")
    vb = k.add_device("edu", name="0000:02:01.0")
    ictx = k.open("/dev/iommu")
    a = CdevDev(k, va, ictx)
    hr = alloc_flex(uv.vfio_pci_hot_reset_info, 4)
    k.ioctl(a.fd, uv.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hr)
    devs = flex_array(hr, 2)
    assert hr.flags == uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID
    assert [d.devid for d in devs] == [a.devid, 0xFFFFFFFF]
    empty = alloc_flex(uv.vfio_pci_hot_reset, 0)
    expect(errno.EINVAL, k.ioctl, a.fd, uv.VFIO_DEVICE_PCI_HOT_RESET, empty)
    one = alloc_flex(uv.vfio_pci_hot_reset, 1, count=1)
    flex_array(one)[0] = ictx
    expect(errno.EINVAL, k.ioctl, a.fd, uv.VFIO_DEVICE_PCI_HOT_RESET, one)
    b = CdevDev(k, vb, ictx)
    k.ioctl(a.fd, uv.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hr)
    assert hr.flags == uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID | uv.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED
    assert [d.devid for d in flex_array(hr, 2)] == [a.devid, b.devid]
    assert k.ioctl(a.fd, uv.VFIO_DEVICE_PCI_HOT_RESET, empty) == 0
    for fd in (b.fd, a.fd, ictx):
        k.close(fd)
