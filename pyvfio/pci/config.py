"""A guest's view of an assigned device's config space: the emulation a VMM layers over vfio.

Two layers virtualize an assigned function's config space (``SEMANTICS.md`` section 4).  The kernel
(``vfio_pci_config.c``) already hides what userspace must not touch: BARs are virtual, most capability
bytes are read-only, STATUS cannot be written.  A VMM then builds the *guest's* view on top (QEMU
``hw/vfio/pci.c``): it keeps its own copy of config space, a per-byte write mask, a write-1-to-clear
mask, and a per-bit *emulated* mask saying which bits the guest sees from that copy rather than from
the device.  :class:`VirtualConfig` is that second layer, over anything with
``config_read(offset, size)`` / ``config_write(offset, data)`` (a vfio device, or
:class:`~pyvfio.pci.access.VfioConfigRegion` over a raw device fd).

The two rules every access follows:

- **read**: ``(copy & emulated) | (device & ~emulated)`` per byte; the device is read only when some
  bit of the access is not emulated;
- **write**: the data always goes to the device first (the kernel filters what may reach hardware),
  then into the copy through the masks -- ``copy = (copy & ~wmask) | (data & wmask)``, then
  ``copy &= ~(data & w1cmask)`` -- and finally the side effects run: BARs are re-placed when a BAR or
  COMMAND changed, MSI/MSI-X enable transitions and mask changes become :class:`~.events.ConfigEvent`\\ s.

What is emulated, as QEMU does it: the six BARs and the ROM BAR (sized from region info or by probing
the kernel, write mask ``~(size-1)``), the multifunction bit of HEADER_TYPE, the capability pointer and
every capability's NEXT byte (so capabilities can be dropped from the guest's chain), ``STATUS.CAP_LIST``,
the whole MSI and MSI-X capabilities with the MSI-X table and PBA, the first extended capability header
and every extended NEXT pointer, and any register given an override (:meth:`VirtualConfig.emulate`).
COMMAND, STATUS and the rest read from the device; the copy still tracks COMMAND (through its write
mask) because BAR placement depends on the guest's decode enables.  Not modelled: the PCIe capability
rewrites QEMU makes for the bus topology (root-complex vs. downstream placement), quirks, VGA.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Optional, Sequence

from ..uapi import pci_regs as R
from . import bars as B
from .caps import Capability, extended_capabilities, standard_capabilities
from .events import ConfigEvent, Listener
from .msi import MsiCapability, msi_cap_size
from .msix import MsixCapability, MsixLayout, mmap_windows

log = logging.getLogger("pyvfio.pci.config")

#: Extended capabilities QEMU drops from the guest's chain: ID 0 (the kernel's placeholder for a hidden
#: first capability), SR-IOV (read-only VF BARs confuse guest firmware), ARI (needs next-function
#: virtualization) and Resizable BAR.  Version specific: newer QEMU keeps ARI in some configurations.
DEFAULT_HIDDEN_EXT_CAPS = frozenset({0, R.PCI_EXT_CAP_ID_SRIOV, R.PCI_EXT_CAP_ID_ARI, R.PCI_EXT_CAP_ID_REBAR})

#: COMMAND bits a guest may change in the copy (QEMU ``pci_init_wmask``).
COMMAND_WMASK = (R.PCI_COMMAND_IO | R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER | R.PCI_COMMAND_SERR
                 | R.PCI_COMMAND_INTX_DISABLE)
#: STATUS error bits cleared by writing 1 (QEMU ``pci_init_w1cmask``).
STATUS_W1C = (R.PCI_STATUS_PARITY | R.PCI_STATUS_SIG_TARGET_ABORT | R.PCI_STATUS_REC_TARGET_ABORT
              | R.PCI_STATUS_REC_MASTER_ABORT | R.PCI_STATUS_SIG_SYSTEM_ERROR | R.PCI_STATUS_DETECTED_PARITY)
VFIO_PCI_CONFIG_REGION_INDEX = 7


def _ranges_overlap(a: int, alen: int, b: int, blen: int) -> bool:
    return a < b + blen and b < a + alen


@dataclasses.dataclass
class VirtualBar:
    """A BAR as the guest sees it: its fixed type and size, and where the guest placed it (None = nowhere)."""

    index: int
    kind: str
    size: int
    prefetchable: bool = False
    mapped: Optional[int] = None

    @property
    def offset(self) -> int:
        """The BAR register's offset in config space."""
        return R.PCI_ROM_ADDRESS if self.kind == "rom" else R.PCI_BASE_ADDRESS_0 + 4 * self.index

    @property
    def width(self) -> int:
        return 8 if self.kind == "mem64" else 4

    @property
    def type_bits(self) -> int:
        return B.BarInfo(self.index, self.kind, 0, self.size, self.prefetchable).type_bits


def _region_size(device: object, index: int) -> Optional[int]:
    """A device's region size when it can tell (the object layer's ``region(i).size``), else None."""
    region = getattr(device, "region", None)
    if region is None:
        return None
    try:
        size = getattr(region(index), "size")
    except (OSError, ValueError):
        return None
    return int(size) if size is not None else None


def detect_config_size(device: B.ConfigAccess) -> int:
    """256 or 4096: the config region's size when the device can tell, else whether 0x100 can be read."""
    size = _region_size(device, VFIO_PCI_CONFIG_REGION_INDEX)
    if size:
        return min(size, R.PCI_CFG_SPACE_EXP_SIZE)
    try:
        device.config_read(R.PCI_CFG_SPACE_SIZE, 4)
    except (OSError, ValueError):
        return R.PCI_CFG_SPACE_SIZE
    return R.PCI_CFG_SPACE_EXP_SIZE


class VirtualConfig:
    """The guest-visible config space of ``device`` (see the module docstring for the rules).

    Options: ``size`` (default: detected), ``bar_sizes`` (7 sizes, ROM last; default: region info when
    the device offers ``region(i).size``, else sized through the kernel's BAR emulation), ``rombar``
    (expose the ROM BAR, QEMU's ``rombar=1``), ``hide_caps`` (standard capability IDs to drop from the
    guest's chain), ``hide_ext_caps`` (extended IDs to drop), ``multifunction`` (the HEADER_TYPE bit the
    guest sees), ``ids`` (overrides: ``{"vendor": .., "device": .., "subsystem_vendor": .., "subsystem": ..}``).
    """

    def __init__(self, device: B.ConfigAccess, *, size: Optional[int] = None,
                 bar_sizes: Optional[Sequence[int]] = None, rombar: bool = True, hide_caps: Iterable[int] = (),
                 hide_ext_caps: Iterable[int] = DEFAULT_HIDDEN_EXT_CAPS, multifunction: bool = False,
                 ids: Optional[dict[str, int]] = None) -> None:
        self.device = device
        self.size = size if size is not None else detect_config_size(device)
        if self.size not in (R.PCI_CFG_SPACE_SIZE, R.PCI_CFG_SPACE_EXP_SIZE):
            raise ValueError(f"config space is 256 or 4096 bytes, not {self.size}")
        raw = bytes(device.config_read(0, self.size))
        if len(raw) != self.size:
            raise ValueError(f"the device returned {len(raw)} config bytes for a {self.size}-byte read")
        #: QEMU's ``pdev->config``: the emulated copy (authoritative only where ``emulated`` bits are set).
        self.config = bytearray(raw)
        self.wmask = bytearray(self.size)
        self.w1cmask = bytearray(self.size)
        self.emulated = bytearray(self.size)
        self.bars: list[Optional[VirtualBar]] = [None] * (B.ROM_INDEX + 1)
        self.msi: Optional[MsiCapability] = None
        self.msix: Optional[MsixCapability] = None
        self.capabilities: list[Capability] = []
        self.ext_capabilities: list[Capability] = []
        self._listeners: list[Listener] = []
        self._init_header(multifunction, ids or {})
        self._init_bars(raw, bar_sizes, rombar)
        self._init_caps(raw, set(hide_caps))
        self._init_ext_caps(raw, set(hide_ext_caps))

    # -- low-level helpers (also used by the MSI/MSI-X emulation) ----------------------------------
    def get_int(self, offset: int, size: int) -> int:
        """A little-endian value from the emulated copy."""
        return int.from_bytes(self.config[offset: offset + size], "little")

    def set_int(self, offset: int, size: int, value: int) -> None:
        """Store into the emulated copy (no masks, no side effects: for the emulation itself)."""
        self.config[offset: offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def set_wmask(self, offset: int, size: int, mask: int) -> None:
        self.wmask[offset: offset + size] = (mask & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def set_w1cmask(self, offset: int, size: int, mask: int) -> None:
        self.w1cmask[offset: offset + size] = (mask & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def mark_emulated(self, offset: int, size: int, mask: int = -1) -> None:
        """Make these bits come from the copy for the guest (OR-ed into what is already emulated)."""
        bits = (mask & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        for i, b in enumerate(bits):
            self.emulated[offset + i] |= b

    def emulate(self, offset: int, size: int, value: int, *, mask: int = -1, writable: int = 0,
                w1c: int = 0) -> None:
        """Present ``value`` to the guest in the ``mask`` bits of a register (QEMU's ``vfio_add_emulated_*``).

        ``writable`` bits keep guest writes, ``w1c`` bits are cleared by writing 1 (a W1C status register).
        """
        self._check_range(offset, size)
        full = (1 << (8 * size)) - 1
        mask &= full
        old = self.get_int(offset, size)
        self.set_int(offset, size, (old & ~mask) | (value & mask))
        self.mark_emulated(offset, size, mask)
        old_w = int.from_bytes(self.wmask[offset: offset + size], "little")
        self.set_wmask(offset, size, (old_w & ~mask) | (writable & mask))
        old_c = int.from_bytes(self.w1cmask[offset: offset + size], "little")
        self.set_w1cmask(offset, size, (old_c & ~mask) | (w1c & mask & ~writable))

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every :class:`~.events.ConfigEvent` from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def emit(self, events: Iterable[ConfigEvent]) -> None:
        for event in events:
            log.debug("config event %s", event)
            for listener in list(self._listeners):
                listener(event)

    def _check_range(self, offset: int, size: int) -> None:
        if size <= 0 or offset < 0 or offset + size > self.size:
            raise ValueError(f"config access of {size} bytes at {offset:#x} is outside the "
                             f"{self.size}-byte config space")

    # -- setup -----------------------------------------------------------------------------------
    def _init_header(self, multifunction: bool, ids: dict[str, int]) -> None:
        self.set_wmask(R.PCI_COMMAND, 2, COMMAND_WMASK)
        self.set_w1cmask(R.PCI_STATUS, 2, STATUS_W1C)
        self.set_wmask(R.PCI_CACHE_LINE_SIZE, 1, 0xFF)
        self.set_wmask(R.PCI_INTERRUPT_LINE, 1, 0xFF)
        # The guest's topology decides the multifunction bit, not the host's.
        self.emulate(R.PCI_HEADER_TYPE, 1, R.PCI_HEADER_TYPE_MFD if multifunction else 0, mask=R.PCI_HEADER_TYPE_MFD)
        where = {"vendor": R.PCI_VENDOR_ID, "device": R.PCI_DEVICE_ID,
                 "subsystem_vendor": R.PCI_SUBSYSTEM_VENDOR_ID, "subsystem": R.PCI_SUBSYSTEM_ID}
        for name, value in ids.items():
            if name not in where:
                raise ValueError(f"unknown ID override {name!r}; known: {', '.join(where)}")
            self.emulate(where[name], 2, value)

    def _init_bars(self, raw: bytes, bar_sizes: Optional[Sequence[int]], rombar: bool) -> None:
        """``vfio_bars_register``: type from the device's BAR register, size from region info or probing."""
        if bar_sizes is not None and len(bar_sizes) not in (R.PCI_STD_NUM_BARS, B.ROM_INDEX + 1):
            raise ValueError(f"bar_sizes needs 6 sizes (or 7 with the ROM), got {len(bar_sizes)}")
        probed: Optional[list[Optional[B.BarInfo]]] = None
        # The guest starts with every BAR unassigned: the copy holds only type bits, and all of it is emulated.
        self.config[R.PCI_BASE_ADDRESS_0: R.PCI_BASE_ADDRESS_5 + 4] = bytes(24)
        self.config[R.PCI_ROM_ADDRESS: R.PCI_ROM_ADDRESS + 4] = bytes(4)
        self.mark_emulated(R.PCI_BASE_ADDRESS_0, 24)
        self.mark_emulated(R.PCI_ROM_ADDRESS, 4)
        i = 0
        while i < R.PCI_STD_NUM_BARS:
            reg = int.from_bytes(raw[R.PCI_BASE_ADDRESS_0 + 4 * i: R.PCI_BASE_ADDRESS_0 + 4 * i + 4], "little")
            kind = B.bar_kind(reg)
            size: Optional[int] = bar_sizes[i] if bar_sizes is not None else _region_size(self.device, i)
            if size is None:
                if probed is None:
                    probed = B.probe_bar_sizes(self.device)
                info = probed[i]
                size = info.size if info is not None else 0
            if kind == "mem64" and i == R.PCI_STD_NUM_BARS - 1:
                kind = "mem32"  # a 64-bit BAR cannot start in the last slot: treat as 32-bit, as hardware must
            if size:
                if size & (size - 1):
                    raise ValueError(f"BAR{i} size {size:#x} is not a power of two")
                bar = VirtualBar(i, kind, size, kind != "io" and bool(reg & R.PCI_BASE_ADDRESS_MEM_PREFETCH))
                self.bars[i] = bar
                self.set_int(bar.offset, bar.width, bar.type_bits)
                self.set_wmask(bar.offset, bar.width, ~(size - 1))
            i += 2 if kind == "mem64" and size else 1
        if rombar:
            rom_size = bar_sizes[B.ROM_INDEX] if bar_sizes is not None and len(bar_sizes) > B.ROM_INDEX else None
            if rom_size is None:
                info = B.probe_bar(self.device, B.ROM_INDEX)  # vfio_pci_size_rom
                rom_size = info.size if info is not None and info.size else 0
            if rom_size:
                self.bars[B.ROM_INDEX] = VirtualBar(B.ROM_INDEX, "rom", rom_size)
                self.set_wmask(R.PCI_ROM_ADDRESS, 4, ~(rom_size - 1) | R.PCI_ROM_ADDRESS_ENABLE)

    def _init_caps(self, raw: bytes, hide: set[int]) -> None:
        """``vfio_add_capabilities``: rebuild the chain in device order with NEXT bytes emulated."""
        chain = standard_capabilities(raw)  # a looping or out-of-range chain is refused here, clearly
        if not chain:
            return
        kept = [c for c in chain if c.id not in hide]
        self.mark_emulated(R.PCI_CAPABILITY_LIST, 1)
        self.mark_emulated(R.PCI_STATUS, 2, R.PCI_STATUS_CAP_LIST)
        status = self.get_int(R.PCI_STATUS, 2) & ~R.PCI_STATUS_CAP_LIST
        self.set_int(R.PCI_STATUS, 2, status | (R.PCI_STATUS_CAP_LIST if kept else 0))
        self.set_int(R.PCI_CAPABILITY_LIST, 1, kept[0].offset if kept else 0)
        for cap in chain:
            self.mark_emulated(cap.offset + R.PCI_CAP_LIST_NEXT, 1)
        for n, cap in enumerate(kept):
            nxt = kept[n + 1].offset if n + 1 < len(kept) else 0
            self.set_int(cap.offset + R.PCI_CAP_LIST_NEXT, 1, nxt)
            self.capabilities.append(Capability(cap.id, cap.offset, nxt))
            if cap.id == R.PCI_CAP_ID_MSI and self.msi is None:
                flags = int.from_bytes(raw[cap.offset + R.PCI_MSI_FLAGS: cap.offset + R.PCI_MSI_FLAGS + 2], "little")
                if cap.offset + msi_cap_size(flags) > R.PCI_CFG_SPACE_SIZE:
                    raise ValueError(f"the MSI capability at {cap.offset:#x} runs past the standard config space")
                self.msi = MsiCapability(self, cap.offset, flags)
            elif cap.id == R.PCI_CAP_ID_MSIX and self.msix is None:
                self.msix = MsixCapability(self, self._msix_layout(raw, cap.offset))

    def _msix_layout(self, raw: bytes, pos: int) -> MsixLayout:
        """``vfio_msix_early_setup``: where the table and PBA are, checked against the BARs."""
        if pos + R.PCI_CAP_MSIX_SIZEOF > R.PCI_CFG_SPACE_SIZE:
            raise ValueError(f"the MSI-X capability at {pos:#x} runs past the standard config space")

        def reg(off: int, n: int) -> int:
            return int.from_bytes(raw[pos + off: pos + off + n], "little")

        lay = MsixLayout.from_registers(pos, reg(R.PCI_MSIX_FLAGS, 2), reg(R.PCI_MSIX_TABLE, 4),
                                        reg(R.PCI_MSIX_PBA, 4))
        for what, bar_index, (start, end) in (("table", lay.table_bar, lay.table_range()),
                                              ("PBA", lay.pba_bar, lay.pba_range())):
            bar = self.bars[bar_index] if bar_index < R.PCI_STD_NUM_BARS else None
            if bar is None:
                raise ValueError(f"the MSI-X {what} is in BAR{bar_index}, which the device does not implement")
            if end > bar.size:
                raise ValueError(f"hardware reports an invalid MSI-X configuration: the {what} "
                                 f"[{start:#x}, {end:#x}) lies outside BAR{bar_index} ({bar.size:#x} bytes)")
        return lay

    def _init_ext_caps(self, raw: bytes, hide: set[int]) -> None:
        """``vfio_add_ext_cap``: the extended chain rebuilt, dropped IDs unlinked, 0x100 fully emulated."""
        if self.size <= R.PCI_CFG_SPACE_SIZE or not any(c.id == R.PCI_CAP_ID_EXP for c in self.capabilities):
            return
        chain = extended_capabilities(raw)
        if not chain:
            return
        kept = [c for c in chain if c.id not in hide]
        self.mark_emulated(R.PCI_CFG_SPACE_SIZE, 4)
        for cap in chain:
            self.mark_emulated(cap.offset, 4, 0xFFF00000)
        if not kept or kept[0].offset != R.PCI_CFG_SPACE_SIZE:
            # The head cannot be unlinked: it becomes an ID-0 placeholder pointing at the first kept one.
            first = kept[0].offset if kept else 0
            self.set_int(R.PCI_CFG_SPACE_SIZE, 4, first << 20)
        for n, cap in enumerate(kept):
            nxt = kept[n + 1].offset if n + 1 < len(kept) else 0
            self.set_int(cap.offset, 4, cap.id | cap.version << 16 | nxt << 20)
            self.ext_capabilities.append(Capability(cap.id, cap.offset, nxt, extended=True, version=cap.version))

    # -- the guest's accesses ----------------------------------------------------------------------
    def read(self, offset: int, size: int) -> bytes:
        """What the guest reads: emulated bits from the copy, the rest from the device."""
        self._check_range(offset, size)
        emu = self.emulated[offset: offset + size]
        copy = self.config[offset: offset + size]
        if all(b == 0xFF for b in emu):
            return bytes(copy)
        phys = self.device.config_read(offset, size)
        return bytes((c & e) | (p & ~e & 0xFF) for c, e, p in zip(copy, emu, phys))

    def write(self, offset: int, data: bytes) -> None:
        """A guest write: to the device first, then into the copy through the masks, then the side effects."""
        data = bytes(data)
        self._check_range(offset, len(data))
        self.device.config_write(offset, data)  # the kernel decides what reaches hardware
        old_command = self.get_int(R.PCI_COMMAND, 2)
        msi = self.msi
        msi_before = (msi.enabled, msi.mask, (msi.address, msi.data)) if msi is not None else None
        msix = self.msix
        msix_before = (msix.enabled, msix.function_masked) if msix is not None else None
        for i, value in enumerate(data):
            pos = offset + i
            w, c = self.wmask[pos], self.w1cmask[pos]
            byte = (self.config[pos] & ~w) | (value & w)
            self.config[pos] = byte & ~(value & c) & 0xFF
        events: list[ConfigEvent] = []
        size = len(data)
        touches_command = _ranges_overlap(offset, size, R.PCI_COMMAND, 2)
        if touches_command:
            new_command = self.get_int(R.PCI_COMMAND, 2)
            if new_command != old_command:
                events.append(ConfigEvent("command", old=old_command, new=new_command))
                if (new_command ^ old_command) & R.PCI_COMMAND_INTX_DISABLE:
                    events.append(ConfigEvent("intx-disable", old=int(bool(old_command & R.PCI_COMMAND_INTX_DISABLE)),
                                              new=int(bool(new_command & R.PCI_COMMAND_INTX_DISABLE))))
        if touches_command or _ranges_overlap(offset, size, R.PCI_BASE_ADDRESS_0, 24) \
                or _ranges_overlap(offset, size, R.PCI_ROM_ADDRESS, 4):
            self.update_mappings(events)
        if msi is not None and msi_before is not None and _ranges_overlap(offset, size, msi.offset, msi.size):
            msi.after_write(offset, size, msi_before[0], msi_before[1], msi_before[2], events)
        if msix is not None and msix_before is not None \
                and _ranges_overlap(offset, size, msix.offset, R.PCI_CAP_MSIX_SIZEOF):
            msix.after_write(msix_before[0], msix_before[1], events)
        self.emit(events)

    def read_int(self, offset: int, size: int) -> int:
        return int.from_bytes(self.read(offset, size), "little")

    def write_int(self, offset: int, size: int, value: int) -> None:
        self.write(offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    # The same surface as a device, so a VirtualConfig can be decoded (lspci) or sized (probe_bar) itself.
    def config_read(self, offset: int, size: int) -> bytes:
        return self.read(offset, size)

    def config_write(self, offset: int, data: bytes) -> None:
        self.write(offset, data)

    # -- BARs ------------------------------------------------------------------------------------
    def bar_register(self, bar: VirtualBar) -> int:
        """The BAR's current value in the copy (64 bits for a 64-bit BAR)."""
        return self.get_int(bar.offset, bar.width)

    def update_mappings(self, events: list[ConfigEvent]) -> None:
        """``pciupdate_mappings``: re-place every BAR from COMMAND and its register."""
        command = self.get_int(R.PCI_COMMAND, 2)
        for bar in self.bars:
            if bar is None:
                continue
            new = B.bar_address(bar.kind, self.bar_register(bar), bar.size, command)
            if new != bar.mapped:
                events.append(ConfigEvent("bar-map", index=bar.index, old=bar.mapped, new=new))
                bar.mapped = new

    def mapped_bars(self) -> dict[int, tuple[int, int]]:
        """``{index: (guest address, size)}`` of the BARs currently placed."""
        return {b.index: (b.mapped, b.size) for b in self.bars if b is not None and b.mapped is not None}

    def bar_read(self, bar: int, offset: int, size: int) -> Optional[bytes]:
        """Emulated bytes when a guest BAR access hits the MSI-X table/PBA; None means "go to the device"."""
        return self.msix.bar_read(bar, offset, size) if self.msix is not None else None

    def bar_write(self, bar: int, offset: int, data: bytes) -> bool:
        """True when the MSI-X emulation consumed the write; False means "go to the device"."""
        return self.msix.bar_write(bar, offset, data) if self.msix is not None else False

    def mmap_windows(self, bar: int, page_size: Optional[int] = None) -> list[tuple[int, int]]:
        """The page-aligned (offset, size) parts of BAR ``bar`` that need no trapping."""
        vbar = self.bars[bar] if 0 <= bar < R.PCI_STD_NUM_BARS else None
        if vbar is None or vbar.kind == "io":
            return []
        trapped = self.msix.trapped_ranges(bar) if self.msix is not None else []
        return mmap_windows(vbar.size, trapped, page_size) if page_size else mmap_windows(vbar.size, trapped)

    # -- reset -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """The config side of a guest-visible reset (QEMU ``vfio_pci_pre_reset`` + ``pci_do_device_reset``).

        Decode and bus mastering are turned off through the device first (stopping DMA), then the copy
        returns to its power-on state: COMMAND and STATUS error bits clear, BARs unassigned, MSI and
        MSI-X disabled with every MSI-X vector masked.  The device reset itself (``VFIO_DEVICE_RESET``)
        is the caller's, between the two halves if it wants QEMU's order: call this, reset, done.
        """
        cmd = self.read_int(R.PCI_COMMAND, 2)
        self.write_int(R.PCI_COMMAND, 2, cmd & ~(R.PCI_COMMAND_IO | R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER
                                                 | R.PCI_COMMAND_INTX_DISABLE))
        events: list[ConfigEvent] = []
        self.set_int(R.PCI_COMMAND, 2, self.get_int(R.PCI_COMMAND, 2) & ~COMMAND_WMASK)
        self.set_int(R.PCI_STATUS, 2, self.get_int(R.PCI_STATUS, 2) & ~STATUS_W1C)
        self.set_int(R.PCI_INTERRUPT_LINE, 1, 0)
        self.set_int(R.PCI_CACHE_LINE_SIZE, 1, 0)
        for bar in self.bars:
            if bar is not None:
                self.set_int(bar.offset, bar.width, bar.type_bits)
        self.update_mappings(events)
        if self.msi is not None:
            if self.msi.enabled:
                events.append(ConfigEvent("msi-disable"))
            self.msi.reset()
        if self.msix is not None:
            if self.msix.enabled:
                events.append(ConfigEvent("msix-disable"))
            self.msix.reset()
        self.emit(events)

    # -- save / restore --------------------------------------------------------------------------
    def save(self) -> bytes:
        """The guest-visible state in the versioned big-endian format of :mod:`pyvfio.pci.state`."""
        from .state import save_state

        return save_state(self)

    def restore(self, blob: bytes) -> None:
        """Load a :meth:`save` blob; checked completely before anything changes (see :mod:`pyvfio.pci.state`)."""
        from .state import restore_state

        restore_state(self, blob)

    def __repr__(self) -> str:
        vid, did = self.read_int(R.PCI_VENDOR_ID, 2), self.read_int(R.PCI_DEVICE_ID, 2)
        bars = ", ".join(f"BAR{b.index} {b.kind} {b.size:#x}" for b in self.bars if b is not None)
        return f"VirtualConfig({vid:04x}:{did:04x}, {self.size} bytes, {bars or 'no BARs'})"


__all__ = ["COMMAND_WMASK", "DEFAULT_HIDDEN_EXT_CAPS", "STATUS_W1C", "VirtualBar", "VirtualConfig",
           "detect_config_size"]
