"""Base address registers: decoding them, sizing them, and deciding where a guest has mapped them.

A BAR register holds an address in its upper bits and read-only type bits at the bottom: bit 0 says
I/O (1) or memory (0); for memory, bits 2:1 say 32-bit (00) or 64-bit (10, the next register holds the
upper half) and bit 3 says prefetchable.  Software sizes a BAR by writing all ones and reading back:
only the address bits the device decodes stick, so the lowest set address bit is the size.  The
expansion ROM BAR works the same with an enable bit (bit 0) instead of type bits and address bits from
11 up.

Three parties play this game for an assigned device, and this module serves all three:

- the *kernel* (``vfio_bar_fixup``) answers sizing on its virtual copy of the BARs: whatever was written,
  reads return ``(written & ~(size - 1)) | type bits`` -- :func:`probe_bar_sizes` sizes a device through it;
- the *VMM* (QEMU's PCI core) keeps its own copy with a write mask of ``~(size - 1)``, so the guest's
  all-ones write reads back as the size mask, and decides from COMMAND and the BAR value where the BAR
  is mapped in the guest (:func:`bar_address`, QEMU's ``pci_bar_address``);
- a *viewer* (lspci) just decodes: :func:`decode_bars`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Protocol, Sequence

from ..uapi import pci_regs as R

#: BAR index of the expansion ROM in VFIO's region numbering (``VFIO_PCI_ROM_REGION_INDEX``).
ROM_INDEX = 6
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


class ConfigAccess(Protocol):
    """Anything with a config space: a vfio device (region 7), a :class:`~pyvfio.pci.config.VirtualConfig`."""

    def config_read(self, offset: int, size: int) -> bytes: ...

    def config_write(self, offset: int, data: bytes) -> object: ...


@dataclasses.dataclass(frozen=True)
class BarInfo:
    """One implemented BAR as decoded from config space.

    ``kind`` is ``"io"``, ``"mem32"``, ``"mem64"`` or ``"mem1m"`` (the obsolete below-1M type) or
    ``"rom"``; ``address`` has the type bits removed; ``size`` is None when the source cannot tell
    (a dump holds no sizes); ``enabled`` is the ROM enable bit (always True for other BARs).
    """

    index: int
    kind: str
    address: int
    size: Optional[int] = None
    prefetchable: bool = False
    enabled: bool = True

    @property
    def is_io(self) -> bool:
        return self.kind == "io"

    @property
    def is_64(self) -> bool:
        return self.kind == "mem64"

    @property
    def type_bits(self) -> int:
        """The read-only low bits this BAR shows in its register."""
        if self.kind == "io":
            return R.PCI_BASE_ADDRESS_SPACE_IO
        if self.kind == "rom":
            return 0
        bits = {"mem32": R.PCI_BASE_ADDRESS_MEM_TYPE_32, "mem64": R.PCI_BASE_ADDRESS_MEM_TYPE_64,
                "mem1m": R.PCI_BASE_ADDRESS_MEM_TYPE_1M}[self.kind]
        return bits | (R.PCI_BASE_ADDRESS_MEM_PREFETCH if self.prefetchable else 0)


def bar_kind(register: int) -> str:
    """The kind of BAR a register's low bits describe."""
    if register & R.PCI_BASE_ADDRESS_SPACE_IO:
        return "io"
    mem_type = register & R.PCI_BASE_ADDRESS_MEM_TYPE_MASK
    if mem_type == R.PCI_BASE_ADDRESS_MEM_TYPE_64:
        return "mem64"
    if mem_type == R.PCI_BASE_ADDRESS_MEM_TYPE_1M:
        return "mem1m"
    return "mem32"


def size_from_readback(value: int, kind: str) -> int:
    """The size a sizing read-back reveals: the lowest address bit that stuck (0 = not implemented).

    ``value`` is the register after the all-ones write, 64 bits wide for a 64-bit BAR (upper register
    in the high half).  Only address bits count: the type bits (or the ROM enable bit) are masked first.
    An I/O BAR's upper 16 bits may read as zero on hardware that decodes 16-bit ports only; that does not
    change the lowest set bit.
    """
    if kind == "io":
        mask = R.PCI_BASE_ADDRESS_IO_MASK & U32
    elif kind == "rom":
        mask = R.PCI_ROM_ADDRESS_MASK
    elif kind == "mem64":
        mask = R.PCI_BASE_ADDRESS_MEM_MASK & U64
    else:
        mask = R.PCI_BASE_ADDRESS_MEM_MASK & U32
    bits = value & mask
    return bits & -bits


def decode_bars(config: bytes, sizes: Optional[Sequence[Optional[int]]] = None) -> list[BarInfo]:
    """The implemented BARs of a type-0 header (ROM last), from raw config bytes.

    ``sizes`` (7 entries, ROM last) come from elsewhere -- sysfs ``resource``, VFIO region info --
    because a config dump cannot tell sizes.  A BAR whose register is zero and whose size is unknown
    or zero is not implemented and not listed; the upper half of a 64-bit BAR is never listed.
    """
    if len(config) < R.PCI_STD_HEADER_SIZEOF:
        raise ValueError(f"a config header is {R.PCI_STD_HEADER_SIZEOF} bytes; got {len(config)}")
    header_type = config[R.PCI_HEADER_TYPE] & R.PCI_HEADER_TYPE_MASK
    nbars = {R.PCI_HEADER_TYPE_NORMAL: 6, R.PCI_HEADER_TYPE_BRIDGE: 2}.get(header_type, 0)
    rom_at = R.PCI_ROM_ADDRESS1 if header_type == R.PCI_HEADER_TYPE_BRIDGE else R.PCI_ROM_ADDRESS

    def size_of(i: int) -> Optional[int]:
        if sizes is None or i >= len(sizes):
            return None
        return sizes[i]

    bars: list[BarInfo] = []
    i = 0
    while i < nbars:
        reg = int.from_bytes(config[R.PCI_BASE_ADDRESS_0 + 4 * i: R.PCI_BASE_ADDRESS_0 + 4 * i + 4], "little")
        kind = bar_kind(reg)
        size = size_of(i)
        if kind == "io":
            address = reg & R.PCI_BASE_ADDRESS_IO_MASK & U32
        else:
            address = reg & R.PCI_BASE_ADDRESS_MEM_MASK & U32
        step = 1
        if kind == "mem64" and i + 1 < nbars:
            upper = int.from_bytes(config[R.PCI_BASE_ADDRESS_0 + 4 * i + 4: R.PCI_BASE_ADDRESS_0 + 4 * i + 8],
                                   "little")
            address |= upper << 32
            step = 2
        if reg or size:
            bars.append(BarInfo(i, kind, address, size,
                                prefetchable=kind != "io" and bool(reg & R.PCI_BASE_ADDRESS_MEM_PREFETCH)))
        i += step
    if header_type in (R.PCI_HEADER_TYPE_NORMAL, R.PCI_HEADER_TYPE_BRIDGE):
        reg = int.from_bytes(config[rom_at: rom_at + 4], "little")
        size = size_of(ROM_INDEX)
        if reg or size:
            bars.append(BarInfo(ROM_INDEX, "rom", reg & R.PCI_ROM_ADDRESS_MASK, size,
                                enabled=bool(reg & R.PCI_ROM_ADDRESS_ENABLE)))
    return bars


def _read32(dev: ConfigAccess, offset: int) -> int:
    return int.from_bytes(dev.config_read(offset, 4), "little")


def _write32(dev: ConfigAccess, offset: int, value: int) -> None:
    dev.config_write(offset, (value & U32).to_bytes(4, "little"))


def probe_bar(dev: ConfigAccess, index: int) -> Optional[BarInfo]:
    """Size BAR ``index`` (6 = ROM) the way software sizes hardware: all ones, read back, restore.

    Through a vfio device this exercises the kernel's emulation (``vfio_bar_fixup``): the write only
    touches the kernel's virtual copy and the original value is written back.  Returns None for an
    unimplemented BAR and for the upper half of a 64-bit one (index must name the lower half).
    """
    if index == ROM_INDEX:
        orig = _read32(dev, R.PCI_ROM_ADDRESS)
        try:
            _write32(dev, R.PCI_ROM_ADDRESS, R.PCI_ROM_ADDRESS_MASK)
            back = _read32(dev, R.PCI_ROM_ADDRESS)
        finally:
            _write32(dev, R.PCI_ROM_ADDRESS, orig)
        size = size_from_readback(back, "rom")
        if not size:
            return None
        return BarInfo(ROM_INDEX, "rom", orig & R.PCI_ROM_ADDRESS_MASK, size,
                       enabled=bool(orig & R.PCI_ROM_ADDRESS_ENABLE))
    if not 0 <= index < R.PCI_STD_NUM_BARS:
        raise ValueError(f"BAR index {index} is not 0-5 (or 6 for the ROM)")
    pos = R.PCI_BASE_ADDRESS_0 + 4 * index
    orig = _read32(dev, pos)
    kind = bar_kind(orig)
    is64 = kind == "mem64" and index < R.PCI_STD_NUM_BARS - 1
    orig_hi = _read32(dev, pos + 4) if is64 else 0
    try:
        _write32(dev, pos, U32)
        back = _read32(dev, pos)
        if is64:
            _write32(dev, pos + 4, U32)
            back |= _read32(dev, pos + 4) << 32
    finally:
        _write32(dev, pos, orig)
        if is64:
            _write32(dev, pos + 4, orig_hi)
    size = size_from_readback(back, kind)
    if not size:
        return None
    mask = R.PCI_BASE_ADDRESS_IO_MASK if kind == "io" else R.PCI_BASE_ADDRESS_MEM_MASK
    address = ((orig_hi << 32) | orig) & mask & U64
    return BarInfo(index, kind, address, size,
                   prefetchable=kind != "io" and bool(orig & R.PCI_BASE_ADDRESS_MEM_PREFETCH))


def probe_bar_sizes(dev: ConfigAccess) -> list[Optional[BarInfo]]:
    """All seven BARs (ROM last) sized by :func:`probe_bar`; the upper half of a 64-bit BAR is None."""
    out: list[Optional[BarInfo]] = [None] * (ROM_INDEX + 1)
    i = 0
    while i < R.PCI_STD_NUM_BARS:
        info = probe_bar(dev, i)
        out[i] = info
        i += 2 if info is not None and info.is_64 else 1
    out[ROM_INDEX] = probe_bar(dev, ROM_INDEX)
    return out


#: ``PCI_BAR_UNMAPPED`` in QEMU: the value "not mapped" is represented by.
UNMAPPED = None


def bar_address(kind: str, register: int, size: int, command: int) -> Optional[int]:
    """Where the guest has placed a BAR, or None (unmapped) -- QEMU's ``pci_bar_address`` rules.

    ``register`` is the BAR's current value (64 bits for a 64-bit BAR, the ROM register for ``"rom"``).
    A BAR is unmapped while its decode is disabled in COMMAND (I/O or memory), a ROM while its enable
    bit is clear, and whenever the address is 0, wraps, or (for 32-bit BARs) reaches 4 GiB -- those
    values mean "not placed yet" during enumeration, when software parks BARs at 0 or at all ones.
    """
    if kind == "io":
        if not command & R.PCI_COMMAND_IO:
            return UNMAPPED
        base = register & ~(size - 1) & U32
        last = base + size - 1
        if last <= base or last >= U32 or base == 0:
            return UNMAPPED
        return base
    if not command & R.PCI_COMMAND_MEMORY:
        return UNMAPPED
    if kind == "rom" and not register & R.PCI_ROM_ADDRESS_ENABLE:
        return UNMAPPED
    base = register & ~(size - 1) & (U64 if kind == "mem64" else U32)
    last = base + size - 1
    if last <= base or base == 0 or last >= U64:
        return UNMAPPED
    if kind != "mem64" and last >= U32:
        return UNMAPPED
    return base


def format_size(size: int) -> str:
    """A size as lspci prints it: the largest power-of-1024 unit that divides it (``512K``, ``64``)."""
    for suffix in ("", "K", "M", "G"):
        if size % 1024:
            return f"{size}{suffix}"
        size //= 1024
    return f"{size}T"


__all__ = ["BarInfo", "ConfigAccess", "ROM_INDEX", "UNMAPPED", "bar_address", "bar_kind", "decode_bars",
           "format_size", "probe_bar", "probe_bar_sizes", "size_from_readback"]
