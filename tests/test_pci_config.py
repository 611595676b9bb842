"""The guest's view of an assigned device (``pyvfio.pci.VirtualConfig``) over the simulated kernel.

Each test names the rule it checks (QEMU ``hw/vfio/pci.c`` + ``hw/pci/pci.c`` over the kernel's
``vfio_pci_config.c``, SEMANTICS.md section 4).  Where a rule is about what reaches the hardware, the
simulated device's own config space (``kernel.devices[name].ops.pci``) is the witness.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from pyvfio.pci import (ConfigEvent, VfioConfigRegion, VirtualConfig, open_group_device, probe_bar,
                        probe_bar_sizes)
from pyvfio.pci.config import COMMAND_WMASK, STATUS_W1C, detect_config_size
from pyvfio.sim import Kernel
from pyvfio.uapi import pci_regs as R

GENERIC = dict(bars=[{"index": 0, "size": 0x4000}, {"index": 2, "size": 0x100000, "kind": "mem64", "prefetch": True},
                     {"index": 4, "size": 0x40, "kind": "io"}],
               msi=4, msi_maskable=True, msix=16, msix_bar=0, msix_table_offset=0x2000, express=True, pm=True,
               rom_size=0x10000, vendor_cap=b"\x01\x02\x03\x04")


class Opened:
    """A simulated device opened through the legacy path, with its config region and hardware model."""

    def __init__(self, kernel: Kernel, kind: str, **options: Any) -> None:
        self.kernel = kernel
        self.sim = kernel.add_device(kind, **options)
        self._cm = open_group_device(kernel, self.sim.group_id, self.sim.address)
        self.fd = self._cm.__enter__()
        self.region = VfioConfigRegion(kernel, self.fd)
        self.hw = kernel.devices[self.sim.address].ops.pci  # the "hardware": what reaches the function

    def hw16(self, off: int) -> int:
        return int(self.hw.r16(off))

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def edu(kernel: Kernel) -> Iterator[Opened]:
    o = Opened(kernel, "edu")
    yield o
    o.close()


@pytest.fixture
def gen(kernel: Kernel) -> Iterator[Opened]:
    o = Opened(kernel, "pci", **GENERIC)
    yield o
    o.close()


def events_of(vc: VirtualConfig) -> list[ConfigEvent]:
    got: list[ConfigEvent] = []
    vc.add_listener(got.append)
    return got


def u32(vc: VirtualConfig, off: int) -> int:
    return vc.read_int(off, 4)


# -- the two access rules ----------------------------------------------------------------------------

def test_read_rule_mixes_emulated_copy_and_device_per_bit(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    # STATUS: only CAP_LIST is emulated; the rest comes from the device, live.
    assert vc.emulated[R.PCI_STATUS] == R.PCI_STATUS_CAP_LIST
    vc.set_int(R.PCI_STATUS, 2, 0xFFFF & ~R.PCI_STATUS_CAP_LIST)  # garbage in the copy's non-emulated bits
    device = int.from_bytes(gen.region.config_read(R.PCI_STATUS, 2), "little")
    assert vc.read_int(R.PCI_STATUS, 2) == (device & ~R.PCI_STATUS_CAP_LIST) | 0  # copy's CAP_LIST bit is 0 now
    vc.set_int(R.PCI_STATUS, 2, R.PCI_STATUS_CAP_LIST)
    assert vc.read_int(R.PCI_STATUS, 2) == device | R.PCI_STATUS_CAP_LIST


def test_fully_emulated_reads_do_not_touch_the_device(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    calls: list[tuple[int, int]] = []
    real = edu.region.config_read

    def spy(off: int, size: int) -> bytes:
        calls.append((off, size))
        return real(off, size)

    edu.region.config_read = spy  # type: ignore[method-assign]
    vc.read(R.PCI_BASE_ADDRESS_0, 4)  # BARs are wholly emulated
    assert calls == []
    vc.read(R.PCI_VENDOR_ID, 4)
    assert calls == [(0, 4)]


def test_write_goes_to_device_first_then_through_wmask(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY | 0x8000)
    assert edu.hw16(R.PCI_COMMAND) & R.PCI_COMMAND_MASTER  # reached the hardware (the kernel passes it)
    assert vc.get_int(R.PCI_COMMAND, 2) == R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY  # 0x8000 not in wmask
    assert COMMAND_WMASK == 0x507  # IO, MEMORY, MASTER, SERR, INTX_DISABLE


def test_w1c_bits_clear_on_one_and_survive_zero(edu: Opened) -> None:
    """STATUS error bits are W1C in QEMU's copy; the kernel drops STATUS writes, so emulate them to see it."""
    vc = VirtualConfig(edu.region)
    errors = R.PCI_STATUS_REC_MASTER_ABORT | R.PCI_STATUS_DETECTED_PARITY
    vc.emulate(R.PCI_STATUS, 2, errors, mask=STATUS_W1C, w1c=STATUS_W1C)
    assert vc.read_int(R.PCI_STATUS, 2) & STATUS_W1C == errors
    vc.write_int(R.PCI_STATUS, 2, 0)  # writing 0 changes nothing
    assert vc.read_int(R.PCI_STATUS, 2) & STATUS_W1C == errors
    vc.write_int(R.PCI_STATUS, 2, R.PCI_STATUS_REC_MASTER_ABORT)
    assert vc.read_int(R.PCI_STATUS, 2) & STATUS_W1C == R.PCI_STATUS_DETECTED_PARITY
    # and without the emulation a STATUS write does nothing at all (kernel: STATUS is NO_WRITE)
    before = edu.hw16(R.PCI_STATUS)
    VirtualConfig(edu.region).write_int(R.PCI_STATUS, 2, 0xFFFF)
    assert edu.hw16(R.PCI_STATUS) == before


def test_out_of_range_accesses_are_refused(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    assert vc.size == 256 == detect_config_size(edu.region)
    for off, size in ((256, 1), (252, 8), (-1, 1), (0, 0)):
        with pytest.raises(ValueError, match="outside the 256-byte config space"):
            vc.read(off, size)
    with pytest.raises(ValueError, match="outside"):
        vc.write(255, b"\0\0")


def test_config_size_4k_for_express_and_detected_without_region_info(gen: Opened) -> None:
    assert VirtualConfig(gen.region).size == 4096

    class Bare:  # only config_read/config_write: size found by probing 0x100
        def config_read(self, off: int, size: int) -> bytes:
            return gen.region.config_read(off, size)

        def config_write(self, off: int, data: bytes) -> None:
            gen.region.config_write(off, data)

    assert detect_config_size(Bare()) == 4096


# -- header registers ---------------------------------------------------------------------------------

def test_command_bits_and_their_events(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    got = events_of(vc)
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER | R.PCI_COMMAND_INTX_DISABLE)
    kinds = [e.kind for e in got]
    assert "command" in kinds and "intx-disable" in kinds
    intx = next(e for e in got if e.kind == "intx-disable")
    assert (intx.old, intx.new) == (0, 1)
    # INTx disable is virtual in the kernel (it masks INTx itself, and for a PCI 2.3 function lets the
    # physical bit follow the virtual one -- __vfio_pci_intx_mask); the guest reads its own value
    assert vc.read_int(R.PCI_COMMAND, 2) & R.PCI_COMMAND_INTX_DISABLE
    assert edu.hw16(R.PCI_COMMAND) & R.PCI_COMMAND_MASTER
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY)
    assert [(e.old, e.new) for e in got if e.kind == "intx-disable"][-1] == (1, 0)
    assert not vc.read_int(R.PCI_COMMAND, 2) & R.PCI_COMMAND_INTX_DISABLE


def test_status_cap_list_and_interrupt_status(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    assert vc.read_int(R.PCI_STATUS, 2) & R.PCI_STATUS_CAP_LIST
    assert not vc.read_int(R.PCI_STATUS, 2) & R.PCI_STATUS_INTERRUPT
    edu.hw.raise_irq("intx")  # the line is asserted: STATUS.INTERRUPT is the device's, read through
    assert vc.read_int(R.PCI_STATUS, 2) & R.PCI_STATUS_INTERRUPT
    edu.hw.lower_intx()
    assert not vc.read_int(R.PCI_STATUS, 2) & R.PCI_STATUS_INTERRUPT


def test_multifunction_bit_and_id_overrides_are_emulated(edu: Opened) -> None:
    plain = VirtualConfig(edu.region)
    assert plain.read_int(R.PCI_HEADER_TYPE, 1) & R.PCI_HEADER_TYPE_MFD == 0
    vc = VirtualConfig(edu.region, multifunction=True, ids={"device": 0xBEEF, "subsystem": 0x4242})
    assert vc.read_int(R.PCI_HEADER_TYPE, 1) & R.PCI_HEADER_TYPE_MFD
    assert vc.read_int(R.PCI_DEVICE_ID, 2) == 0xBEEF and vc.read_int(R.PCI_VENDOR_ID, 2) == 0x1234
    assert vc.read_int(R.PCI_SUBSYSTEM_ID, 2) == 0x4242
    vc.write_int(R.PCI_DEVICE_ID, 2, 0x1111)  # read-only, emulated: stays
    assert vc.read_int(R.PCI_DEVICE_ID, 2) == 0xBEEF
    with pytest.raises(ValueError, match="unknown ID override"):
        VirtualConfig(edu.region, ids={"revision": 2})


def test_interrupt_line_and_pin(edu: Opened) -> None:
    vc = VirtualConfig(edu.region)
    assert vc.read_int(R.PCI_INTERRUPT_PIN, 1) == 1
    hw_line = edu.hw.r8(R.PCI_INTERRUPT_LINE)
    vc.write_int(R.PCI_INTERRUPT_LINE, 1, 0x5A)
    assert vc.read_int(R.PCI_INTERRUPT_LINE, 1) == 0x5A  # kernel-virtual, read through the device region
    assert edu.hw.r8(R.PCI_INTERRUPT_LINE) == hw_line == 0  # the hardware register is untouched


# -- BAR sizing and placement ---------------------------------------------------------------------------

def test_kernel_bar_sizing_through_vfio(gen: Opened) -> None:
    bars = probe_bar_sizes(gen.region)
    assert bars[0] is not None and (bars[0].kind, bars[0].size) == ("mem32", 0x4000)
    assert bars[2] is not None and (bars[2].kind, bars[2].size, bars[2].prefetchable) == ("mem64", 0x100000, True)
    assert bars[3] is None  # the upper half of BAR2
    assert bars[4] is not None and (bars[4].kind, bars[4].size) == ("io", 0x40)
    assert bars[6] is not None and (bars[6].kind, bars[6].size) == ("rom", 0x10000)
    assert [b is None for b in bars] == [False, True, False, True, False, True, False]
    again = probe_bar(gen.region, 0)
    assert again is not None and again.address == gen.hw.bars[0].address  # the kernel's copy holds the host address


def test_probe_restores_every_register(gen: Opened) -> None:
    before = gen.region.config_read(R.PCI_BASE_ADDRESS_0, 0x34 - 0x10 + 4)
    probe_bar_sizes(gen.region)
    assert gen.region.config_read(R.PCI_BASE_ADDRESS_0, 0x34 - 0x10 + 4) == before


def test_guest_bar_sizing_reads_size_mask_with_type_bits(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    assert [b.index if b else None for b in vc.bars] == [0, None, 2, None, 4, None, 6]
    assert u32(vc, R.PCI_BASE_ADDRESS_0) == 0  # unassigned until the guest places it
    for index, low, high in ((0, 0xFFFFC000, None), (2, 0xFFF0000C, 0xFFFFFFFF), (4, 0xFFFFFFC1, None)):
        off = R.PCI_BASE_ADDRESS_0 + 4 * index
        vc.write_int(off, 4, 0xFFFFFFFF)
        assert u32(vc, off) == low
        if high is not None:
            vc.write_int(off + 4, 4, 0xFFFFFFFF)
            assert u32(vc, off + 4) == high
    vc.write_int(R.PCI_ROM_ADDRESS, 4, R.PCI_ROM_ADDRESS_MASK)  # QEMU's ROM probe value (enable clear)
    assert u32(vc, R.PCI_ROM_ADDRESS) == 0xFFFF0000
    vc.write_int(R.PCI_ROM_ADDRESS, 4, 0xFFFFFFFF)
    assert u32(vc, R.PCI_ROM_ADDRESS) == 0xFFFF0001  # the enable bit is writable
    # the guest's all-ones never reached the device's BARs (the kernel keeps them virtual)
    assert gen.hw.r32(R.PCI_BASE_ADDRESS_0) == gen.hw.bars[0].address | 0


def test_bar_sizes_from_region_info_match_probing(gen: Opened) -> None:
    from_info = VirtualConfig(gen.region)
    region = gen.region

    class NoInfo:
        def config_read(self, off: int, size: int) -> bytes:
            return region.config_read(off, size)

        def config_write(self, off: int, data: bytes) -> None:
            region.config_write(off, data)

    probed = VirtualConfig(NoInfo(), size=4096)
    assert [(b.kind, b.size) if b else None for b in from_info.bars] == \
        [(b.kind, b.size) if b else None for b in probed.bars]


def test_explicit_bar_sizes_are_used_and_checked(gen: Opened) -> None:
    vc = VirtualConfig(gen.region, bar_sizes=[0x8000, 0, 0x100000, 0, 0x40, 0, 0])
    assert vc.bars[0] is not None and vc.bars[0].size == 0x8000 and vc.bars[6] is None
    with pytest.raises(ValueError, match="needs 6 sizes"):
        VirtualConfig(gen.region, bar_sizes=[0x1000])
    with pytest.raises(ValueError, match="not a power of two"):
        VirtualConfig(gen.region, bar_sizes=[0x3000, 0, 0x100000, 0, 0x40, 0])


def test_bar_placement_follows_command_and_register(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    vc.write_int(R.PCI_COMMAND, 2, 0)
    got = events_of(vc)
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    vc.write_int(R.PCI_BASE_ADDRESS_2, 4, 0x0000000C)
    vc.write_int(R.PCI_BASE_ADDRESS_3, 4, 0x00000080)  # BAR2 = 0x80_0000_0000 (64-bit, above 4 GiB)
    vc.write_int(R.PCI_BASE_ADDRESS_4, 4, 0xC001)
    assert got == [] and vc.mapped_bars() == {}  # decode off: nothing placed
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY)
    assert vc.mapped_bars() == {0: (0xFE000000, 0x4000), 2: (0x80_0000_0000, 0x100000)}
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_IO)
    assert vc.mapped_bars()[4] == (0xC000, 0x40)
    moves = [(e.index, e.old, e.new) for e in got if e.kind == "bar-map"]
    assert moves == [(0, None, 0xFE000000), (2, None, 0x80_0000_0000), (4, None, 0xC000)]
    got.clear()
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFD004000)  # remap: low bits under the size are dropped
    assert [(e.index, e.old, e.new) for e in got] == [(0, 0xFE000000, 0xFD004000 & ~0x3FFF)]
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFFFFFFFF)  # sizing parks the BAR: unmapped
    assert 0 not in vc.mapped_bars()


def test_rom_bar_is_placed_only_when_enabled(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY)
    vc.write_int(R.PCI_ROM_ADDRESS, 4, 0xFEB00000)
    assert 6 not in vc.mapped_bars()
    vc.write_int(R.PCI_ROM_ADDRESS, 4, 0xFEB00001)
    assert vc.mapped_bars()[6] == (0xFEB00000, 0x10000)
    assert not VirtualConfig(gen.region, rombar=False).bars[6]


def test_bar_mmap_windows_around_the_msix_table(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    assert vc.msix is not None and vc.msix.layout.table_bar == 0
    # BAR0 16 KiB, table at 0x2000 (16 vectors, 256 bytes), PBA at 0x2100: the table page is trapped
    assert vc.mmap_windows(0, page_size=4096) == [(0, 0x2000), (0x3000, 0x1000)]
    assert vc.mmap_windows(2, page_size=4096) == [(0, 0x100000)]
    assert vc.mmap_windows(4) == []  # I/O BARs are never mapped


# -- capabilities ---------------------------------------------------------------------------------------

def test_chain_rebuilt_with_emulated_next_bytes(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    kernel_chain = [(c.offset, c.id) for c in __import__("pyvfio.pci", fromlist=["x"]).standard_capabilities(
        gen.region.config_read(0, 256))]
    assert [(c.offset, c.id) for c in vc.capabilities] == kernel_chain
    for cap in vc.capabilities:
        assert vc.emulated[cap.offset + 1] == 0xFF
    assert vc.emulated[R.PCI_CAPABILITY_LIST] == 0xFF


def test_hidden_capability_is_unlinked_from_the_guest_chain(gen: Opened) -> None:
    vc = VirtualConfig(gen.region, hide_caps={R.PCI_CAP_ID_PM})
    from pyvfio.pci import standard_capabilities

    seen = standard_capabilities(vc.read(0, 256))
    assert R.PCI_CAP_ID_PM not in [c.id for c in seen]
    assert [c.id for c in seen] == [c.id for c in vc.capabilities]
    none = VirtualConfig(gen.region, hide_caps=range(256))
    assert not none.read_int(R.PCI_STATUS, 2) & R.PCI_STATUS_CAP_LIST
    assert none.read_int(R.PCI_CAPABILITY_LIST, 1) == 0


def test_extended_chain_masked_head_becomes_id0_placeholder(kernel: Kernel) -> None:
    o = Opened(kernel, "pci", express=True, hidden_ecap_first=True)
    try:
        raw = o.region.config_read(0, 4096)
        head = int.from_bytes(raw[0x100:0x104], "little")
        assert head & 0xFFFFF == 0  # the kernel already hid the PASID head: ID 0, version 0
        vc = VirtualConfig(o.region)
        from pyvfio.pci import extended_capabilities

        seen = extended_capabilities(vc.read(0, 4096))
        assert seen[0].id == 0 and seen[0].offset == 0x100
        assert [c.id for c in seen[1:]] == [R.PCI_EXT_CAP_ID_ERR]
        assert [c.id for c in vc.ext_capabilities] == [R.PCI_EXT_CAP_ID_ERR]
    finally:
        o.close()


def test_dropping_an_extended_capability(gen: Opened) -> None:
    vc = VirtualConfig(gen.region, hide_ext_caps={R.PCI_EXT_CAP_ID_ERR})
    from pyvfio.pci import extended_capabilities

    assert extended_capabilities(vc.read(0, 4096)) == []
    assert vc.read_int(0x100, 4) == 0  # nothing kept: the spec's "no extended capabilities" header
    assert gen.region.config_read(0x100, 2) == R.PCI_EXT_CAP_ID_ERR.to_bytes(2, "little")  # the kernel shows it


def test_looping_device_chain_is_refused_at_setup(kernel: Kernel) -> None:
    o = Opened(kernel, "edu")
    try:
        class Looping:
            def config_read(self, off: int, size: int) -> bytes:
                data = bytearray(o.region.config_read(off, size))
                if off <= 0x41 < off + size:
                    data[0x41 - off] = 0x40  # MSI's NEXT points at itself
                return bytes(data)

            def config_write(self, off: int, data: bytes) -> None:
                o.region.config_write(off, data)

        from pyvfio.pci import CapabilityChainError

        with pytest.raises(CapabilityChainError, match="loops back"):
            VirtualConfig(Looping(), size=256)
    finally:
        o.close()


# -- reset ---------------------------------------------------------------------------------------------

def test_reset_returns_to_power_on_and_announces_it(gen: Opened) -> None:
    vc = VirtualConfig(gen.region)
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER)
    assert vc.msi is not None
    vc.write_int(vc.msi.offset + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE)
    got = events_of(vc)
    vc.reset()
    kinds = [e.kind for e in got]
    assert "msi-disable" in kinds and ("bar-map", 0) in [(e.kind, e.index) for e in got]
    assert u32(vc, R.PCI_BASE_ADDRESS_0) == 0 and vc.mapped_bars() == {}
    assert not gen.hw16(R.PCI_COMMAND) & (R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY)
    assert not vc.msi.enabled


def test_nothing_leaks_descriptors(kernel: Kernel) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        o = Opened(kernel, "pci", **GENERIC)
        VirtualConfig(o.region).save()
        o.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_repr_names_the_device(edu: Opened) -> None:
    text = repr(VirtualConfig(edu.region))
    assert "1234:11e8" in text and "BAR0 mem32 0x100000" in text
