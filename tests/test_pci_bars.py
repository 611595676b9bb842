"""BAR decoding, size read-back arithmetic and QEMU's placement rules, on raw values."""

from __future__ import annotations

import pytest

from pyvfio.pci import bars as B
from pyvfio.uapi import pci_regs as R


def header(bars: list[int], rom: int = 0, header_type: int = 0) -> bytes:
    cfg = bytearray(64)
    cfg[R.PCI_HEADER_TYPE] = header_type
    for i, value in enumerate(bars):
        cfg[R.PCI_BASE_ADDRESS_0 + 4 * i: R.PCI_BASE_ADDRESS_0 + 4 * i + 4] = value.to_bytes(4, "little")
    cfg[R.PCI_ROM_ADDRESS: R.PCI_ROM_ADDRESS + 4] = rom.to_bytes(4, "little")
    return bytes(cfg)


@pytest.mark.parametrize("register, kind", [(0x0, "mem32"), (0x1, "io"), (0x4, "mem64"), (0x2, "mem1m"),
                                            (0xC, "mem64"), (0xFEB00008, "mem32")])
def test_bar_kind_from_type_bits(register: int, kind: str) -> None:
    assert B.bar_kind(register) == kind


@pytest.mark.parametrize("value, kind, size", [
    (0xFFF00000, "mem32", 0x100000),
    (0xFFFFC000 | 0x8, "mem32", 0x4000),  # prefetch bit is not an address bit
    (0xFFFFFFC1, "io", 0x40),
    (0x0000FFC1, "io", 0x40),  # 16-bit I/O decoders read the upper half as zero
    (0xFFFFFFFF_FFF0000C, "mem64", 0x100000),
    (0xFFFFFFF0_0000000C, "mem64", 0x10_0000_0000),  # a 64 GiB BAR: size lives in the upper register
    (0xFFFF0000, "rom", 0x10000),
    (0xFFFF0001, "rom", 0x10000),  # the enable bit is not an address bit
    (0x0, "mem32", 0),
])
def test_size_from_readback(value: int, kind: str, size: int) -> None:
    assert B.size_from_readback(value, kind) == size


def test_decode_bars_with_64bit_pairs_io_prefetch_and_rom() -> None:
    cfg = header([0xFEB00000, 0xC001, 0xFEA0000C, 0x00000001, 0, 0], rom=0xFE800001)
    bars = B.decode_bars(cfg, sizes=[0x1000, 0x40, 0x100000, 0, 0, 0, 0x40000])
    assert [(b.index, b.kind, b.address, b.size, b.prefetchable) for b in bars] == [
        (0, "mem32", 0xFEB00000, 0x1000, False), (1, "io", 0xC000, 0x40, False),
        (2, "mem64", 0x1_FEA00000, 0x100000, True), (6, "rom", 0xFE800000, 0x40000, False)]
    assert bars[3].enabled and bars[2].type_bits == 0xC and bars[1].type_bits == 1 and bars[3].type_bits == 0
    assert bars[2].is_64 and bars[1].is_io


def test_decode_bars_lists_unassigned_bars_only_when_a_size_says_they_exist() -> None:
    cfg = header([0, 0, 0, 0, 0, 0])
    assert B.decode_bars(cfg) == []
    assert [b.index for b in B.decode_bars(cfg, sizes=[0, 0x1000, 0, 0, 0, 0, 0])] == [1]


def test_decode_bars_of_a_bridge_and_short_input() -> None:
    cfg = header([0xFE000000, 0xFD000000, 0x00010100, 0, 0, 0], header_type=R.PCI_HEADER_TYPE_BRIDGE)
    assert [b.index for b in B.decode_bars(cfg)] == [0, 1]  # only two BARs; 0x18 holds bus numbers
    with pytest.raises(ValueError, match="64 bytes"):
        B.decode_bars(bytes(32))


@pytest.mark.parametrize("kind, register, size, command, where", [
    ("mem32", 0xFE000000, 0x1000, R.PCI_COMMAND_MEMORY, 0xFE000000),
    ("mem32", 0xFE000000, 0x1000, R.PCI_COMMAND_IO, None),  # memory decode off
    ("mem32", 0xFE000FFF, 0x1000, R.PCI_COMMAND_MEMORY, 0xFE000000),  # low bits below the size ignored
    ("mem32", 0, 0x1000, R.PCI_COMMAND_MEMORY, None),  # address 0: not placed
    ("mem32", 0xFFFFF000, 0x1000, R.PCI_COMMAND_MEMORY, None),  # ends at 4 GiB: sizing leftovers
    ("mem64", 0x80_0000_0000, 0x100000, R.PCI_COMMAND_MEMORY, 0x80_0000_0000),
    ("mem64", 0xFFFFFFFF_FFF00000, 0x100000, R.PCI_COMMAND_MEMORY, None),  # would wrap
    ("io", 0xC001, 0x40, R.PCI_COMMAND_IO, 0xC000),
    ("io", 0xC001, 0x40, R.PCI_COMMAND_MEMORY, None),
    ("io", 0xFFFFFFC1, 0x40, R.PCI_COMMAND_IO, None),
    ("rom", 0xFEB00000, 0x10000, R.PCI_COMMAND_MEMORY, None),  # ROM enable bit clear
    ("rom", 0xFEB00001, 0x10000, R.PCI_COMMAND_MEMORY, 0xFEB00000),
    ("rom", 0xFEB00001, 0x10000, 0, None),
])
def test_bar_address_follows_qemu(kind: str, register: int, size: int, command: int, where: object) -> None:
    assert B.bar_address(kind, register, size, command) == where


@pytest.mark.parametrize("size, text", [(64, "64"), (0x1000, "4K"), (0x80000, "512K"), (0x100000, "1M"),
                                        (0x40000000, "1G"), (0x1800, "6K"), (1 << 40, "1T")])
def test_format_size_like_lspci(size: int, text: str) -> None:
    assert B.format_size(size) == text


def test_probe_bar_rejects_bad_index() -> None:
    class Nothing:
        def config_read(self, off: int, size: int) -> bytes:
            return bytes(size)

        def config_write(self, off: int, data: bytes) -> None:
            pass

    with pytest.raises(ValueError, match="BAR index 7"):
        B.probe_bar(Nothing(), 7)
    assert B.probe_bar(Nothing(), 0) is None and B.probe_bar(Nothing(), B.ROM_INDEX) is None
