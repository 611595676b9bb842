"""vfio-pci config virtualization where the model once disagreed with Linux 7.3 (``vfio_pci_config.c``).

Capability lengths (SATA, ACS egress vector, TPH steering-tag table, VC arbitration table), the VPD and
PCI-X permission tables, extended capabilities behind a PCI-X mode 2 function, the MSI flags (the
function's own Multiple Message Capable), the edu's writable unclaimed bytes, mtty without vfio-pci
features, and the iommufd fault descriptor's readiness.  The edu/mtty/fault facts are also pinned on the
real kernel by ``tests/test_real_kernel_fidelity.py``; layouts no QEMU device offers are checked here
against the kernel's formulas.  Everything goes through the syscall surface, except that a fault is
queued through the model (no simulated device has PRI).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
from typing import Any, Iterator

import pytest

import pyvfio.sim
from pyvfio.errors import VfioError
from pyvfio.sim.iommufd.eventq import Fault
from pyvfio.uapi import iommufd as ui
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import alloc_flex
from test_vfio_pci_fixtures import PciDev, fd_count, kernel_fixture, open_dev

PCI_CAP_ID_VPD, PCI_CAP_ID_PCIX, PCI_CAP_ID_SATA = 0x03, 0x07, 0x12
PCI_EXT_CAP_ID_VC, PCI_EXT_CAP_ID_ACS, PCI_EXT_CAP_ID_TPH = 0x02, 0x0D, 0x17
UNCLAIMED = 0xFF  # pci_config_map marker of bytes no capability owns


@pytest.fixture
def k() -> Iterator[pyvfio.sim.Kernel]:
    yield from kernel_fixture()


def _find_cap(d: PciDev, cap_id: int) -> int:
    pos = d.cfg(0x34, 1)
    while pos:
        if d.cfg(pos, 1) == cap_id:
            return pos
        pos = d.cfg(pos + 1, 1)
    return 0


def _find_ecap(d: PciDev, cap_id: int) -> int:
    pos = 0x100
    while pos:
        hdr = d.cfg(pos, 4)
        if hdr & 0xFFFF == cap_id:
            return pos
        pos = hdr >> 20
    return 0


def _cap_map(k: pyvfio.sim.Kernel, d: PciDev) -> bytearray:
    """The open device's ``pci_config_map`` (which capability owns each byte) -- the lengths under test."""
    core = d.vdev.ops
    assert core.config is not None
    return core.config.map


def _owned_length(cmap: bytearray, pos: int) -> int:
    n = 0
    while pos + n < len(cmap) and cmap[pos + n] == cmap[pos]:
        n += 1
    return n


# ---------------------------------------------------------------------------------------------------------
# capability lengths


@pytest.mark.parametrize("regs,length", [(0x0F, 16), (0x01, 8), (0x00, 8)])
def test_sata_length_from_the_regs_byte_at_pos_4(k: pyvfio.sim.Kernel, regs: int, length: int) -> None:
    """vfio_cap_len reads PCI_SATA_REGS (pos+4); the byte at pos+2 (SATA_CR0 revision) does not matter."""
    body = bytes([0x0F, 0x00, regs]) + bytes(13)  # revision byte looks "inline", the REGS nibble decides
    d = open_dev(k, "pci", caps=[(PCI_CAP_ID_SATA, body)])
    try:
        pos = _find_cap(d, PCI_CAP_ID_SATA)
        assert pos and _owned_length(_cap_map(k, d), pos) == length
        assert _cap_map(k, d)[pos + length] == UNCLAIMED
    finally:
        d.close()


@pytest.mark.parametrize("cap,egress_bits,length", [
    (0x0000, 0, 8),            # no egress control: capability + control only
    (0x0020, 8, 8 + 4),        # 8 functions: one dword of vector
    (0x0020, 33, 8 + 8),       # rounded up to whole dwords
    (0x0020, 0, 8 + 32),       # 0 means 256 functions
])
def test_acs_length_includes_the_egress_vector(k: pyvfio.sim.Kernel, cap: int, egress_bits: int,
                                               length: int) -> None:
    body = struct.pack("<BBH", cap & 0xFF, egress_bits, 0) + bytes(64)
    d = open_dev(k, "pci", express=True, ecaps=[(PCI_EXT_CAP_ID_ACS, 1, body)])
    try:
        pos = _find_ecap(d, PCI_EXT_CAP_ID_ACS)
        assert pos and _owned_length(_cap_map(k, d), pos) == length
    finally:
        d.close()


@pytest.mark.parametrize("loc,st_size,length", [(0x000, 5, 12), (0x400, 5, 12), (0x200, 0, 14),
                                                (0x200, 7, 12 + 16)])
def test_tph_length_includes_the_steering_tag_table(k: pyvfio.sim.Kernel, loc: int, st_size: int,
                                                    length: int) -> None:
    """Only a table located in the capability (ST table location 01b) counts: ST_SIZE+1 two-byte entries."""
    body = struct.pack("<II", loc | (st_size << 16), 0) + bytes(32)
    d = open_dev(k, "pci", express=True, ecaps=[(PCI_EXT_CAP_ID_TPH, 1, body)])
    try:
        pos = _find_ecap(d, PCI_EXT_CAP_ID_TPH)
        assert pos and _owned_length(_cap_map(k, d), pos) == length
    finally:
        d.close()


@pytest.mark.parametrize("evcc,cap2,length", [
    (0, 0x0, 0x10 + 0x0C),             # one VC, no arbitration table
    (1, 0x0, 0x10 + 2 * 0x0C),
    (0, 0x2, 0x20 + 32 * 4 // 8),      # 32 phases: 16 bytes, after rounding 0x1C up to 0x20
    (1, 0x8, 0x30 + 128 * 4 // 8),     # 128 phases win over the lower bits
    (1, 0xE, 0x30 + 128 * 4 // 8),
])
def test_vc_length_includes_the_arbitration_table(k: pyvfio.sim.Kernel, evcc: int, cap2: int,
                                                  length: int) -> None:
    body = struct.pack("<II", evcc, cap2) + bytes(0xC0)
    d = open_dev(k, "pci", express=True, ecaps=[(PCI_EXT_CAP_ID_VC, 1, body)])
    try:
        pos = _find_ecap(d, PCI_EXT_CAP_ID_VC)
        assert pos and _owned_length(_cap_map(k, d), pos) == length
    finally:
        d.close()


# ---------------------------------------------------------------------------------------------------------
# VPD and PCI-X permissions


VPD = bytes(range(0x40, 0x80))


@pytest.fixture
def vpd(k: pyvfio.sim.Kernel) -> Iterator[tuple[PciDev, int]]:
    d = open_dev(k, "pci", vpd=VPD)
    pos = _find_cap(d, PCI_CAP_ID_VPD)
    assert pos
    yield d, pos
    d.close()


def test_vpd_read_cycle_through_the_shadow(vpd: tuple[PciDev, int]) -> None:
    """Writing ADDR with F clear reads 4 bytes into DATA and sets F to say "done"."""
    d, pos = vpd
    assert d.cfg(pos, 2) & 0xFF == PCI_CAP_ID_VPD
    d.cfg_write(pos + 2, 2, 0x0008)
    assert d.cfg(pos + 2, 2) == 0x8008
    assert d.cfg(pos + 4, 4) == int.from_bytes(VPD[8:12], "little")
    d.cfg_write(pos + 2, 2, len(VPD) + 0x100)  # past the end: reads zeros, still completes
    assert (d.cfg(pos + 2, 2), d.cfg(pos + 4, 4)) == (0x8000 | (len(VPD) + 0x100), 0)


def test_vpd_write_cycle_and_refusals(k: pyvfio.sim.Kernel, vpd: tuple[PciDev, int]) -> None:
    d, pos = vpd
    d.cfg_write(pos + 4, 4, 0xDEADBEEF)
    assert d.cfg(pos + 2, 2) == 0  # DATA alone starts nothing
    d.cfg_write(pos + 2, 2, 0x8000 | 0x10)
    assert d.cfg(pos + 2, 2) == 0x0010  # F toggled back: done
    assert bytes(d.vdev.ops.pci.vpd[0x10:0x14]) == struct.pack("<I", 0xDEADBEEF)
    d.cfg_write(pos + 2, 2, 0x8000 | 0x12)  # unaligned: refused, F stays set (the driver would time out)
    assert d.cfg(pos + 2, 2) == 0x8012
    d.cfg_write(pos + 2, 2, 0x8000 | len(VPD))  # past the end: refused
    assert d.cfg(pos + 2, 2) == 0x8000 | len(VPD)
    d.cfg_write(pos + 2, 1, 0x20)  # the low ADDR byte alone starts no cycle
    assert d.cfg(pos + 2, 2) == 0x8020


def test_vpd_registers_never_reach_the_function(k: pyvfio.sim.Kernel, vpd: tuple[PciDev, int]) -> None:
    d, pos = vpd
    d.cfg_write(pos + 2, 2, 0x0004)
    d.cfg_write(pos, 2, 0xFFFF)  # ID and NEXT read-only
    assert d.cfg(pos, 1) == PCI_CAP_ID_VPD
    assert d.vdev.ops.pci.config_read(pos + 2, 6) == bytes(6)


def _pcix_body(version: int, length: int) -> bytes:
    return struct.pack("<HI", version << 12, 0) + bytes(length - 6)


def test_pcix_command_and_ecc_writable(k: pyvfio.sim.Kernel) -> None:
    d = open_dev(k, "pci", extended_config=True, caps=[(PCI_CAP_ID_PCIX, _pcix_body(2, 24))])
    try:
        pos = _find_cap(d, PCI_CAP_ID_PCIX)
        pci = d.vdev.ops.pci
        pci.wmask[pos + 2: pos + 12] = b"\xff" * 10  # give the function writable registers to reach
        assert _owned_length(_cap_map(k, d), pos) == 24
        d.cfg_write(pos + 2, 2, 0x2073)
        assert d.cfg(pos + 2, 2) == 0x2073 and pci.r16(pos + 2) == 0x2073  # PCI_X_CMD: through to it
        d.cfg_write(pos + 8, 4, 0x11223344)
        assert pci.r32(pos + 8) == 0x11223344  # PCI_X_ECC_CSR
        d.cfg_write(pos + 4, 4, 0xFFFFFFFF)
        assert pci.r32(pos + 4) == 0  # PCI_X_STATUS: read-only
    finally:
        d.close()


@pytest.mark.parametrize("version,extended", [(0, False), (1, True), (2, True)])
def test_pcix_mode2_function_gets_its_extended_caps(k: pyvfio.sim.Kernel, version: int, extended: bool) -> None:
    """vfio_cap_len turns extended caps on for a PCI-X v1/v2 capability (as for PCIe), not for v0."""
    length = 24 if version else 8
    d = open_dev(k, "pci", extended_config=True, caps=[(PCI_CAP_ID_PCIX, _pcix_body(version, length))],
                 ecaps=[(PCI_EXT_CAP_ID_ACS, 1, bytes(4))])
    try:
        assert _owned_length(_cap_map(k, d), _find_cap(d, PCI_CAP_ID_PCIX)) == length
        # walked and mapped (header virtual) or left unclaimed: raw bytes of the function either way
        assert _cap_map(k, d)[0x100] == (PCI_EXT_CAP_ID_ACS if extended else UNCLAIMED)
        assert d.cfg(0x100, 4) & 0xFFFF == PCI_EXT_CAP_ID_ACS
    finally:
        d.close()


# ---------------------------------------------------------------------------------------------------------
# MSI flags, the edu's unclaimed bytes, mtty


def test_msi_four_capable_before_any_set_irqs(k: pyvfio.sim.Kernel) -> None:
    d = open_dev(k, "pci", msi=4)
    try:
        pos = _find_cap(d, 0x05)
        assert (d.cfg(pos + 2, 2) & 0x0E) >> 1 == 2
        assert d.cfg(pos, 1) == 0x05  # the kernel's refresh hits the ID's shadow; the ID reads the device
    finally:
        d.close()


def test_edu_unclaimed_bytes_writable(k: pyvfio.sim.Kernel) -> None:
    d = open_dev(k, "edu")
    try:
        for off in (0x4E, 0x50, 0xFC):
            d.cfg_write(off, 2, 0x1234)
            assert d.cfg(off, 2) == 0x1234
        d.cfg_write(0x42, 2, 0xFFFF)  # MSI flags: the function's own wmask still rules its fields
        assert d.vdev.ops.pci.r16(0x42) & 0xFF00 == 0
    finally:
        d.close()


def test_generic_device_gaps_stay_read_only(k: pyvfio.sim.Kernel) -> None:
    """Only QEMU-modelled functions open their unclaimed bytes; the configurable one keeps none."""
    d = open_dev(k, "pci")
    try:
        d.cfg_write(0xF0, 4, 0xFFFFFFFF)
        assert d.cfg(0xF0, 4) == 0
    finally:
        d.close()


def test_mtty_low_power_enotty_edu_supports_it(k: pyvfio.sim.Kernel) -> None:
    for kind, supported in (("mtty", False), ("edu", True)):
        d = open_dev(k, kind)
        try:
            arg = alloc_flex(uv.vfio_device_feature, 0, flags=uv.VFIO_DEVICE_FEATURE_PROBE
                             | uv.VFIO_DEVICE_FEATURE_SET | uv.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY)
            if supported:
                assert k.ioctl(d.fd, uv.VFIO_DEVICE_FEATURE, arg) == 0
            else:
                with pytest.raises(VfioError) as e:
                    k.ioctl(d.fd, uv.VFIO_DEVICE_FEATURE, arg)
                assert e.value.errno == errno.ENOTTY
        finally:
            d.close()


# ---------------------------------------------------------------------------------------------------------
# the fault queue descriptor


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_fault_fd_readable_only_while_a_fault_waits(k: pyvfio.sim.Kernel) -> None:
    before = fd_count()
    ictx = k.open("/dev/iommu")
    alloc = ui.iommu_fault_alloc(size=ctypes.sizeof(ui.iommu_fault_alloc))
    k.ioctl(ictx, ui.IOMMU_FAULT_QUEUE_ALLOC, alloc)
    fd = int(alloc.out_fault_fd)
    assert fd_count() == before + 2  # the model keeps no descriptor of its own
    ctx: Any = k._lookup(ictx)
    fault = ctx.objects[alloc.out_fault_id]
    assert isinstance(fault, Fault)
    size = ctypes.sizeof(ui.iommu_hwpt_pgfault)
    assert not _readable(fd) and select.select([], [fd], [], 0)[1] == [fd]
    rec = ui.iommu_hwpt_pgfault(dev_id=1, addr=0x1000, cookie=7)
    fault.report(bytes(rec))
    fault.report(bytes(ui.iommu_hwpt_pgfault(dev_id=1, addr=0x2000, cookie=8)))
    assert _readable(fd)
    dup = os.dup(fd)  # a duplicate sees the same readiness
    assert _readable(dup)
    os.close(dup)
    assert k.read(fd, size) == bytes(rec)
    assert _readable(fd)  # one more waits
    assert len(k.read(fd, 2 * size)) == size
    assert not _readable(fd) and k.read(fd, size) == b""
    fault.report(bytes(rec))
    assert _readable(fd)
    with pytest.raises(ValueError):
        fault.report(b"short")
    k.close(fd)
    k.close(ictx)
    assert fd_count() == before
