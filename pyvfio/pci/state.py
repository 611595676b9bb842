"""Saving and restoring a guest's config-space state: an explicit, versioned, big-endian format.

What must survive a migration or a live update of the VMM is what the guest programmed and the device
does not hold for it: BAR placements, COMMAND, MSI address/data/mask, the MSI-X table and pending bits,
and any other emulated register a guest can write.  Everything else is either fixed by the device
(re-read on the other side) or held by the kernel.  The migration and CPR layers embed this blob as is.

Format, version 1 -- every integer big-endian::

    offset  size  field
    0       8     magic  b"PYVFPCI\\0"
    8       2     version (1)
    10      2     number of sections N
    12      ...   N sections, each: tag (4 ASCII bytes), payload length (u32), payload
    end-4   4     CRC-32 (zlib) of every byte before it

    section "DEV "  identity the target must match: vendor u16, device u16, config size u16, 0 u16
    section "HDR "  guest-writable header registers: COMMAND u16, cache line u8, latency timer u8,
                    interrupt line u8, 0 u8
    section "BARS"  count u8, then per implemented BAR: index u8 (6 = ROM), kind u8 (0 I/O, 1 mem32,
                    2 mem64, 3 mem1M, 4 ROM), size u64, register value u64 (as the guest programmed it)
    section "MSI "  (only with an MSI capability) capability offset u16, flags u16, address u64,
                    data u16, mask u32, pending u32
    section "MSIX"  (only with MSI-X) capability offset u16, flags u16, entries u16,
                    table (16 bytes per entry, little-endian as in the BAR), PBA (8 bytes per 64 vectors)
    section "EMUL"  count u16, then per byte: offset u16, value u8 -- other emulated, guest-writable bytes

Sections appear in that order, each at most once; DEV, HDR and BARS are mandatory.  Restoring checks
the whole blob (magic, version, CRC, every length, every field against the target device's layout)
before it changes anything, so a truncated, corrupt or mismatched blob raises :class:`StateError` and
leaves the target as it was.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import TYPE_CHECKING, Optional

from ..uapi import pci_regs as R
from .bars import ROM_INDEX
from .events import ConfigEvent
from .msix import pba_size

if TYPE_CHECKING:
    from .config import VirtualConfig

MAGIC = b"PYVFPCI\0"
VERSION = 1
HEADER = struct.Struct(">8sHH")
SECTION = struct.Struct(">4sI")
CRC = struct.Struct(">I")
SECTION_ORDER = (b"DEV ", b"HDR ", b"BARS", b"MSI ", b"MSIX", b"EMUL")
MANDATORY = (b"DEV ", b"HDR ", b"BARS")
KINDS = ("io", "mem32", "mem64", "mem1m", "rom")
_DEV = struct.Struct(">HHHH")
_HDR = struct.Struct(">HBBBB")
_BAR = struct.Struct(">BBQQ")
_MSI = struct.Struct(">HHQHII")
_MSIX = struct.Struct(">HHH")
_EMUL = struct.Struct(">HB")


class StateError(ValueError):
    """A config-state blob that cannot be restored: truncated, corrupt, another version or another device."""


@dataclasses.dataclass
class ConfigState:
    """The parsed content of a blob (see the module docstring for each field)."""

    vendor: int
    device: int
    config_size: int
    command: int
    cache_line: int
    latency: int
    interrupt_line: int
    bars: list[tuple[int, str, int, int]]  # (index, kind, size, register value)
    msi: Optional[tuple[int, int, int, int, int, int]] = None  # (cap, flags, address, data, mask, pending)
    msix: Optional[tuple[int, int, int, bytes, bytes]] = None  # (cap, flags, entries, table, pba)
    emulated: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (offset, value)


# -- saving ----------------------------------------------------------------------------------------

def _covered(vc: "VirtualConfig") -> set[int]:
    """Bytes another section already carries."""
    covered = set(range(R.PCI_BASE_ADDRESS_0, R.PCI_BASE_ADDRESS_5 + 4))
    covered |= set(range(R.PCI_ROM_ADDRESS, R.PCI_ROM_ADDRESS + 4))
    covered |= {R.PCI_COMMAND, R.PCI_COMMAND + 1, R.PCI_CACHE_LINE_SIZE, R.PCI_LATENCY_TIMER, R.PCI_INTERRUPT_LINE}
    if vc.msi is not None:
        covered |= set(range(vc.msi.offset, vc.msi.offset + vc.msi.size))
    if vc.msix is not None:
        covered |= set(range(vc.msix.offset, vc.msix.offset + R.PCI_CAP_MSIX_SIZEOF))
    return covered


def capture(vc: "VirtualConfig") -> ConfigState:
    """The state of ``vc`` as a :class:`ConfigState`."""
    state = ConfigState(
        vendor=vc.read_int(R.PCI_VENDOR_ID, 2), device=vc.read_int(R.PCI_DEVICE_ID, 2), config_size=vc.size,
        command=vc.get_int(R.PCI_COMMAND, 2), cache_line=vc.read_int(R.PCI_CACHE_LINE_SIZE, 1),
        latency=vc.read_int(R.PCI_LATENCY_TIMER, 1), interrupt_line=vc.read_int(R.PCI_INTERRUPT_LINE, 1),
        bars=[(b.index, b.kind, b.size, vc.bar_register(b)) for b in vc.bars if b is not None])
    if vc.msi is not None:
        m = vc.msi
        state.msi = (m.offset, m.flags, m.address, m.data, m.mask, m.pending)
    if vc.msix is not None:
        x = vc.msix
        state.msix = (x.offset, x.flags, x.entries, bytes(x.table), bytes(x.pba))
    covered = _covered(vc)
    state.emulated = [(pos, vc.config[pos]) for pos in range(vc.size)
                      if pos not in covered and vc.emulated[pos] and (vc.wmask[pos] | vc.w1cmask[pos])]
    return state


def encode(state: ConfigState) -> bytes:
    """The blob for ``state``."""
    sections: list[tuple[bytes, bytes]] = [
        (b"DEV ", _DEV.pack(state.vendor, state.device, state.config_size, 0)),
        (b"HDR ", _HDR.pack(state.command, state.cache_line, state.latency, state.interrupt_line, 0)),
        (b"BARS", bytes([len(state.bars)]) + b"".join(_BAR.pack(i, KINDS.index(k), size, value)
                                                       for i, k, size, value in state.bars)),
    ]
    if state.msi is not None:
        sections.append((b"MSI ", _MSI.pack(*state.msi)))
    if state.msix is not None:
        cap, flags, entries, table, pba = state.msix
        sections.append((b"MSIX", _MSIX.pack(cap, flags, entries) + table + pba))
    if state.emulated:
        sections.append((b"EMUL", struct.pack(">H", len(state.emulated))
                         + b"".join(_EMUL.pack(o, v) for o, v in state.emulated)))
    body = HEADER.pack(MAGIC, VERSION, len(sections))
    body += b"".join(SECTION.pack(tag, len(payload)) + payload for tag, payload in sections)
    return body + CRC.pack(zlib.crc32(body))


def save_state(vc: "VirtualConfig") -> bytes:
    """``vc``'s guest-visible state as a version-1 blob."""
    return encode(capture(vc))


# -- parsing ---------------------------------------------------------------------------------------

def decode(blob: bytes) -> ConfigState:
    """Parse and check a blob's structure (not yet against a device); raises :class:`StateError`."""
    blob = bytes(blob)
    if len(blob) < HEADER.size + CRC.size:
        raise StateError(f"config state is truncated: {len(blob)} bytes, a header and checksum alone need "
                         f"{HEADER.size + CRC.size}")
    magic, version, count = HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise StateError(f"not a pyvfio config state: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise StateError(f"config state version {version} is not supported (this pyvfio reads version {VERSION})")
    (crc,) = CRC.unpack_from(blob, len(blob) - CRC.size)
    if zlib.crc32(blob[:-CRC.size]) != crc:
        raise StateError("config state is corrupt or truncated: its CRC-32 does not match")
    pos, end = HEADER.size, len(blob) - CRC.size
    sections: dict[bytes, bytes] = {}
    last = -1
    for n in range(count):
        if pos + SECTION.size > end:
            raise StateError(f"config state is truncated in the header of section {n + 1} of {count}")
        tag, length = SECTION.unpack_from(blob, pos)
        pos += SECTION.size
        if tag not in SECTION_ORDER:
            raise StateError(f"config state has an unknown section {tag!r} (version {VERSION} knows "
                             f"{', '.join(t.decode() for t in SECTION_ORDER)})")
        if SECTION_ORDER.index(tag) <= last:
            raise StateError(f"config state section {tag.decode()!r} is repeated or out of order")
        last = SECTION_ORDER.index(tag)
        if pos + length > end:
            raise StateError(f"config state is truncated inside section {tag.decode()!r}: {length} bytes "
                             f"announced, {end - pos} left")
        sections[tag] = blob[pos: pos + length]
        pos += length
    if pos != end:
        raise StateError(f"config state has {end - pos} stray bytes after its {count} sections")
    for tag in MANDATORY:
        if tag not in sections:
            raise StateError(f"config state lacks its mandatory {tag.decode()!r} section")

    def exact(tag: bytes, size: int) -> bytes:
        payload = sections[tag]
        if len(payload) != size:
            raise StateError(f"config state section {tag.decode()!r} is {len(payload)} bytes, expected {size}")
        return payload

    vendor, device, config_size, _ = _DEV.unpack(exact(b"DEV ", _DEV.size))
    command, cache_line, latency, interrupt_line, _ = _HDR.unpack(exact(b"HDR ", _HDR.size))
    raw = sections[b"BARS"]
    if not raw or len(raw) != 1 + raw[0] * _BAR.size:
        raise StateError(f"config state section 'BARS' is {len(raw)} bytes, which is not a count and "
                         f"{_BAR.size}-byte entries")
    bars = []
    for i in range(raw[0]):
        index, kind, size, value = _BAR.unpack_from(raw, 1 + i * _BAR.size)
        if kind >= len(KINDS) or index > ROM_INDEX or (kind == 4) != (index == ROM_INDEX):
            raise StateError(f"config state BAR entry {i} is invalid: index {index}, kind {kind}")
        if size == 0 or size & (size - 1):
            raise StateError(f"config state BAR{index} has a size of {size:#x}, not a power of two")
        bars.append((index, KINDS[kind], size, value))
    state = ConfigState(vendor, device, config_size, command, cache_line, latency, interrupt_line, bars)
    if b"MSI " in sections:
        state.msi = _MSI.unpack(exact(b"MSI ", _MSI.size))
    if b"MSIX" in sections:
        raw = sections[b"MSIX"]
        if len(raw) < _MSIX.size:
            raise StateError("config state section 'MSIX' is shorter than its fixed fields")
        cap, flags, entries = _MSIX.unpack_from(raw, 0)
        table_len, pba_len = entries * R.PCI_MSIX_ENTRY_SIZE, pba_size(entries)
        if not 1 <= entries <= 2048 or len(raw) != _MSIX.size + table_len + pba_len:
            raise StateError(f"config state section 'MSIX' is {len(raw)} bytes, which does not fit "
                             f"{entries} vectors")
        state.msix = (cap, flags, entries, raw[_MSIX.size: _MSIX.size + table_len], raw[_MSIX.size + table_len:])
    if b"EMUL" in sections:
        raw = sections[b"EMUL"]
        if len(raw) < 2 or len(raw) != 2 + int.from_bytes(raw[:2], "big") * _EMUL.size:
            raise StateError(f"config state section 'EMUL' is {len(raw)} bytes, which is not a count and "
                             f"{_EMUL.size}-byte entries")
        state.emulated = [_EMUL.unpack_from(raw, 2 + i * _EMUL.size) for i in range(int.from_bytes(raw[:2], "big"))]
    return state


# -- restoring -------------------------------------------------------------------------------------

def check_compatible(vc: "VirtualConfig", state: ConfigState) -> None:
    """Raise :class:`StateError` unless ``state`` describes a device laid out exactly like ``vc``'s."""
    here = (vc.read_int(R.PCI_VENDOR_ID, 2), vc.read_int(R.PCI_DEVICE_ID, 2), vc.size)
    there = (state.vendor, state.device, state.config_size)
    if here != there:
        raise StateError(f"config state is for {there[0]:04x}:{there[1]:04x} ({there[2]} bytes of config), "
                         f"not this {here[0]:04x}:{here[1]:04x} ({here[2]} bytes)")
    mine = [(b.index, b.kind, b.size) for b in vc.bars if b is not None]
    theirs = [(i, k, s) for i, k, s, _ in state.bars]
    if mine != theirs:
        raise StateError(f"config state BARs {theirs} do not match this device's {mine}")
    for index, kind, _size, value in state.bars:
        bar = vc.bars[index]
        assert bar is not None
        if kind != "rom" and value & (0x3 if kind == "io" else 0xF) != bar.type_bits:
            raise StateError(f"config state BAR{index} value {value:#x} has type bits that do not match a "
                             f"{kind} BAR")
    if (state.msi is None) != (vc.msi is None):
        raise StateError("config state and device disagree on having an MSI capability")
    if state.msi is not None and vc.msi is not None:
        cap, flags = state.msi[0], state.msi[1]
        fixed = R.PCI_MSI_FLAGS_QMASK | R.PCI_MSI_FLAGS_64BIT | R.PCI_MSI_FLAGS_MASKBIT
        if cap != vc.msi.offset or flags & fixed != vc.msi.flags & fixed:
            raise StateError(f"config state MSI capability (at {cap:#x}, flags {flags:#06x}) does not match this "
                             f"device's (at {vc.msi.offset:#x}, flags {vc.msi.flags:#06x})")
    if (state.msix is None) != (vc.msix is None):
        raise StateError("config state and device disagree on having an MSI-X capability")
    if state.msix is not None and vc.msix is not None:
        cap, _flags, entries = state.msix[:3]
        if cap != vc.msix.offset or entries != vc.msix.entries:
            raise StateError(f"config state MSI-X capability (at {cap:#x}, {entries} vectors) does not match this "
                             f"device's (at {vc.msix.offset:#x}, {vc.msix.entries} vectors)")
    for offset, _value in state.emulated:
        if not (0 <= offset < vc.size and vc.emulated[offset] and (vc.wmask[offset] | vc.w1cmask[offset])):
            raise StateError(f"config state sets byte {offset:#x}, which this device does not emulate as writable")


def apply(vc: "VirtualConfig", state: ConfigState) -> None:
    """Install a checked ``state`` into ``vc`` and the device, then announce what changed."""
    check_compatible(vc, state)
    # Build the new copy aside; nothing of vc changes until the device accepted its registers.
    config = bytearray(vc.config)

    def put(buf: bytearray, offset: int, size: int, value: int) -> None:
        buf[offset: offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    put(config, R.PCI_COMMAND, 2, state.command)
    put(config, R.PCI_CACHE_LINE_SIZE, 1, state.cache_line)
    put(config, R.PCI_LATENCY_TIMER, 1, state.latency)
    put(config, R.PCI_INTERRUPT_LINE, 1, state.interrupt_line)
    for index, _kind, _size, value in state.bars:
        bar = vc.bars[index]
        assert bar is not None
        put(config, bar.offset, bar.width, value)
    if state.msi is not None and vc.msi is not None:
        m = vc.msi
        _cap, flags, address, data, mask, pending = state.msi
        put(config, m.offset + R.PCI_MSI_FLAGS, 2, flags)
        put(config, m.offset + R.PCI_MSI_ADDRESS_LO, 4, address)
        if m.is_64:
            put(config, m.offset + R.PCI_MSI_ADDRESS_HI, 4, address >> 32)
        put(config, m.data_off, 2, data)
        if m.maskable:
            put(config, m.mask_off, 4, mask)
            put(config, m.pending_off, 4, pending)
    if state.msix is not None and vc.msix is not None:
        put(config, vc.msix.offset + R.PCI_MSIX_FLAGS, 2, state.msix[1])
    for offset, value in state.emulated:
        config[offset] = value

    # The registers the device (kernel) holds for the guest: written through, undone if one fails.
    device_regs = [(R.PCI_COMMAND, 2, state.command), (R.PCI_CACHE_LINE_SIZE, 1, state.cache_line),
                   (R.PCI_LATENCY_TIMER, 1, state.latency), (R.PCI_INTERRUPT_LINE, 1, state.interrupt_line)]
    previous = [(off, vc.device.config_read(off, size)) for off, size, _ in device_regs]
    try:
        for off, size, value in device_regs:
            vc.device.config_write(off, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
    except OSError:
        for off, old in previous:
            try:
                vc.device.config_write(off, old)
            except OSError:
                pass
        raise

    msi_was = vc.msi.enabled if vc.msi is not None else False
    msix_was = vc.msix.enabled if vc.msix is not None else False
    vc.config[:] = config
    if state.msix is not None and vc.msix is not None:
        vc.msix.table[:] = state.msix[3]
        vc.msix.pba[:] = state.msix[4]
        vc.msix.pba_trapped = any(state.msix[4])
    events: list[ConfigEvent] = []
    vc.update_mappings(events)
    if vc.msi is not None and vc.msi.enabled != msi_was:
        events.append(ConfigEvent("msi-enable", new=vc.msi.vectors) if vc.msi.enabled else ConfigEvent("msi-disable"))
    if vc.msix is not None and vc.msix.enabled != msix_was:
        events.append(ConfigEvent("msix-enable", new=vc.msix.entries) if vc.msix.enabled
                      else ConfigEvent("msix-disable"))
    vc.emit(events)


def restore_state(vc: "VirtualConfig", blob: bytes) -> None:
    """Parse, check and install a blob into ``vc`` (all or nothing)."""
    apply(vc, decode(blob))


__all__ = ["ConfigState", "MAGIC", "StateError", "VERSION", "apply", "capture", "check_compatible", "decode",
           "encode", "restore_state", "save_state"]
