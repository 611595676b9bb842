"""Walking a function's capability chains, standard and extended, without trusting them.

Config space is data a device (or a dump file, or a guest) hands us, so every pointer in it is
suspect: a chain can point into the standard header, past the end of what was read, at itself, or
into a cycle.  The walkers here follow the chain the way the PCI spec defines it and stop with a
:class:`CapabilityChainError` naming the bad link, carrying the capabilities found before it, so a
viewer can still show them.  They can never run long: standard capabilities are dword aligned in
bytes 0x40-0xff, so a chain has at most 48 distinct entries (the bound the kernel's ``vfio_cap_init``
and ``pci_find_capability`` use); extended ones live in 0x100-0xfff, at most 960.  Revisiting an
offset is reported as a loop at once instead of being counted down.

Pointer rules, as the spec and the Linux PCI core apply them: the low two bits of a standard NEXT
pointer are reserved and masked off; a standard capability of ID 0xff means the function stopped
answering (all-ones reads) and ends the walk as broken; the extended chain starts at 0x100, an all-zero
or all-ones first header means "none", and a NEXT below 0x100 is invalid.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from ..uapi import pci_regs as R

#: The most standard capabilities a 256-byte config space can hold: dword aligned in 0x40..0xff.
STD_CAP_LIMIT = (R.PCI_CFG_SPACE_SIZE - R.PCI_STD_HEADER_SIZEOF) // R.PCI_CAP_SIZEOF
#: The most extended capabilities: dword aligned in 0x100..0xfff.
EXT_CAP_LIMIT = (R.PCI_CFG_SPACE_EXP_SIZE - R.PCI_CFG_SPACE_SIZE) // R.PCI_CAP_SIZEOF

#: Standard capability names, as lspci titles them.
CAP_NAMES: dict[int, str] = {
    R.PCI_CAP_ID_PM: "Power Management",
    R.PCI_CAP_ID_AGP: "AGP",
    R.PCI_CAP_ID_VPD: "Vital Product Data",
    R.PCI_CAP_ID_SLOTID: "Slot ID",
    R.PCI_CAP_ID_MSI: "MSI",
    R.PCI_CAP_ID_CHSWP: "CompactPCI hot-swap",
    R.PCI_CAP_ID_PCIX: "PCI-X",
    R.PCI_CAP_ID_HT: "HyperTransport",
    R.PCI_CAP_ID_VNDR: "Vendor Specific Information",
    R.PCI_CAP_ID_DBG: "Debug port",
    R.PCI_CAP_ID_CCRC: "CompactPCI central resource control",
    R.PCI_CAP_ID_SHPC: "Hot-plug capable",
    R.PCI_CAP_ID_SSVID: "Subsystem",
    R.PCI_CAP_ID_AGP3: "AGP3",
    R.PCI_CAP_ID_SECDEV: "Secure device",
    R.PCI_CAP_ID_EXP: "Express",
    R.PCI_CAP_ID_MSIX: "MSI-X",
    R.PCI_CAP_ID_SATA: "SATA HBA",
    R.PCI_CAP_ID_AF: "PCI Advanced Features",
    R.PCI_CAP_ID_EA: "Enhanced Allocation (EA)",
}

#: Extended capability names, as lspci titles them.
EXT_CAP_NAMES: dict[int, str] = {
    0x00: "Null",
    R.PCI_EXT_CAP_ID_ERR: "Advanced Error Reporting",
    R.PCI_EXT_CAP_ID_VC: "Virtual Channel",
    R.PCI_EXT_CAP_ID_DSN: "Device Serial Number",
    R.PCI_EXT_CAP_ID_PWR: "Power Budgeting",
    R.PCI_EXT_CAP_ID_RCLD: "Root Complex Link",
    R.PCI_EXT_CAP_ID_RCILC: "Root Complex Internal Link",
    R.PCI_EXT_CAP_ID_RCEC: "Root Complex Event Collector",
    R.PCI_EXT_CAP_ID_MFVC: "Multi-Function Virtual Channel",
    R.PCI_EXT_CAP_ID_VC9: "Virtual Channel",
    R.PCI_EXT_CAP_ID_RCRB: "Root Complex Register Block",
    R.PCI_EXT_CAP_ID_VNDR: "Vendor Specific Information",
    R.PCI_EXT_CAP_ID_CAC: "Config Access Correlation",
    R.PCI_EXT_CAP_ID_ACS: "Access Control Services",
    R.PCI_EXT_CAP_ID_ARI: "Alternative Routing-ID Interpretation (ARI)",
    R.PCI_EXT_CAP_ID_ATS: "Address Translation Service (ATS)",
    R.PCI_EXT_CAP_ID_SRIOV: "Single Root I/O Virtualization (SR-IOV)",
    R.PCI_EXT_CAP_ID_MRIOV: "Multi-Root I/O Virtualization (MR-IOV)",
    R.PCI_EXT_CAP_ID_MCAST: "Multicast",
    R.PCI_EXT_CAP_ID_PRI: "Page Request Interface (PRI)",
    R.PCI_EXT_CAP_ID_AMD_XXX: "Reserved for AMD",
    R.PCI_EXT_CAP_ID_REBAR: "Physical Resizable BAR",
    R.PCI_EXT_CAP_ID_DPA: "Dynamic Power Allocation",
    R.PCI_EXT_CAP_ID_TPH: "Transaction Processing Hints",
    R.PCI_EXT_CAP_ID_LTR: "Latency Tolerance Reporting",
    R.PCI_EXT_CAP_ID_SECPCI: "Secondary PCI Express",
    R.PCI_EXT_CAP_ID_PMUX: "Protocol Multiplexing",
    R.PCI_EXT_CAP_ID_PASID: "Process Address Space ID (PASID)",
    0x1C: "LN Requester",
    R.PCI_EXT_CAP_ID_DPC: "Downstream Port Containment",
    R.PCI_EXT_CAP_ID_L1SS: "L1 PM Substates",
    R.PCI_EXT_CAP_ID_PTM: "Precision Time Measurement",
    0x20: "PCI Express over M_PHY",
    0x21: "FRS Queueing",
    0x22: "Readiness Time Reporting",
    R.PCI_EXT_CAP_ID_DVSEC: "Designated Vendor-Specific",
    R.PCI_EXT_CAP_ID_VF_REBAR: "VF Resizable BAR",
    R.PCI_EXT_CAP_ID_DLF: "Data Link Feature",
    R.PCI_EXT_CAP_ID_PL_16GT: "Physical Layer 16.0 GT/s",
    0x27: "Lane Margining at the Receiver",
    0x28: "Hierarchy ID",
    R.PCI_EXT_CAP_ID_NPEM: "Native PCIe Enclosure Management",
    R.PCI_EXT_CAP_ID_PL_32GT: "Physical Layer 32.0 GT/s",
    0x2B: "Alternate Protocol",
    0x2C: "System Firmware Intermediary",
    0x2D: "Shadow Functions",
    R.PCI_EXT_CAP_ID_DOE: "Data Object Exchange",
    R.PCI_EXT_CAP_ID_DEV3: "Device 3",
    R.PCI_EXT_CAP_ID_IDE: "Integrity & Data Encryption",
    R.PCI_EXT_CAP_ID_PL_64GT: "Physical Layer 64.0 GT/s",
}


def cap_name(cap_id: int) -> str:
    """A standard capability's name; unknown IDs are shown as lspci does (``#1f``)."""
    return CAP_NAMES.get(cap_id, f"#{cap_id:02x}")


def ext_cap_name(cap_id: int) -> str:
    """An extended capability's name; unknown IDs are shown as ``Extended Capability ID 0x...``."""
    return EXT_CAP_NAMES.get(cap_id, f"Extended Capability ID {cap_id:#x}")


@dataclasses.dataclass(frozen=True)
class Capability:
    """One link of a chain: where it is, what it is.

    ``version`` is the 4-bit version of an extended capability (standard ones have none: 0);
    ``next`` is the raw NEXT pointer as found (masked as the spec says), 0 at the end.
    """

    id: int
    offset: int
    next: int
    extended: bool = False
    version: int = 0

    @property
    def name(self) -> str:
        return ext_cap_name(self.id) if self.extended else cap_name(self.id)

    @property
    def label(self) -> str:
        """The offset as lspci prints it: ``[40]`` for a standard one, ``[100 v1]`` for an extended one."""
        return f"[{self.offset:x} v{self.version}]" if self.extended else f"[{self.offset:02x}]"

    def __str__(self) -> str:
        return f"{self.label} {self.name}"


class CapabilityChainError(ValueError):
    """A capability chain that cannot be followed; ``partial`` holds the links walked before the bad one.

    ``offset`` is where the bad pointer points (or the offset of the broken entry).
    """

    def __init__(self, message: str, partial: Sequence[Capability], offset: int) -> None:
        super().__init__(message)
        self.partial = tuple(partial)
        self.offset = offset


def _u8(config: bytes, off: int) -> int:
    return config[off]


def _u16(config: bytes, off: int) -> int:
    return int.from_bytes(config[off:off + 2], "little")


def _u32(config: bytes, off: int) -> int:
    return int.from_bytes(config[off:off + 4], "little")


def capability_pointer_offset(config: bytes) -> int:
    """Where the first standard capability pointer lives: 0x34, or 0x14 for a CardBus bridge."""
    if len(config) > R.PCI_HEADER_TYPE and config[R.PCI_HEADER_TYPE] & R.PCI_HEADER_TYPE_MASK \
            == R.PCI_HEADER_TYPE_CARDBUS:
        return R.PCI_CB_CAPABILITY_LIST
    return R.PCI_CAPABILITY_LIST


def _truncated(what: str, need: int, have: int) -> str:
    hint = " (sysfs gives only 64 bytes to users other than root)" if have == 64 else ""
    return (f"{what} needs config bytes up to {need:#x}, but only {have} bytes were read{hint}")


def standard_capabilities(config: bytes) -> list[Capability]:
    """The standard capability chain, in chain order; raises :class:`CapabilityChainError` on a bad link.

    A function without ``PCI_STATUS_CAP_LIST`` has none (the pointer byte is then meaningless).
    """
    if len(config) < R.PCI_STD_HEADER_SIZEOF:
        raise CapabilityChainError(_truncated("the standard header", R.PCI_STD_HEADER_SIZEOF, len(config)), (), 0)
    if not _u16(config, R.PCI_STATUS) & R.PCI_STATUS_CAP_LIST:
        return []
    found: list[Capability] = []
    seen: set[int] = set()
    pointer_at = capability_pointer_offset(config)
    pos = _u8(config, pointer_at) & ~3
    while pos:
        where = f"the capability pointer at {pointer_at:#x}"
        if pos < R.PCI_STD_HEADER_SIZEOF:
            raise CapabilityChainError(f"{where} points to {pos:#x}, inside the standard header", found, pos)
        if pos + 2 > R.PCI_CFG_SPACE_SIZE:
            raise CapabilityChainError(f"{where} points to {pos:#x}, beyond the 256-byte standard space", found, pos)
        if pos + 2 > len(config):
            raise CapabilityChainError(_truncated(f"the capability at {pos:#x}", pos + 2, len(config)), found, pos)
        if pos in seen:
            raise CapabilityChainError(f"{where} loops back to the capability at {pos:#x}", found, pos)
        if len(found) >= STD_CAP_LIMIT:  # unreachable with the checks above; kept as the kernel's bound
            raise CapabilityChainError(f"more than {STD_CAP_LIMIT} standard capabilities", found, pos)
        seen.add(pos)
        cap_id = _u8(config, pos + R.PCI_CAP_LIST_ID)
        if cap_id == 0xFF:
            raise CapabilityChainError(f"the capability at {pos:#x} reads ID 0xff: the chain is broken "
                                       f"(the function returns all ones)", found, pos)
        nxt = _u8(config, pos + R.PCI_CAP_LIST_NEXT) & ~3
        found.append(Capability(cap_id, pos, nxt))
        pointer_at = pos + R.PCI_CAP_LIST_NEXT
        pos = nxt
    return found


def has_extended_space(config: bytes) -> bool:
    """Whether ``config`` holds an extended chain to walk: more than 256 bytes, header neither 0 nor all ones."""
    if len(config) < R.PCI_CFG_SPACE_SIZE + 4:
        return False
    header = _u32(config, R.PCI_CFG_SPACE_SIZE)
    return header not in (0, 0xFFFFFFFF)


def extended_capabilities(config: bytes) -> list[Capability]:
    """The extended capability chain from 0x100, in chain order; raises on a bad link."""
    if not has_extended_space(config):
        return []
    found: list[Capability] = []
    seen: set[int] = set()
    pos = R.PCI_CFG_SPACE_SIZE
    came_from = "the first extended capability"
    while pos:
        if pos < R.PCI_CFG_SPACE_SIZE:
            raise CapabilityChainError(f"{came_from} points to {pos:#x}, below the extended space at 0x100",
                                       found, pos)
        if pos + 4 > R.PCI_CFG_SPACE_EXP_SIZE:
            raise CapabilityChainError(f"{came_from} points to {pos:#x}, beyond the 4096-byte config space",
                                       found, pos)
        if pos + 4 > len(config):
            raise CapabilityChainError(_truncated(f"the extended capability at {pos:#x}", pos + 4, len(config)),
                                       found, pos)
        if pos in seen:
            raise CapabilityChainError(f"{came_from} loops back to {pos:#x}", found, pos)
        if len(found) >= EXT_CAP_LIMIT:  # unreachable with the checks above
            raise CapabilityChainError(f"more than {EXT_CAP_LIMIT} extended capabilities", found, pos)
        seen.add(pos)
        header = _u32(config, pos)
        if header == 0xFFFFFFFF:
            raise CapabilityChainError(f"the extended capability at {pos:#x} reads all ones: the chain is broken",
                                       found, pos)
        nxt = R.PCI_EXT_CAP_NEXT(header)
        found.append(Capability(R.PCI_EXT_CAP_ID(header), pos, nxt, extended=True,
                                version=R.PCI_EXT_CAP_VER(header)))
        came_from = f"the extended capability at {pos:#x}"
        pos = nxt
    return found


@dataclasses.dataclass
class CapabilityChains:
    """Both chains of one function, walked tolerantly: what could be followed, and why each walk stopped."""

    standard: list[Capability]
    extended: list[Capability]
    standard_error: Optional[CapabilityChainError] = None
    extended_error: Optional[CapabilityChainError] = None

    def all(self) -> list[Capability]:
        return [*self.standard, *self.extended]

    def find(self, cap_id: int, extended: bool = False) -> Optional[Capability]:
        """The first capability with this ID in the chosen chain (chain order, as ``pci_find_capability``)."""
        for cap in self.extended if extended else self.standard:
            if cap.id == cap_id:
                return cap
        return None


def walk(config: bytes) -> CapabilityChains:
    """Walk both chains without raising: for viewers that show what they can and then the error."""
    chains = CapabilityChains([], [])
    try:
        chains.standard = standard_capabilities(config)
    except CapabilityChainError as e:
        chains.standard, chains.standard_error = list(e.partial), e
    try:
        chains.extended = extended_capabilities(config)
    except CapabilityChainError as e:
        chains.extended, chains.extended_error = list(e.partial), e
    return chains


def find_capability(config: bytes, cap_id: int) -> Optional[int]:
    """Offset of the first standard capability ``cap_id`` (None if absent); raises on a bad chain."""
    for cap in standard_capabilities(config):
        if cap.id == cap_id:
            return cap.offset
    return None


def find_ext_capability(config: bytes, cap_id: int) -> Optional[int]:
    """Offset of the first extended capability ``cap_id`` (None if absent); raises on a bad chain."""
    for cap in extended_capabilities(config):
        if cap.id == cap_id:
            return cap.offset
    return None


__all__ = ["CAP_NAMES", "EXT_CAP_LIMIT", "EXT_CAP_NAMES", "STD_CAP_LIMIT", "Capability", "CapabilityChainError",
           "CapabilityChains", "cap_name", "ext_cap_name", "extended_capabilities", "find_capability",
           "find_ext_capability", "has_extended_space", "standard_capabilities", "walk"]
