"""MSI-X as a VMM emulates it: the capability, and the vector table and PBA inside a BAR.

MSI-X keeps its vectors in memory, not config space: a table of 16-byte entries (address low, address
high, data, vector control whose bit 0 masks the vector) and a pending-bit array (PBA), each at an
offset inside one of the function's BARs (``BIR`` = BAR indicator).  The kernel does not let a user
program the real table -- the capability is read-only through vfio and vectors are wired with
``VFIO_DEVICE_SET_IRQS`` -- so the VMM traps guest accesses to the table (and, while a masked vector
has fired, to the PBA) and emulates them, while the rest of that BAR stays directly mapped.

:func:`mmap_windows` computes that rest: the BAR minus the trapped ranges rounded out to host pages,
because a mapping can only start and end on page boundaries (QEMU's ``vfio_pci_fixup_msix_region``).
"""

from __future__ import annotations

import dataclasses
import mmap
from typing import TYPE_CHECKING, Optional

from ..uapi import pci_regs as R
from .events import ConfigEvent, MsiMessage

if TYPE_CHECKING:
    from .config import VirtualConfig

PAGE_SIZE = mmap.PAGESIZE


def pba_size(entries: int) -> int:
    """Bytes of the pending-bit array: one bit per vector, in whole 64-bit words."""
    return (entries + 63) // 64 * 8


@dataclasses.dataclass(frozen=True)
class MsixLayout:
    """Where a function's MSI-X structures live, read from its capability (``vfio_msix_early_setup``)."""

    cap: int
    entries: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int

    @classmethod
    def from_registers(cls, cap: int, flags: int, table: int, pba: int) -> "MsixLayout":
        return cls(cap, (flags & R.PCI_MSIX_FLAGS_QSIZE) + 1, table & R.PCI_MSIX_TABLE_BIR,
                   table & R.PCI_MSIX_TABLE_OFFSET, pba & R.PCI_MSIX_PBA_BIR, pba & R.PCI_MSIX_PBA_OFFSET)

    @property
    def table_size(self) -> int:
        return self.entries * R.PCI_MSIX_ENTRY_SIZE

    @property
    def pba_size(self) -> int:
        return pba_size(self.entries)

    def table_range(self) -> tuple[int, int]:
        return self.table_offset, self.table_offset + self.table_size

    def pba_range(self) -> tuple[int, int]:
        return self.pba_offset, self.pba_offset + self.pba_size


def mmap_windows(bar_size: int, trapped: list[tuple[int, int]], page_size: int = PAGE_SIZE) -> list[tuple[int, int]]:
    """The (offset, size) windows of a BAR that can stay mmap-ed when ``trapped`` ranges must be emulated.

    Each trapped ``[start, end)`` range is widened to host-page boundaries (its first page down, its last
    page up) and cut out; what is left is returned in order, each window page aligned.  A BAR smaller
    than a page cannot be mapped around a trap at all.
    """
    if bar_size <= 0:
        return []
    cuts = sorted((start - start % page_size, -(-end // page_size) * page_size) for start, end in trapped if end > start)
    windows: list[tuple[int, int]] = []
    pos = 0
    for start, end in cuts:
        if start > pos:
            windows.append((pos, min(start, bar_size) - pos))
        pos = max(pos, end)
        if pos >= bar_size:
            break
    if pos < bar_size:
        windows.append((pos, bar_size - pos))
    return [(off, size) for off, size in windows if size > 0]


class MsixCapability:
    """The emulated MSI-X capability, table and PBA of a :class:`~pyvfio.pci.config.VirtualConfig`."""

    def __init__(self, vc: "VirtualConfig", layout: MsixLayout) -> None:
        self.vc = vc
        self.layout = layout
        self.offset = layout.cap
        self.entries = layout.entries
        self.table = bytearray(layout.table_size)
        self.pba = bytearray(layout.pba_size)
        #: True while the PBA overlay must trap (a masked vector fired): QEMU leaves it off otherwise.
        self.pba_trapped = False
        self._setup()

    def _setup(self) -> None:
        """``msix_init``: the capability emulated (enable and function-mask writable), every vector masked."""
        vc, off, lay = self.vc, self.offset, self.layout
        vc.set_int(off + R.PCI_MSIX_FLAGS, 2, lay.entries - 1)
        vc.set_int(off + R.PCI_MSIX_TABLE, 4, lay.table_offset | lay.table_bar)
        vc.set_int(off + R.PCI_MSIX_PBA, 4, lay.pba_offset | lay.pba_bar)
        vc.mark_emulated(off, R.PCI_CAP_MSIX_SIZEOF)
        vc.set_wmask(off + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL)
        self._mask_all()

    def _mask_all(self) -> None:
        for v in range(self.entries):
            self._set_entry_u32(v, R.PCI_MSIX_ENTRY_VECTOR_CTRL, R.PCI_MSIX_ENTRY_CTRL_MASKBIT)

    # -- state -----------------------------------------------------------------------------------
    @property
    def flags(self) -> int:
        return self.vc.get_int(self.offset + R.PCI_MSIX_FLAGS, 2)

    @property
    def enabled(self) -> bool:
        return bool(self.flags & R.PCI_MSIX_FLAGS_ENABLE)

    @property
    def function_masked(self) -> bool:
        """Every vector is masked while MSI-X is disabled or the function mask is set."""
        return not self.enabled or bool(self.flags & R.PCI_MSIX_FLAGS_MASKALL)

    def _entry_u32(self, vector: int, field: int) -> int:
        base = vector * R.PCI_MSIX_ENTRY_SIZE + field
        return int.from_bytes(self.table[base: base + 4], "little")

    def _set_entry_u32(self, vector: int, field: int, value: int) -> None:
        base = vector * R.PCI_MSIX_ENTRY_SIZE + field
        self.table[base: base + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    def _check(self, vector: int) -> None:
        if not 0 <= vector < self.entries:
            raise ValueError(f"MSI-X vector {vector} does not exist (the table has {self.entries} entries)")

    def message(self, vector: int) -> MsiMessage:
        self._check(vector)
        lo = self._entry_u32(vector, R.PCI_MSIX_ENTRY_LOWER_ADDR)
        hi = self._entry_u32(vector, R.PCI_MSIX_ENTRY_UPPER_ADDR)
        return MsiMessage((hi << 32) | lo, self._entry_u32(vector, R.PCI_MSIX_ENTRY_DATA))

    def vector_masked(self, vector: int) -> bool:
        """The entry's own mask bit."""
        self._check(vector)
        return bool(self._entry_u32(vector, R.PCI_MSIX_ENTRY_VECTOR_CTRL) & R.PCI_MSIX_ENTRY_CTRL_MASKBIT)

    def is_masked(self, vector: int) -> bool:
        """Masked by its own bit or by the function (``msix_is_masked``)."""
        return self.function_masked or self.vector_masked(vector)

    def is_pending(self, vector: int) -> bool:
        self._check(vector)
        return bool(self.pba[vector // 8] >> (vector % 8) & 1)

    def _set_pending(self, vector: int, on: bool) -> None:
        if on:
            self.pba[vector // 8] |= 1 << (vector % 8)
        else:
            self.pba[vector // 8] &= ~(1 << (vector % 8)) & 0xFF

    def notify(self, vector: int) -> Optional[MsiMessage]:
        """The function raised ``vector``: its message, or None when masked (its PBA bit is set instead).

        A masked vector firing is what makes a VMM start trapping the PBA (``pba_trapped``), so the guest
        can see the pending bit; it stops once nothing is pending.
        """
        if not self.enabled:
            raise ValueError("MSI-X is not enabled: the function cannot send MSI-X messages")
        self._check(vector)
        if self.is_masked(vector):
            self._set_pending(vector, True)
            self.pba_trapped = True
            return None
        return self.message(vector)

    # -- the config-space hook -------------------------------------------------------------------
    def after_write(self, was_enabled: bool, was_function_masked: bool, events: list[ConfigEvent]) -> None:
        """Enable/disable transitions and function-mask changes (``msix_write_config`` + vfio hooks)."""
        if self.enabled and not was_enabled:
            events.append(ConfigEvent("msix-enable", new=self.entries))
        elif was_enabled and not self.enabled:
            events.append(ConfigEvent("msix-disable"))
        if not self.enabled or self.function_masked == was_function_masked:
            return  # disabling releases every vector at once (msix-disable); nothing per vector
        for v in range(self.entries):
            self._mask_update(v, was_function_masked or self.vector_masked(v), events)

    def _mask_update(self, vector: int, was_masked: bool, events: list[ConfigEvent]) -> None:
        """``msix_handle_mask_update``: an unmask delivers a pending vector; both ways notify."""
        masked = self.is_masked(vector)
        if masked == was_masked:
            return
        events.append(ConfigEvent("msix-mask", index=vector, old=int(was_masked), new=int(masked)))
        if not masked and self.is_pending(vector):
            self._set_pending(vector, False)
            events.append(ConfigEvent("deliver", index=vector, message=self.message(vector)))
        if not any(self.pba):
            self.pba_trapped = False

    # -- the BAR overlay -------------------------------------------------------------------------
    def trapped_ranges(self, bar: int, *, include_pba: Optional[bool] = None) -> list[tuple[int, int]]:
        """The ``[start, end)`` ranges of BAR ``bar`` this emulation must see.

        The table always; the PBA when ``include_pba`` (default: while ``pba_trapped``).
        """
        lay = self.layout
        out = []
        if bar == lay.table_bar:
            out.append(lay.table_range())
        if bar == lay.pba_bar and (self.pba_trapped if include_pba is None else include_pba):
            out.append(lay.pba_range())
        return out

    def mmap_windows(self, bar: int, bar_size: int, page_size: int = PAGE_SIZE, *,
                     include_pba: bool = False) -> list[tuple[int, int]]:
        """The page-aligned windows of BAR ``bar`` that can stay mapped around the trapped structures."""
        return mmap_windows(bar_size, self.trapped_ranges(bar, include_pba=include_pba), page_size)

    def _locate(self, bar: int, offset: int, size: int) -> Optional[tuple[str, int]]:
        lay = self.layout
        for name, bar_index, (start, end) in (("table", lay.table_bar, lay.table_range()),
                                              ("pba", lay.pba_bar, lay.pba_range())):
            if bar != bar_index or offset + size <= start or offset >= end:
                continue
            if offset < start or offset + size > end:
                raise ValueError(f"a {size}-byte access at BAR{bar}+{offset:#x} straddles the edge of the MSI-X "
                                 f"{name} [{start:#x}, {end:#x})")
            return name, offset - start
        return None

    def bar_read(self, bar: int, offset: int, size: int) -> Optional[bytes]:
        """The emulated bytes when ``[offset, offset+size)`` of BAR ``bar`` is in the table or PBA, else None.

        PBA reads always come from the emulation here (a VMM without a trapped PBA reads the device's;
        both show the same bits for vectors masked in the emulated table).
        """
        where = self._locate(bar, offset, size)
        if where is None:
            return None
        name, off = where
        store = self.table if name == "table" else self.pba
        return bytes(store[off: off + size])

    def bar_write(self, bar: int, offset: int, data: bytes) -> bool:
        """Store a guest write into the table (True: handled), ignore one into the PBA (read-only: True).

        Returns False when the range is outside both, for the caller to pass to the device.  A table
        write that changes a vector's mask emits ``msix-mask`` and may deliver a pending message.
        """
        where = self._locate(bar, offset, len(data))
        if where is None:
            return False
        name, off = where
        if name == "pba":
            return True
        first = off // R.PCI_MSIX_ENTRY_SIZE
        last = (off + len(data) - 1) // R.PCI_MSIX_ENTRY_SIZE
        was = [self.is_masked(v) for v in range(first, last + 1)]
        self.table[off: off + len(data)] = data
        events: list[ConfigEvent] = []
        for v, was_masked in zip(range(first, last + 1), was):
            self._mask_update(v, was_masked, events)
        self.vc.emit(events)
        return True

    def reset(self) -> None:
        """``msix_reset``: disabled, function mask clear, table zeroed with every vector masked, PBA clear."""
        flags = self.flags & ~(R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL)
        self.vc.set_int(self.offset + R.PCI_MSIX_FLAGS, 2, flags)
        self.table[:] = bytes(len(self.table))
        self.pba[:] = bytes(len(self.pba))
        self.pba_trapped = False
        self._mask_all()

    def __repr__(self) -> str:
        lay = self.layout
        return (f"MsixCapability(at {self.offset:#x}, {'enabled' if self.enabled else 'disabled'}, "
                f"{lay.entries} vectors, table BAR{lay.table_bar}+{lay.table_offset:#x}, "
                f"PBA BAR{lay.pba_bar}+{lay.pba_offset:#x})")


__all__ = ["MsixCapability", "MsixLayout", "PAGE_SIZE", "mmap_windows", "pba_size"]
