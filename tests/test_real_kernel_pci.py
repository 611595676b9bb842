"""Config space of QEMU's edu through vfio-pci, and pyvfio's guest view over it -- on either kernel.

Written against the ``kernel``/``edu`` fixtures and the raw surface (``pyvfio.pci.VfioConfigRegion`` over
a device fd), so the VM lane (``python3 -m tests.vm``) checks the same statements on Linux 7.3 that the
host run checks on the simulated kernel.  The rules are the kernel's ``vfio_pci_config.c`` (SEMANTICS.md
4.1/4.2); tests marked ``realkernel`` also read the hardware's own config space from sysfs (the VM lane
runs as root) to show what vfio keeps virtual.

QEMU 7.2's edu: 1234:11e8 rev 0x10, class 00ff, BAR0 1 MiB 32-bit memory, no ROM, INTA, one capability:
MSI at 0x40 (64-bit address, 1 vector, no per-vector masking); 256 bytes of config space.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from pyvfio.pci import (VfioConfigRegion, VirtualConfig, extended_capabilities, open_group_device, probe_bar_sizes,
                        standard_capabilities)
from pyvfio.uapi import pci_regs as R

MIB = 1 << 20


@pytest.fixture
def region(kernel: Any, edu: EduDevice) -> Iterator[VfioConfigRegion]:
    with open_group_device(kernel, edu.group, edu.address) as fd:
        r = VfioConfigRegion(kernel, fd)
        command = r.config_read(R.PCI_COMMAND, 2)
        yield r
        r.config_write(R.PCI_COMMAND, command)  # leave decode/mastering as the open found them


def u(r: Any, off: int, size: int) -> int:
    return int.from_bytes(r.config_read(off, size), "little")


def w(r: Any, off: int, size: int, value: int) -> None:
    r.config_write(off, value.to_bytes(size, "little"))


def hardware(edu: EduDevice) -> bytes:
    """The function's own config space, as sysfs reads it (root: all of it)."""
    with open(f"/sys/bus/pci/devices/{edu.address}/config", "rb") as f:
        return f.read()


def test_edu_config_region_and_capability_chain(region: VfioConfigRegion) -> None:
    assert region.size == 256
    cfg = region.config_read(0, 256)
    assert (u(region, R.PCI_VENDOR_ID, 2), u(region, R.PCI_DEVICE_ID, 2)) == (0x1234, 0x11E8)
    assert u(region, R.PCI_STATUS, 2) & R.PCI_STATUS_CAP_LIST
    chain = standard_capabilities(cfg)
    assert [(c.offset, c.id, c.name) for c in chain] == [(0x40, R.PCI_CAP_ID_MSI, "MSI")]
    assert extended_capabilities(cfg) == []
    flags = u(region, 0x40 + R.PCI_MSI_FLAGS, 2)
    assert flags & R.PCI_MSI_FLAGS_64BIT and not flags & R.PCI_MSI_FLAGS_MASKBIT
    assert flags & R.PCI_MSI_FLAGS_QMASK == 0  # one vector


def test_bar_sizing_through_the_kernel(region: VfioConfigRegion) -> None:
    """vfio_bar_fixup: all ones reads back the size mask with the type bits; absent BARs and ROM read 0."""
    original = u(region, R.PCI_BASE_ADDRESS_0, 4)
    w(region, R.PCI_BASE_ADDRESS_0, 4, 0xFFFFFFFF)
    assert u(region, R.PCI_BASE_ADDRESS_0, 4) == 0xFFF00000  # 1 MiB, 32-bit memory, not prefetchable
    w(region, R.PCI_BASE_ADDRESS_0, 4, original)
    assert u(region, R.PCI_BASE_ADDRESS_0, 4) == original
    for off in (R.PCI_BASE_ADDRESS_1, R.PCI_BASE_ADDRESS_5, R.PCI_ROM_ADDRESS):
        w(region, off, 4, 0xFFFFFFFF)
        assert u(region, off, 4) == 0  # unimplemented: reads 0 whatever was written
    bars = probe_bar_sizes(region)
    assert bars[0] is not None and (bars[0].kind, bars[0].size, bars[0].prefetchable) == ("mem32", MIB, False)
    assert bars[1:] == [None] * 6
    assert [region.region(i).size for i in range(7)] == [MIB, 0, 0, 0, 0, 0, 0]  # region info agrees


def test_kernel_config_write_rules(region: VfioConfigRegion) -> None:
    # IDs and the interrupt pin are read-only; STATUS is NO_WRITE (W1C impossible through vfio)
    w(region, R.PCI_VENDOR_ID, 2, 0xFFFF)
    assert u(region, R.PCI_VENDOR_ID, 2) == 0x1234
    status = u(region, R.PCI_STATUS, 2)
    w(region, R.PCI_STATUS, 2, 0xFFFF)
    assert u(region, R.PCI_STATUS, 2) == status
    assert u(region, R.PCI_INTERRUPT_PIN, 1) == 1
    w(region, R.PCI_INTERRUPT_PIN, 1, 3)
    assert u(region, R.PCI_INTERRUPT_PIN, 1) == 1
    # the interrupt line is a pure shadow, writable
    w(region, R.PCI_INTERRUPT_LINE, 1, 0x5A)
    assert u(region, R.PCI_INTERRUPT_LINE, 1) == 0x5A
    # the capability pointer is virtual and read-only
    w(region, R.PCI_CAPABILITY_LIST, 1, 0x80)
    assert u(region, R.PCI_CAPABILITY_LIST, 1) == 0x40
    # bytes no capability owns pass through raw, both ways: what reads back is the function's own behaviour,
    # and QEMU's PCI core makes every byte from 0x40 that no capability claims writable (pci_init_wmask)
    w(region, 0xF0, 4, 0xA5A5A5A5)
    assert u(region, 0xF0, 4) == 0xA5A5A5A5
    w(region, 0xF0, 4, 0)
    assert u(region, 0xF0, 4) == 0


def test_kernel_msi_capability_rules(region: VfioConfigRegion) -> None:
    """MSI flags/address/data are virtual; ENABLE written in config never sticks without SET_IRQS."""
    base = 0x40
    w(region, base + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE01004)
    w(region, base + R.PCI_MSI_ADDRESS_HI, 4, 0x1)
    w(region, base + R.PCI_MSI_DATA_64, 2, 0x4321)
    assert u(region, base + R.PCI_MSI_ADDRESS_LO, 4) == 0xFEE01004
    assert u(region, base + R.PCI_MSI_DATA_64, 2) == 0x4321
    w(region, base + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE)
    assert not u(region, base + R.PCI_MSI_FLAGS, 2) & R.PCI_MSI_FLAGS_ENABLE
    w(region, base, 2, 0xFFFF)  # ID and NEXT are read-only
    assert u(region, base, 2) == R.PCI_CAP_ID_MSI


@pytest.mark.realkernel
def test_what_vfio_keeps_from_the_hardware(region: VfioConfigRegion, edu: EduDevice) -> None:
    """Against the function's own config (sysfs): virtual registers never reach it, pass-through ones do."""
    hw_before = hardware(edu)
    w(region, R.PCI_INTERRUPT_LINE, 1, 0x77)
    w(region, 0x40 + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE0F00C)
    w(region, R.PCI_BASE_ADDRESS_0, 4, 0xFFFFFFFF)
    w(region, 0xF4, 4, 0x12345678)  # an unassigned byte range: raw to the function (QEMU keeps the bytes)
    hw = hardware(edu)
    assert hw[0xF4:0xF8] == (0x12345678).to_bytes(4, "little") == region.config_read(0xF4, 4)
    w(region, 0xF4, 4, 0)
    assert hw[R.PCI_INTERRUPT_LINE] == hw_before[R.PCI_INTERRUPT_LINE] != 0x77
    assert hw[0x44:0x48] == hw_before[0x44:0x48]
    assert hw[R.PCI_BASE_ADDRESS_0:R.PCI_BASE_ADDRESS_0 + 4] == hw_before[R.PCI_BASE_ADDRESS_0:R.PCI_BASE_ADDRESS_0 + 4]
    command = u(region, R.PCI_COMMAND, 2)
    w(region, R.PCI_COMMAND, 2, command | R.PCI_COMMAND_MASTER)
    assert int.from_bytes(hardware(edu)[R.PCI_COMMAND:R.PCI_COMMAND + 2], "little") & R.PCI_COMMAND_MASTER
    w(region, R.PCI_COMMAND, 2, command)


def test_guest_view_over_edu(region: VfioConfigRegion) -> None:
    vc = VirtualConfig(region)
    assert vc.size == 256
    bar0 = vc.bars[0]
    assert bar0 is not None and (bar0.kind, bar0.size) == ("mem32", MIB) and vc.bars[1:] == [None] * 6
    assert vc.read_int(R.PCI_BASE_ADDRESS_0, 4) == 0  # the guest starts with BAR0 unassigned
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFFFFFFFF)
    assert vc.read_int(R.PCI_BASE_ADDRESS_0, 4) == 0xFFF00000
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    vc.write_int(R.PCI_COMMAND, 2, vc.read_int(R.PCI_COMMAND, 2) | R.PCI_COMMAND_MEMORY)
    assert vc.mapped_bars() == {0: (0xFE000000, MIB)}
    assert vc.mmap_windows(0) == [(0, MIB)]  # no MSI-X: nothing to trap
    assert [(c.offset, c.id) for c in vc.capabilities] == [(0x40, R.PCI_CAP_ID_MSI)]
    msi = vc.msi
    assert msi is not None and msi.max_vectors == 1 and msi.is_64
    events: list[Any] = []
    vc.add_listener(events.append)
    vc.write_int(0x40 + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE00000)
    vc.write_int(0x40 + R.PCI_MSI_DATA_64, 2, 0x41)
    vc.write_int(0x40 + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE)
    assert [e.kind for e in events] == ["msi-enable"]
    assert vc.read_int(0x40 + R.PCI_MSI_FLAGS, 2) & R.PCI_MSI_FLAGS_ENABLE  # the guest sees it enabled
    assert not u(region, 0x40 + R.PCI_MSI_FLAGS, 2) & R.PCI_MSI_FLAGS_ENABLE  # the kernel waits for SET_IRQS


def test_guest_state_round_trip_over_edu(region: VfioConfigRegion) -> None:
    src = VirtualConfig(region)
    src.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFD000000)
    src.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER)
    src.write_int(R.PCI_INTERRUPT_LINE, 1, 10)
    src.write_int(0x40 + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE00000)
    blob, seen = src.save(), src.read(0, 256)
    fds = len(os.listdir("/proc/self/fd"))
    # a second guest view built over the same device: unassigned BARs until the saved state arrives
    dst = VirtualConfig(region)
    assert dst.read(0, 256) != seen
    dst.restore(blob)
    assert dst.read(0, 256) == seen
    assert dst.mapped_bars() == {0: (0xFD000000, MIB)}
    assert len(os.listdir("/proc/self/fd")) == fds


@pytest.mark.realkernel
def test_decoder_matches_live_lspci_on_every_function() -> None:
    """The golden comparison of test_pci_lspci.py, live: this machine's lspci against pyvfio's decoder."""
    import shutil
    import subprocess

    from pyvfio.pci import lspci as L

    lspci = shutil.which("lspci")
    if lspci is None:
        pytest.skip("lspci (pciutils) is not installed")
    prefixes = ("\tControl:", "\tStatus:", "\tLatency:", "\tRegion", "\tExpansion ROM", "\tCapabilities:", "\t\t")
    addresses = L.sysfs_addresses()
    assert addresses
    for address in addresses:
        theirs = subprocess.run([lspci, "-vv", "-s", address], capture_output=True, text=True, check=True).stdout
        mine = L.describe(L.read_sysfs(address))
        assert [ln for ln in mine if ln.startswith(prefixes)] == \
            [ln for ln in theirs.splitlines() if ln.startswith(prefixes)], address
