"""A simulated PCI function: the "hardware" that vfio-pci drives.

:class:`SimPciDevice` holds what a real function holds -- its own config
space (with a capability chain, BAR registers, an interrupt pin), its BARs'
contents, an MSI-X table -- and behaves at that level only: it decodes
config writes through its own writable masks, asserts its INTx line, sends
MSI/MSI-X messages when its capability is enabled and the vector unmasked,
and performs DMA.  Everything vfio-pci adds (virtualized config, eventfds,
auto-masking) lives in :mod:`.vfio_pci_core`, :mod:`.vfio_pci_config` and
:mod:`.vfio_pci_intrs`, which talk to the device the way the host kernel
talks to hardware: ``config_read``/``config_write``, ``bar_read``/``bar_write``.

Devices (``devices/edu.py``, ``devices/mtty.py``) subclass it, build their
config space in ``__init__`` with the ``add_*`` helpers, and override
``bar_read``/``bar_write``/``reset``.  The hooks the driver wires in:

- ``raise_irq(kind, vector)`` -- the device signals an interrupt ("intx",
  "msi", "msix"); the base applies the device-side gating (INTx disable,
  MSI enable and per-vector mask, MSI-X enable/function mask/vector mask
  with the PBA) and hands what gets through to ``irq_sink``;
- ``lower_intx()`` -- deassert the level-triggered line;
- ``dma_read``/``dma_write`` -- through ``dma_target`` (the VfioDevice and
  its IOMMU domain).  Whether bus mastering is on is the device's own
  check (``bus_master_enabled()``), as real hardware decides it.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional, Protocol

from ..uapi.pci_regs import (
    PCI_BASE_ADDRESS_0,
    PCI_BASE_ADDRESS_MEM_PREFETCH,
    PCI_BASE_ADDRESS_MEM_TYPE_64,
    PCI_BASE_ADDRESS_SPACE_IO,
    PCI_CACHE_LINE_SIZE,
    PCI_CAPABILITY_LIST,
    PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_PM,
    PCI_CAP_ID_VNDR,
    PCI_CAP_ID_VPD,
    PCI_CAP_LIST_NEXT,
    PCI_CFG_SPACE_EXP_SIZE,
    PCI_CFG_SPACE_SIZE,
    PCI_CLASS_DEVICE,
    PCI_CLASS_PROG,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_IO,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_COMMAND_PARITY,
    PCI_COMMAND_SERR,
    PCI_DEVICE_ID,
    PCI_ERR_COR_MASK,
    PCI_ERR_COR_STATUS,
    PCI_ERR_UNCOR_MASK,
    PCI_ERR_UNCOR_SEVER,
    PCI_ERR_UNCOR_STATUS,
    PCI_EXP_DEVCAP,
    PCI_EXP_DEVCAP_FLR,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL2,
    PCI_EXP_DEVCTL2_ARI,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_EXP_DEVCTL_PHANTOM,
    PCI_EXP_DEVSTA,
    PCI_EXP_FLAGS,
    PCI_EXP_LNKCAP,
    PCI_EXP_LNKCTL,
    PCI_EXP_LNKSTA,
    PCI_EXP_TYPE_ENDPOINT,
    PCI_EXT_CAP_ID_ERR,
    PCI_INTERRUPT_LINE,
    PCI_INTERRUPT_PIN,
    PCI_LATENCY_TIMER,
    PCI_MSIX_ENTRY_CTRL_MASKBIT,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_32,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_MSI_FLAGS_QSIZE,
    PCI_MSI_MASK_32,
    PCI_MSI_MASK_64,
    PCI_MSI_PENDING_32,
    PCI_MSI_PENDING_64,
    PCI_PM_CTRL,
    PCI_PM_CTRL_NO_SOFT_RESET,
    PCI_PM_CTRL_PME_ENABLE,
    PCI_PM_CTRL_PME_STATUS,
    PCI_PM_CTRL_STATE_MASK,
    PCI_REVISION_ID,
    PCI_ROM_ADDRESS,
    PCI_ROM_ADDRESS_ENABLE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STATUS_INTERRUPT,
    PCI_STD_HEADER_SIZEOF,
    PCI_SUBSYSTEM_ID,
    PCI_SUBSYSTEM_VENDOR_ID,
    PCI_VENDOR_ID,
)
from .errno import EINVAL, EIO, KernelError

# --- config-space layout (include/uapi/linux/pci_regs.h), what the model needs -------------------
PCI_STATUS_W1C = 0xF900  # error bits a function clears by writing 1
PCI_BASE_ADDRESS_MEM_MASK = ~0xF & 0xFFFFFFFF
PCI_BASE_ADDRESS_IO_MASK = ~0x3 & 0xFFFFFFFF


# Standard capability ids.

# Extended capability ids (PCIe, at 0x100 and up).

# Power management.
PCI_PM_PPB_EXTENSIONS = 6
PCI_PM_DATA_REGISTER = 7

# MSI.

# MSI-X.

# PCI Express.

# Extended capability header: id (16) | version (4) | next (12).
PCI_EXT_CAP_ID_SHIFT = 0


def PCI_EXT_CAP_ID(header: int) -> int:
    return header & 0xFFFF


def PCI_EXT_CAP_VER(header: int) -> int:
    return (header >> 16) & 0xF


def PCI_EXT_CAP_NEXT(header: int) -> int:
    return (header >> 20) & 0xFFC


def PCI_EXT_CAP(cap_id: int, version: int, nxt: int) -> int:
    return (cap_id & 0xFFFF) | ((version & 0xF) << 16) | ((nxt & 0xFFF) << 20)


# Advanced error reporting (the one extended cap vfio-pci gives specific permissions).
PCI_ERR_SIZEOF = 0x48  # endpoint: through the header log and TLP prefix log


# --- BARs ---------------------------------------------------------------------------------------

class Bar:
    """One implemented BAR of the function: its size and decode type.

    ``kind`` is "mem32", "mem64" (takes this BAR register and the next) or
    "io".  ``mmap`` says whether vfio-pci may let userspace map it (the
    kernel also requires a page-aligned memory BAR).  ``address`` is the
    host physical address the (simulated) firmware assigned; it is what the
    BAR register holds and what vfio-pci restores after a reset.
    """

    def __init__(self, size: int, kind: str = "mem32", prefetch: bool = False, mmap: bool = True) -> None:
        if kind not in ("mem32", "mem64", "io"):
            raise ValueError(f"BAR kind must be mem32, mem64 or io, not {kind!r}")
        if size <= 0 or size & (size - 1):
            raise ValueError(f"BAR size {size:#x} is not a power of two")
        if kind == "io" and (size < 4 or size > 256):
            raise ValueError("an I/O BAR is 4 to 256 bytes")
        if kind != "io" and size < 16:
            raise ValueError("a memory BAR is at least 16 bytes")
        if prefetch and kind == "io":
            raise ValueError("an I/O BAR cannot be prefetchable")
        self.size = size
        self.kind = kind
        self.prefetch = prefetch
        self.mmap = mmap
        self.address = 0

    @property
    def is_io(self) -> bool:
        return self.kind == "io"

    @property
    def is_64(self) -> bool:
        return self.kind == "mem64"

    @property
    def type_bits(self) -> int:
        """The read-only low bits of the BAR register (``vfio_generate_bar_flags`` regenerates the same)."""
        if self.is_io:
            return PCI_BASE_ADDRESS_SPACE_IO
        bits = PCI_BASE_ADDRESS_MEM_TYPE_64 if self.is_64 else 0
        return bits | (PCI_BASE_ADDRESS_MEM_PREFETCH if self.prefetch else 0)

    def __repr__(self) -> str:
        pf = " prefetch" if self.prefetch else ""
        return f"Bar({self.size:#x}, {self.kind}{pf}, at {self.address:#x})"


class _AddressAllocator:
    """Hands out naturally aligned host addresses for BARs, like firmware resource assignment."""

    def __init__(self) -> None:
        self.mem32 = 0xC000_0000
        self.mem64 = 0x80_0000_0000
        self.io = 0xC000

    def alloc(self, bar: Bar) -> int:
        def take(cursor: int) -> tuple[int, int]:
            addr = (cursor + bar.size - 1) & ~(bar.size - 1)
            return addr, addr + bar.size

        if bar.is_io:
            addr, self.io = take(self.io)
        elif bar.is_64:
            addr, self.mem64 = take(self.mem64)
        else:
            addr, self.mem32 = take(self.mem32)
        return addr


HOST_RESOURCES = _AddressAllocator()


class DmaTarget(Protocol):
    """Where a device's DMA goes: the VfioDevice (its IOMMU domain)."""

    def dma_read(self, iova: int, length: int) -> bytes: ...

    def dma_write(self, iova: int, data: bytes) -> None: ...


IrqSink = Callable[[str, int], None]


def _le(data: bytes | bytearray, off: int, size: int) -> int:
    return int.from_bytes(data[off: off + size], "little")


class SimPciDevice:
    """A PCI function with its own config space, BARs and interrupt/DMA wiring.

    Subclasses build the config space in ``__init__`` (call
    ``super().__init__`` first, then ``set_bar``/``add_*_cap``, then
    ``finalize()`` to snapshot the power-on state).
    """

    #: name used in messages; subclasses set it.
    kind = "pci"
    #: QEMU's PCI core (``pci_init_wmask``) makes every config byte past the 64-byte header writable and
    #: only capabilities take it back (``pci_add_capability`` clears their bytes): a QEMU-emulated function
    #: keeps whatever is written in the bytes no capability owns.  Devices modelled on QEMU's set this.
    qemu_config_wmask = False
    #: the driver behind the device fd offers vfio-pci's own device features (LOW_POWER_*, PCI_VF_TOKEN);
    #: an mdev sample such as mtty has no ``device_feature`` op, so those answer ENOTTY
    vfio_pci_features = True

    def __init__(self, vendor: int, device: int, class_code: int, *, revision: int = 0,
                 subsystem_vendor: int = 0, subsystem: int = 0, express: bool = False,
                 irq_pin: int = 1) -> None:
        self.express = express
        size = PCI_CFG_SPACE_EXP_SIZE if express else PCI_CFG_SPACE_SIZE
        self.config = bytearray(size)
        # Per-byte hardware write masks, QEMU style: wmask = plain R/W, w1cmask = write-1-to-clear.
        self.wmask = bytearray(size)
        self.w1cmask = bytearray(size)
        self.bars: list[Optional[Bar]] = [None] * 6
        self.bar_mem: list[Optional[bytearray]] = [None] * 6
        self.rom_size = 0
        self.rom_data = b""
        self.rom_address = 0
        self.irq_pin = irq_pin
        self.msi_vectors = 0
        self.msi_cap = 0
        self.msi_64bit = False
        self.msi_maskable = False
        self.msix_vectors = 0
        self.msix_cap = 0
        self.msix_bar = 0
        self.msix_table_offset = 0
        self.msix_pba_offset = 0
        self.pm_cap = 0
        self.pcie_cap = 0
        self.af_cap = 0
        self.has_flr = False
        self.intx_asserted = False
        self.resets = 0
        # Wiring done by vfio-pci (VfioPciCoreDevice).
        self.irq_sink: Optional[IrqSink] = None
        self.dma_target: Optional[DmaTarget] = None
        self.mig_ops: Any = None  # migration driver (sim/migration.py protocol), None = no migration
        self.log_ops: Any = None  # device DMA-write logging, None = not supported
        self._std_cap_tail = 0
        self._next_std_cap = PCI_STD_HEADER_SIZEOF
        self._ext_caps: list[int] = []
        self._next_ext_cap = PCI_CFG_SPACE_SIZE
        self._power_on_config = b""
        self._msix_pending: set[int] = set()
        self._msi_pending = 0
        self.vpd = bytearray()  # Vital Product Data behind a VPD capability (add_vpd_cap), as the host reads it

        self.w16(PCI_VENDOR_ID, vendor)
        self.w16(PCI_DEVICE_ID, device)
        self.w8(PCI_REVISION_ID, revision)
        self.w8(PCI_CLASS_PROG, class_code & 0xFF)
        self.w16(PCI_CLASS_DEVICE, class_code >> 8)
        self.w16(PCI_SUBSYSTEM_VENDOR_ID, subsystem_vendor)
        self.w16(PCI_SUBSYSTEM_ID, subsystem)
        self.w8(PCI_INTERRUPT_PIN, irq_pin)
        cmd_w = (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY
                 | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
        self._set_mask(self.wmask, PCI_COMMAND, 2, cmd_w)
        self._set_mask(self.w1cmask, PCI_STATUS, 2, PCI_STATUS_W1C)
        self._set_mask(self.wmask, PCI_CACHE_LINE_SIZE, 1, 0xFF)
        self._set_mask(self.wmask, PCI_LATENCY_TIMER, 1, 0xFF)
        self._set_mask(self.wmask, PCI_INTERRUPT_LINE, 1, 0xFF)
        if self.qemu_config_wmask:
            self.wmask[PCI_STD_HEADER_SIZEOF:] = b"\xff" * (size - PCI_STD_HEADER_SIZEOF)

    # -- little-endian accessors on the device's own config -------------------------------------
    def r8(self, off: int) -> int:
        return self.config[off]

    def r16(self, off: int) -> int:
        return _le(self.config, off, 2)

    def r32(self, off: int) -> int:
        return _le(self.config, off, 4)

    def w8(self, off: int, val: int) -> None:
        self.config[off] = val & 0xFF

    def w16(self, off: int, val: int) -> None:
        self.config[off: off + 2] = (val & 0xFFFF).to_bytes(2, "little")

    def w32(self, off: int, val: int) -> None:
        self.config[off: off + 4] = (val & 0xFFFFFFFF).to_bytes(4, "little")

    @staticmethod
    def _set_mask(mask: bytearray, off: int, size: int, val: int) -> None:
        mask[off: off + size] = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    # -- building the function -------------------------------------------------------------------
    def set_bar(self, index: int, bar: Bar, address: Optional[int] = None) -> None:
        """Implement BAR ``index`` (a 64-bit BAR also takes ``index + 1``) at a firmware-chosen address."""
        if not 0 <= index < 6 or (bar.is_64 and index == 5):
            raise ValueError(f"BAR{index} cannot hold a {bar.kind} BAR")
        if self.bars[index] is not None or (index > 0 and self.bars[index - 1] is not None
                                            and self.bars[index - 1].is_64):  # type: ignore[union-attr]
            raise ValueError(f"BAR{index} is already in use")
        bar.address = HOST_RESOURCES.alloc(bar) if address is None else address
        self.bars[index] = bar
        self.bar_mem[index] = bytearray(bar.size) if bar.size <= (1 << 24) else None
        off = PCI_BASE_ADDRESS_0 + 4 * index
        mask = ~(bar.size - 1) & 0xFFFFFFFF
        self.w32(off, (bar.address & 0xFFFFFFFF & mask) | bar.type_bits)
        self._set_mask(self.wmask, off, 4, mask & ~(0x3 if bar.is_io else 0xF))
        if bar.is_64:
            self.w32(off + 4, bar.address >> 32)
            self._set_mask(self.wmask, off + 4, 4, (~(bar.size - 1) >> 32) & 0xFFFFFFFF)

    def set_rom(self, size: int, data: bytes = b"") -> None:
        """An expansion ROM of ``size`` bytes (power of two, >= 2 KiB) holding ``data``."""
        if size < 0x800 or size & (size - 1):
            raise ValueError("a ROM is a power of two of at least 2 KiB")
        self.rom_size = size
        self.rom_data = bytes(data[:size]).ljust(size, b"\xff")
        self.rom_address = HOST_RESOURCES.alloc(Bar(size))
        self.w32(PCI_ROM_ADDRESS, self.rom_address)
        self._set_mask(self.wmask, PCI_ROM_ADDRESS, 4, (~(size - 1) & 0xFFFFF800) | PCI_ROM_ADDRESS_ENABLE)

    def add_capability(self, cap_id: int, body: bytes, *, align: int = 4) -> int:
        """Append a standard capability (``body`` excludes the ID/NEXT bytes); returns its offset."""
        off = (self._next_std_cap + align - 1) & ~(align - 1)
        length = 2 + len(body)
        if off + length > PCI_CFG_SPACE_SIZE:
            raise ValueError("standard capabilities overflow the 256-byte config space")
        self.config[off] = cap_id
        self.config[off + 1] = 0
        self.config[off + 2: off + length] = body
        self.wmask[off: off + length] = bytes(length)  # read-only until the cap's helper opens its fields
        if self._std_cap_tail:
            self.config[self._std_cap_tail + PCI_CAP_LIST_NEXT] = off
        else:
            self.config[PCI_CAPABILITY_LIST] = off
            self.w16(PCI_STATUS, self.r16(PCI_STATUS) | PCI_STATUS_CAP_LIST)
        self._std_cap_tail = off
        self._next_std_cap = (off + length + 3) & ~3
        return off

    def add_ext_capability(self, cap_id: int, version: int, body: bytes) -> int:
        """Append a PCIe extended capability (``body`` excludes the 4-byte header); returns its offset."""
        if not self.express:
            raise ValueError("extended capabilities need a PCIe function")
        off = self._next_ext_cap
        length = 4 + len(body)
        if off + length > PCI_CFG_SPACE_EXP_SIZE:
            raise ValueError("extended capabilities overflow the 4 KiB config space")
        self.w32(off, PCI_EXT_CAP(cap_id, version, 0))
        self.config[off + 4: off + length] = body
        self.wmask[off: off + length] = bytes(length)
        if self._ext_caps:
            prev = self._ext_caps[-1]
            hdr = self.r32(prev)
            self.w32(prev, PCI_EXT_CAP(PCI_EXT_CAP_ID(hdr), PCI_EXT_CAP_VER(hdr), off))
        self._ext_caps.append(off)
        self._next_ext_cap = (off + length + 3) & ~3
        return off

    def add_pm_cap(self, *, no_soft_reset: bool = True) -> int:
        """Power management, version 3; NoSoftReset set means D3hot->D0 keeps the function's state."""
        ctrl = PCI_PM_CTRL_NO_SOFT_RESET if no_soft_reset else 0
        off = self.add_capability(PCI_CAP_ID_PM, struct.pack("<HHBB", 0x0003, ctrl, 0, 0))
        self._set_mask(self.wmask, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK | PCI_PM_CTRL_PME_ENABLE)
        self._set_mask(self.w1cmask, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_STATUS)
        self.pm_cap = off
        return off

    def add_msi_cap(self, vectors: int = 1, *, is_64bit: bool = True, maskable: bool = False) -> int:
        """MSI with ``vectors`` (1..32, power of two) messages; optional per-vector mask/pending."""
        if vectors not in (1, 2, 4, 8, 16, 32):
            raise ValueError("MSI supports 1, 2, 4, 8, 16 or 32 vectors")
        qmask = vectors.bit_length() - 1
        flags = (qmask << 1) | (PCI_MSI_FLAGS_64BIT if is_64bit else 0) | (PCI_MSI_FLAGS_MASKBIT if maskable else 0)
        size = msi_cap_size(flags)
        off = self.add_capability(PCI_CAP_ID_MSI, struct.pack("<H", flags) + bytes(size - 4))
        self._set_mask(self.wmask, off + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE)
        self._set_mask(self.wmask, off + PCI_MSI_ADDRESS_LO, 4, 0xFFFFFFFC)
        if is_64bit:
            self._set_mask(self.wmask, off + PCI_MSI_ADDRESS_HI, 4, 0xFFFFFFFF)
        data = PCI_MSI_DATA_64 if is_64bit else PCI_MSI_DATA_32
        self._set_mask(self.wmask, off + data, 2, 0xFFFF)
        if maskable:
            mask = PCI_MSI_MASK_64 if is_64bit else PCI_MSI_MASK_32
            self._set_mask(self.wmask, off + mask, 4, (1 << vectors) - 1)
        self.msi_vectors, self.msi_cap, self.msi_64bit, self.msi_maskable = vectors, off, is_64bit, maskable
        return off

    def add_msix_cap(self, vectors: int, bar: int, table_offset: int = 0, pba_offset: Optional[int] = None) -> int:
        """MSI-X with ``vectors`` entries; table and PBA in memory BAR ``bar`` (which must exist)."""
        b = self.bars[bar]
        if b is None or b.is_io:
            raise ValueError(f"MSI-X needs memory BAR{bar}")
        if not 1 <= vectors <= 2048:
            raise ValueError("MSI-X supports 1..2048 vectors")
        if pba_offset is None:
            pba_offset = (table_offset + vectors * PCI_MSIX_ENTRY_SIZE + 7) & ~7
        if table_offset & 7 or pba_offset & 7:
            raise ValueError("MSI-X table and PBA offsets are 8-byte aligned")
        if pba_offset + (vectors + 63) // 64 * 8 > b.size or table_offset + vectors * 16 > b.size:
            raise ValueError(f"MSI-X table or PBA does not fit in BAR{bar}")
        body = struct.pack("<HII", vectors - 1, table_offset | bar, pba_offset | bar)
        off = self.add_capability(PCI_CAP_ID_MSIX, body)
        self._set_mask(self.wmask, off + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)
        self.msix_vectors, self.msix_cap = vectors, off
        self.msix_bar, self.msix_table_offset, self.msix_pba_offset = bar, table_offset, pba_offset
        return off

    def add_pcie_cap(self, *, port_type: int = PCI_EXP_TYPE_ENDPOINT, flr: bool = True) -> int:
        """PCI Express capability v2 of an endpoint; ``flr`` advertises function-level reset."""
        if not self.express:
            raise ValueError("add_pcie_cap needs express=True")
        body = bytearray(PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 - 2)
        struct.pack_into("<H", body, PCI_EXP_FLAGS - 2, 0x2 | (port_type << 4))
        struct.pack_into("<I", body, PCI_EXP_DEVCAP - 2, PCI_EXP_DEVCAP_FLR if flr else 0)
        struct.pack_into("<I", body, PCI_EXP_LNKCAP - 2, 0x11)  # x1, 2.5GT/s
        struct.pack_into("<H", body, PCI_EXP_LNKSTA - 2, 0x11)
        off = self.add_capability(PCI_CAP_ID_EXP, bytes(body))
        self._set_mask(self.wmask, off + PCI_EXP_DEVCTL, 2, 0xFFFF & ~PCI_EXP_DEVCTL_PHANTOM)
        self._set_mask(self.wmask, off + PCI_EXP_LNKCTL, 2, 0x0FFB)
        self._set_mask(self.wmask, off + PCI_EXP_DEVCTL2, 2, 0xFFFF & ~PCI_EXP_DEVCTL2_ARI)
        self._set_mask(self.w1cmask, off + PCI_EXP_DEVSTA, 2, 0x000F)
        self.pcie_cap, self.has_flr = off, flr
        return off

    def add_vendor_cap(self, data: bytes) -> int:
        """A vendor-specific capability; byte 2 is its length as the spec requires."""
        body = bytes([len(data) + 3]) + data
        off = self.add_capability(PCI_CAP_ID_VNDR, body)
        self.wmask[off + 3: off + 3 + len(data)] = b"\xff" * len(data)
        return off

    def add_vpd_cap(self, data: bytes) -> int:
        """A VPD capability over ``data`` (its ADDR/DATA registers are the host's business: vfio-pci shadows
        them and reaches the data through ``vpd_read``/``vpd_write``, as ``pci_read_vpd`` would)."""
        off = self.add_capability(PCI_CAP_ID_VPD, bytes(6))
        self.vpd = bytearray(data)
        return off

    def vpd_read(self, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes of VPD at ``addr``; nothing past the end (``pci_read_vpd`` returns short)."""
        return bytes(self.vpd[addr: addr + size]) if addr >= 0 else b""

    def vpd_write(self, addr: int, data: bytes) -> bool:
        """Whole aligned dwords inside the VPD only, as ``pci_write_vpd`` accepts; False otherwise."""
        if addr < 0 or addr % 4 or len(data) % 4 or addr + len(data) > len(self.vpd):
            return False
        self.vpd[addr: addr + len(data)] = data
        return True

    def add_aer_ecap(self) -> int:
        """Advanced Error Reporting (ecap 1, version 2)."""
        off = self.add_ext_capability(PCI_EXT_CAP_ID_ERR, 2, bytes(PCI_ERR_SIZEOF - 4))
        for reg in (PCI_ERR_UNCOR_MASK, PCI_ERR_UNCOR_SEVER, PCI_ERR_COR_MASK):
            self._set_mask(self.wmask, off + reg, 4, 0xFFFFFFFF)
        for reg in (PCI_ERR_UNCOR_STATUS, PCI_ERR_COR_STATUS):
            self._set_mask(self.w1cmask, off + reg, 4, 0xFFFFFFFF)
        return off

    def finalize(self) -> None:
        """Snapshot the power-on config space; ``reset()`` returns to it."""
        self._power_on_config = bytes(self.config)

    # -- the function as the host sees it ----------------------------------------------------------
    @property
    def vendor_id(self) -> int:
        return self.r16(PCI_VENDOR_ID)

    @property
    def device_id(self) -> int:
        return self.r16(PCI_DEVICE_ID)

    @property
    def config_size(self) -> int:
        return len(self.config)

    def bus_master_enabled(self) -> bool:
        return bool(self.r16(PCI_COMMAND) & PCI_COMMAND_MASTER)

    def memory_enabled(self) -> bool:
        return bool(self.r16(PCI_COMMAND) & PCI_COMMAND_MEMORY)

    def msi_enabled(self) -> bool:
        return bool(self.msi_cap and self.r16(self.msi_cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE)

    def msix_enabled(self) -> bool:
        return bool(self.msix_cap and self.r16(self.msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE)

    def config_read(self, offset: int, size: int) -> bytes:
        """A config read as the function answers it (``pci_user_read_config_*``)."""
        if offset < 0 or offset + size > len(self.config):
            raise KernelError(EINVAL, f"config read {offset:#x}+{size} outside the {len(self.config)}-byte space")
        return bytes(self.config[offset: offset + size])

    def config_write(self, offset: int, data: bytes) -> None:
        """A config write as the function decodes it: writable bits, W1C bits, then side effects."""
        if offset < 0 or offset + len(data) > len(self.config):
            raise KernelError(EINVAL, f"config write {offset:#x}+{len(data)} outside the config space")
        old_cmd = self.r16(PCI_COMMAND)
        old_pm = self.r16(self.pm_cap + PCI_PM_CTRL) if self.pm_cap else 0
        old_msi_mask = self._msi_mask()
        old_msix_ctrl = self.r16(self.msix_cap + PCI_MSIX_FLAGS) if self.msix_cap else 0
        for i, val in enumerate(data):
            a = offset + i
            w, c = self.wmask[a], self.w1cmask[a]
            self.config[a] = ((self.config[a] & ~w) | (val & w)) & ~(val & c) & 0xFF
        self._config_side_effects(offset, len(data), old_cmd, old_msi_mask, old_msix_ctrl, old_pm)

    def _config_side_effects(self, offset: int, size: int, old_cmd: int, old_msi_mask: int,
                             old_msix_ctrl: int, old_pm: int) -> None:
        def touches(reg: int, n: int) -> bool:
            return offset < reg + n and reg < offset + size

        if self.pm_cap and touches(self.pm_cap + PCI_PM_CTRL, 2):
            pm = self.r16(self.pm_cap + PCI_PM_CTRL)
            went_d0 = old_pm & PCI_PM_CTRL_STATE_MASK == 3 and not pm & PCI_PM_CTRL_STATE_MASK
            if went_d0 and not pm & PCI_PM_CTRL_NO_SOFT_RESET:
                self.reset()  # D3hot -> D0 without NoSoftReset: the function comes back reset
                return

        cmd = self.r16(PCI_COMMAND)
        if touches(PCI_COMMAND, 2) and old_cmd & PCI_COMMAND_INTX_DISABLE and not cmd & PCI_COMMAND_INTX_DISABLE \
                and self.intx_asserted:
            self._deliver("intx", 0)  # a level-triggered line still asserted shows up once unmasked
        if self.pcie_cap and touches(self.pcie_cap + PCI_EXP_DEVCTL, 2):
            devctl = self.r16(self.pcie_cap + PCI_EXP_DEVCTL)
            if devctl & PCI_EXP_DEVCTL_BCR_FLR:
                self.w16(self.pcie_cap + PCI_EXP_DEVCTL, devctl & ~PCI_EXP_DEVCTL_BCR_FLR)
                if self.has_flr:
                    self.reset()
        if self.msi_cap and self.msi_maskable and self.msi_enabled():
            newly_unmasked = old_msi_mask & ~self._msi_mask()
            for v in range(self.msi_vectors):
                if newly_unmasked >> v & 1 and self._msi_pending >> v & 1:
                    self._msi_pending &= ~(1 << v)
                    self._deliver("msi", v)
        if self.msix_cap and touches(self.msix_cap + PCI_MSIX_FLAGS, 2):
            ctrl = self.r16(self.msix_cap + PCI_MSIX_FLAGS)
            if ctrl != old_msix_ctrl:
                self._msix_flush_pending()

    def _msi_mask(self) -> int:
        if not (self.msi_cap and self.msi_maskable):
            return 0
        return self.r32(self.msi_cap + (PCI_MSI_MASK_64 if self.msi_64bit else PCI_MSI_MASK_32))

    # -- BAR access --------------------------------------------------------------------------------
    def bar_read(self, bar: int, offset: int, size: int) -> bytes:
        """A memory or I/O read of BAR ``bar``; the base serves the MSI-X table/PBA and plain RAM."""
        self._check_bar(bar, offset, size)
        if self._in_msix(bar, offset, size):
            return self._msix_read(offset, size)
        mem = self.bar_mem[bar]
        if mem is None:
            return b"\xff" * size
        return bytes(mem[offset: offset + size])

    def bar_write(self, bar: int, offset: int, data: bytes) -> None:
        """A memory or I/O write to BAR ``bar``."""
        self._check_bar(bar, offset, len(data))
        if self._in_msix(bar, offset, len(data)):
            self._msix_write(offset, data)
            return
        mem = self.bar_mem[bar]
        if mem is not None:
            mem[offset: offset + len(data)] = data

    def _check_bar(self, bar: int, offset: int, size: int) -> None:
        b = self.bars[bar] if 0 <= bar < 6 else None
        if b is None:
            raise KernelError(EINVAL, f"BAR{bar} is not implemented")
        if offset < 0 or size < 0 or offset + size > b.size:
            raise KernelError(EINVAL, f"access {offset:#x}+{size} outside BAR{bar} ({b.size:#x} bytes)")

    def rom_read(self, offset: int, size: int) -> bytes:
        return self.rom_data[offset: offset + size]

    # -- MSI-X table and PBA -----------------------------------------------------------------------
    def _msix_table_range(self) -> tuple[int, int]:
        return self.msix_table_offset, self.msix_table_offset + self.msix_vectors * PCI_MSIX_ENTRY_SIZE

    def _msix_pba_range(self) -> tuple[int, int]:
        return self.msix_pba_offset, self.msix_pba_offset + (self.msix_vectors + 63) // 64 * 8

    def _in_msix(self, bar: int, offset: int, size: int) -> bool:
        if not self.msix_cap or bar != self.msix_bar:
            return False
        for lo, hi in (self._msix_table_range(), self._msix_pba_range()):
            if offset < hi and lo < offset + size:
                return True
        return False

    def _msix_storage(self) -> bytearray:
        mem = self.bar_mem[self.msix_bar]
        assert mem is not None
        return mem

    def _msix_read(self, offset: int, size: int) -> bytes:
        mem = self._msix_storage()
        plo, phi = self._msix_pba_range()
        pba = sum(1 << v for v in self._msix_pending).to_bytes(phi - plo, "little")
        mem[plo:phi] = pba
        return bytes(mem[offset: offset + size])

    def _msix_write(self, offset: int, data: bytes) -> None:
        mem = self._msix_storage()
        plo, phi = self._msix_pba_range()
        for i, byte in enumerate(data):
            a = offset + i
            if plo <= a < phi:
                continue  # the PBA is read-only
            mem[a] = byte
        self._msix_flush_pending()

    def msix_entry(self, vector: int) -> tuple[int, int, bool]:
        """(address, data, masked) of MSI-X table entry ``vector`` as the function holds it."""
        mem = self._msix_storage()
        base = self.msix_table_offset + vector * PCI_MSIX_ENTRY_SIZE
        lo, hi, data, ctrl = struct.unpack_from("<IIII", mem, base)
        return (hi << 32) | lo, data, bool(ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT)

    def msix_set_entry(self, vector: int, address: int, data: int, masked: bool) -> None:
        """Program a table entry the way the host's MSI-X code does."""
        mem = self._msix_storage()
        base = self.msix_table_offset + vector * PCI_MSIX_ENTRY_SIZE
        struct.pack_into("<IIII", mem, base, address & 0xFFFFFFFF, address >> 32, data,
                         PCI_MSIX_ENTRY_CTRL_MASKBIT if masked else 0)
        self._msix_flush_pending()

    def _msix_vector_masked(self, vector: int) -> bool:
        ctrl = self.r16(self.msix_cap + PCI_MSIX_FLAGS)
        return bool(ctrl & PCI_MSIX_FLAGS_MASKALL) or self.msix_entry(vector)[2]

    def _msix_flush_pending(self) -> None:
        """A pending vector whose mask cleared is sent now (PCI spec: the PBA bit then clears)."""
        if not self.msix_enabled():
            return
        for v in sorted(self._msix_pending):
            if not self._msix_vector_masked(v):
                self._msix_pending.discard(v)
                self._deliver("msix", v)

    # -- interrupts --------------------------------------------------------------------------------
    def raise_irq(self, kind: str, vector: int = 0) -> None:
        """The function signals an interrupt; device-side gating decides whether a message leaves.

        INTx is a level: it stays asserted (STATUS.INTERRUPT) until ``lower_intx``
        and is not delivered while COMMAND.INTX_DISABLE is set.  MSI needs the
        capability enabled; a masked MSI vector or MSI-X entry sets its pending
        bit and is sent when unmasked.
        """
        if kind == "intx":
            if not self.irq_pin:
                return
            self.intx_asserted = True
            self.w16(PCI_STATUS, self.r16(PCI_STATUS) | PCI_STATUS_INTERRUPT)
            if not self.r16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE:
                self._deliver("intx", 0)
        elif kind == "msi":
            if not self.msi_enabled():
                return
            enabled = 1 << ((self.r16(self.msi_cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QSIZE) >> 4)
            if vector >= enabled:
                return
            if self._msi_mask() >> vector & 1:
                self._msi_pending |= 1 << vector
                self._sync_msi_pending()
                return
            self._deliver("msi", vector)
        elif kind == "msix":
            if not self.msix_enabled() or not 0 <= vector < self.msix_vectors:
                return
            if self._msix_vector_masked(vector):
                self._msix_pending.add(vector)
                return
            self._deliver("msix", vector)
        else:
            raise ValueError(f"unknown interrupt kind {kind!r}")

    def lower_intx(self) -> None:
        """Deassert the INTx line (the device's interrupt condition is gone)."""
        self.intx_asserted = False
        self.w16(PCI_STATUS, self.r16(PCI_STATUS) & ~PCI_STATUS_INTERRUPT)

    def _sync_msi_pending(self) -> None:
        if self.msi_cap and self.msi_maskable:
            off = self.msi_cap + (PCI_MSI_PENDING_64 if self.msi_64bit else PCI_MSI_PENDING_32)
            self.w32(off, self._msi_pending)

    def _deliver(self, kind: str, vector: int) -> None:
        if self.irq_sink is not None:
            self.irq_sink(kind, vector)

    # -- DMA ---------------------------------------------------------------------------------------
    def dma_read(self, iova: int, length: int) -> bytes:
        """Read guest/user memory at ``iova`` through the IOMMU domain (KernelError on a fault)."""
        if self.dma_target is None:
            raise KernelError(EIO, f"{self.kind}: not connected to an IOMMU")
        return self.dma_target.dma_read(iova, length)

    def dma_write(self, iova: int, data: bytes) -> None:
        """Write ``data`` at ``iova`` through the IOMMU domain (KernelError on a fault)."""
        if self.dma_target is None:
            raise KernelError(EIO, f"{self.kind}: not connected to an IOMMU")
        self.dma_target.dma_write(iova, data)

    # -- driver hooks --------------------------------------------------------------------------------
    def open_device(self, vdev: Any) -> None:
        """The device's first open, after vfio-pci enabled it (a variant driver's ``open_device`` tail)."""

    def close_device(self, vdev: Any) -> None:
        """The device's last close, before vfio-pci disables it (mlx5/mtty end migration sessions here)."""

    # -- reset -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Function-level reset: config space back to power-on (BAR addresses kept by the host restore).

        Subclasses extend this to clear their own registers.  Like FLR, a
        reset clears COMMAND (no decode, no bus mastering), disables MSI and
        MSI-X, masks every MSI-X entry and drops the INTx line.
        """
        if not self._power_on_config:
            self.finalize()
        self.config[:] = self._power_on_config
        for i, bar in enumerate(self.bars):
            mem = self.bar_mem[i]
            if bar is not None and mem is not None:
                mem[:] = bytes(len(mem))
        if self.msix_cap:
            for v in range(self.msix_vectors):
                self.msix_set_entry(v, 0, 0, True)
        self._msix_pending.clear()
        self._msi_pending = 0
        self.intx_asserted = False
        self.resets += 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.vendor_id:04x}:{self.device_id:04x}>"


def msi_cap_size(flags: int) -> int:
    """Bytes of an MSI capability with these FLAGS (the kernel's ``vfio_msi_cap_len`` arithmetic)."""
    size = 10
    if flags & PCI_MSI_FLAGS_64BIT:
        size += 4
    if flags & PCI_MSI_FLAGS_MASKBIT:
        size += 10
    return size


def find_capability(config: bytes | bytearray, cap_id: int) -> int:
    """Offset of the first standard capability ``cap_id`` in ``config``, 0 if none (``pci_find_capability``)."""
    if not _le(config, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
        return 0
    pos = config[PCI_CAPABILITY_LIST] & ~3
    seen = 0
    while pos >= PCI_STD_HEADER_SIZEOF and seen < 48:
        if config[pos] == cap_id:
            return pos
        pos = config[pos + 1] & ~3
        seen += 1
    return 0


def find_ext_capability(config: bytes | bytearray, cap_id: int) -> int:
    """Offset of the first extended capability ``cap_id``, 0 if none (``pci_find_ext_capability``)."""
    if len(config) <= PCI_CFG_SPACE_SIZE:
        return 0
    pos = PCI_CFG_SPACE_SIZE
    seen = 0
    while pos and seen < 480:
        hdr = _le(config, pos, 4)
        if hdr == 0:
            return 0
        if PCI_EXT_CAP_ID(hdr) == cap_id:
            return pos
        pos = PCI_EXT_CAP_NEXT(hdr)
        if pos < PCI_CFG_SPACE_SIZE:
            return 0
        seen += 1
    return 0
