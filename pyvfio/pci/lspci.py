"""An ``lspci -vv``-style decoder for a config-space image.

It prints what pciutils' ``lspci -vv`` prints from the same bytes -- the COMMAND and STATUS flags, the
BARs (``Region N: Memory at ... (64-bit, non-prefetchable) [size=512K]``) and every capability with its
offset in lspci's ``[40]`` / ``[100 v1]`` form -- so its output can be compared with lspci's line by line
(the golden test does, on dumps captured from real machines).  Where lspci consults the system (vendor
names from ``pci.ids``, the IRQ the OS routed, the IOMMU group) this decoder prints numbers and the
facts it was given, and it shows a broken capability chain with the reason instead of stopping silently.

Sources: a device's sysfs directory (:func:`read_sysfs`; ``config`` is world-readable, the first 64
bytes only for users other than root), a raw dump or an ``lspci -x`` hex dump (:func:`load_dump`), or any
bytes you have (:class:`DeviceImage`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Optional

from ..uapi import pci_regs as R
from . import caps as C
from .bars import ROM_INDEX, format_size
from .msix import MsixLayout

SYSFS_PCI = "/sys/bus/pci/devices"
IORESOURCE_IO = 0x100
IORESOURCE_MEM = 0x200

#: Class names (base << 8 | subclass) in pci.ids' words, then base classes alone.
CLASS_NAMES: dict[int, str] = {
    0x0000: "Non-VGA unclassified device", 0x0001: "VGA compatible unclassified device",
    0x0100: "SCSI storage controller", 0x0101: "IDE interface", 0x0104: "RAID bus controller",
    0x0106: "SATA controller", 0x0107: "Serial Attached SCSI controller", 0x0108: "Non-Volatile memory controller",
    0x0180: "Mass storage controller", 0x0200: "Ethernet controller", 0x0280: "Network controller",
    0x0300: "VGA compatible controller", 0x0302: "3D controller", 0x0380: "Display controller",
    0x0401: "Multimedia audio controller", 0x0403: "Audio device", 0x0500: "RAM memory",
    0x0600: "Host bridge", 0x0601: "ISA bridge", 0x0604: "PCI bridge", 0x0680: "Bridge",
    0x0700: "Serial controller", 0x0780: "Communication controller", 0x0880: "System peripheral",
    0x0c03: "USB controller", 0x0c05: "SMBus", 0x1200: "Processing accelerators",
}
BASE_CLASS_NAMES: dict[int, str] = {
    0x00: "Unclassified device", 0x01: "Mass storage controller", 0x02: "Network controller",
    0x03: "Display controller", 0x04: "Multimedia controller", 0x05: "Memory controller", 0x06: "Bridge",
    0x07: "Communication controller", 0x08: "Generic system peripheral", 0x09: "Input device controller",
    0x0A: "Docking station", 0x0B: "Processor", 0x0C: "Serial bus controller", 0x0D: "Wireless controller",
    0x0E: "Intelligent controller", 0x0F: "Satellite communications controller", 0x10: "Encryption controller",
    0x11: "Signal processing controller", 0x12: "Processing accelerators", 0x13: "Non-Essential Instrumentation",
    0x40: "Coprocessor", 0xFF: "Unassigned class",
}


def class_name(class_code: int) -> str:
    """The name of a 16-bit class code (base << 8 | subclass)."""
    return CLASS_NAMES.get(class_code) or BASE_CLASS_NAMES.get(class_code >> 8, "Class")


def flag(value: int, bit: int) -> str:
    """lspci's flag notation: ``+`` when set, ``-`` when clear."""
    return "+" if value & bit else "-"


@dataclasses.dataclass
class DeviceImage:
    """The config bytes of one function plus what the system knows about it.

    ``resources`` are the (start, end, flags) triples of sysfs ``resource`` (BARs 0-5, then the ROM);
    when absent, BAR addresses come from config space and sizes from ``sizes`` (if any).
    """

    label: str
    config: bytes
    resources: Optional[list[tuple[int, int, int]]] = None
    sizes: Optional[list[Optional[int]]] = None
    driver: Optional[str] = None
    irq: Optional[int] = None

    def u8(self, off: int) -> int:
        return self.config[off] if off < len(self.config) else 0

    def u16(self, off: int) -> int:
        return int.from_bytes(self.config[off: off + 2].ljust(2, b"\0"), "little")

    def u32(self, off: int) -> int:
        return int.from_bytes(self.config[off: off + 4].ljust(4, b"\0"), "little")

    def has(self, off: int, size: int) -> bool:
        return off + size <= len(self.config)

    def resource(self, index: int) -> tuple[int, int]:
        """(start, size) the OS reports for BAR ``index`` (6 = ROM), or (0, known size or 0)."""
        if self.resources is not None and index < len(self.resources):
            start, end, _flags = self.resources[index]
            return start, (end - start + 1) if end else 0
        size = self.sizes[index] if self.sizes is not None and index < len(self.sizes) else None
        return 0, size or 0


# -- the header --------------------------------------------------------------------------------------

def _header_lines(d: DeviceImage) -> list[str]:
    cmd, status = d.u16(R.PCI_COMMAND), d.u16(R.PCI_STATUS)
    devsel = {R.PCI_STATUS_DEVSEL_FAST: "fast", R.PCI_STATUS_DEVSEL_MEDIUM: "medium",
              R.PCI_STATUS_DEVSEL_SLOW: "slow"}.get(status & R.PCI_STATUS_DEVSEL_MASK, "??")
    lines = []
    header_type = d.u8(R.PCI_HEADER_TYPE) & R.PCI_HEADER_TYPE_MASK
    if header_type == R.PCI_HEADER_TYPE_NORMAL:
        sv, sd = d.u16(R.PCI_SUBSYSTEM_VENDOR_ID), d.u16(R.PCI_SUBSYSTEM_ID)
        if sv and sv != 0xFFFF:
            lines.append(f"\tSubsystem: Device [{sv:04x}:{sd:04x}]")
    lines.append(
        f"\tControl: I/O{flag(cmd, R.PCI_COMMAND_IO)} Mem{flag(cmd, R.PCI_COMMAND_MEMORY)} "
        f"BusMaster{flag(cmd, R.PCI_COMMAND_MASTER)} SpecCycle{flag(cmd, R.PCI_COMMAND_SPECIAL)} "
        f"MemWINV{flag(cmd, R.PCI_COMMAND_INVALIDATE)} VGASnoop{flag(cmd, R.PCI_COMMAND_VGA_PALETTE)} "
        f"ParErr{flag(cmd, R.PCI_COMMAND_PARITY)} Stepping{flag(cmd, R.PCI_COMMAND_WAIT)} "
        f"SERR{flag(cmd, R.PCI_COMMAND_SERR)} FastB2B{flag(cmd, R.PCI_COMMAND_FAST_BACK)} "
        f"DisINTx{flag(cmd, R.PCI_COMMAND_INTX_DISABLE)}")
    lines.append(
        f"\tStatus: Cap{flag(status, R.PCI_STATUS_CAP_LIST)} 66MHz{flag(status, R.PCI_STATUS_66MHZ)} "
        f"UDF{flag(status, R.PCI_STATUS_UDF)} FastB2B{flag(status, R.PCI_STATUS_FAST_BACK)} "
        f"ParErr{flag(status, R.PCI_STATUS_PARITY)} DEVSEL={devsel} "
        f">TAbort{flag(status, R.PCI_STATUS_SIG_TARGET_ABORT)} <TAbort{flag(status, R.PCI_STATUS_REC_TARGET_ABORT)} "
        f"<MAbort{flag(status, R.PCI_STATUS_REC_MASTER_ABORT)} >SERR{flag(status, R.PCI_STATUS_SIG_SYSTEM_ERROR)} "
        f"<PERR{flag(status, R.PCI_STATUS_DETECTED_PARITY)} INTx{flag(status, R.PCI_STATUS_INTERRUPT)}")
    if cmd & R.PCI_COMMAND_MASTER:
        latency = f"\tLatency: {d.u8(R.PCI_LATENCY_TIMER)}"
        min_gnt, max_lat = d.u8(R.PCI_MIN_GNT), d.u8(R.PCI_MAX_LAT)
        if header_type == R.PCI_HEADER_TYPE_NORMAL and (min_gnt or max_lat):
            parts = ([f"{min_gnt * 250}ns min"] if min_gnt else []) + ([f"{max_lat * 250}ns max"] if max_lat else [])
            latency += f" ({', '.join(parts)})"
        if d.u8(R.PCI_CACHE_LINE_SIZE):
            latency += f", Cache Line Size: {d.u8(R.PCI_CACHE_LINE_SIZE) * 4} bytes"
        lines.append(latency)
    pin = d.u8(R.PCI_INTERRUPT_PIN)
    irq = d.irq if d.irq is not None else d.u8(R.PCI_INTERRUPT_LINE)
    if pin or irq:
        letter = chr(ord("A") + pin - 1) if 1 <= pin <= 4 else "?"
        lines.append(f"\tInterrupt: pin {letter} routed to IRQ {irq}")
    return lines


IORESOURCE_PREFETCH = 0x2000
IORESOURCE_MEM_64 = 0x00100000


def _resource_type_bits(rflags: int) -> int:
    """The BAR type bits libpci derives from a sysfs resource's flags."""
    if rflags & IORESOURCE_IO:
        return R.PCI_BASE_ADDRESS_SPACE_IO
    bits = R.PCI_BASE_ADDRESS_MEM_TYPE_64 if rflags & IORESOURCE_MEM_64 else 0
    return bits | (R.PCI_BASE_ADDRESS_MEM_PREFETCH if rflags & IORESOURCE_PREFETCH else 0)


def _bar_lines(d: DeviceImage) -> list[str]:
    """``Region N:`` and ``Expansion ROM at`` lines, lspci's rules for addresses, [disabled] and [virtual]."""
    header_type = d.u8(R.PCI_HEADER_TYPE) & R.PCI_HEADER_TYPE_MASK
    count = {R.PCI_HEADER_TYPE_NORMAL: 6, R.PCI_HEADER_TYPE_BRIDGE: 2, R.PCI_HEADER_TYPE_CARDBUS: 1}.get(header_type, 0)
    cmd = d.u16(R.PCI_COMMAND)
    lines = []
    i = 0
    while i < count:
        index = i
        flg = d.u32(R.PCI_BASE_ADDRESS_0 + 4 * i)
        flg = 0 if flg == 0xFFFFFFFF else flg
        pos, size = d.resource(i)
        hw_upper = 0
        broken = False
        if flg & R.PCI_BASE_ADDRESS_SPACE_IO:
            hw_lower = flg & R.PCI_BASE_ADDRESS_IO_MASK & 0xFFFFFFFF
        else:
            hw_lower = flg & R.PCI_BASE_ADDRESS_MEM_MASK & 0xFFFFFFFF
            if flg & R.PCI_BASE_ADDRESS_MEM_TYPE_MASK == R.PCI_BASE_ADDRESS_MEM_TYPE_64:
                if i >= count - 1:
                    broken = True
                else:
                    i += 1
                    hw_upper = d.u32(R.PCI_BASE_ADDRESS_0 + 4 * i)
        i += 1
        if d.resources is None:
            pos = hw_lower | hw_upper << 32  # no OS view: the address is what the register holds
        if not pos and not flg and not size:
            continue
        # A region the OS reports but the register does not hold (e.g. firmware-assigned, or hidden).
        virtual = d.resources is not None and bool((pos or size) and not hw_lower and not hw_upper)
        if virtual and d.resources is not None:
            flg = _resource_type_bits(d.resources[index][2])
        line = f"\tRegion {index}: "
        if flg & R.PCI_BASE_ADDRESS_SPACE_IO:
            addr = pos & ~0x3
            line += "I/O ports at " + (f"{addr:04x}" if addr or cmd & R.PCI_COMMAND_IO
                                       else "<ignored>" if hw_lower else "<unassigned>")
            line += " [virtual]" if virtual else "" if cmd & R.PCI_COMMAND_IO else " [disabled]"
        else:
            mem_type = flg & R.PCI_BASE_ADDRESS_MEM_TYPE_MASK
            addr = pos & ~0xF
            where = ("<broken-64-bit-slot>" if broken else f"{addr:08x}" if addr
                     else "<ignored>" if hw_lower or hw_upper else "<unassigned>")
            width = {R.PCI_BASE_ADDRESS_MEM_TYPE_32: "32-bit", R.PCI_BASE_ADDRESS_MEM_TYPE_64: "64-bit",
                     R.PCI_BASE_ADDRESS_MEM_TYPE_1M: "low-1M"}.get(mem_type, "type 3")
            pf = "" if flg & R.PCI_BASE_ADDRESS_MEM_PREFETCH else "non-"
            line += f"Memory at {where} ({width}, {pf}prefetchable)"
            line += " [virtual]" if virtual else "" if cmd & R.PCI_COMMAND_MEMORY else " [disabled]"
        if size:
            line += f" [size={format_size(size)}]"
        lines.append(line)
    if header_type in (R.PCI_HEADER_TYPE_NORMAL, R.PCI_HEADER_TYPE_BRIDGE):
        reg = R.PCI_ROM_ADDRESS if header_type == R.PCI_HEADER_TYPE_NORMAL else R.PCI_ROM_ADDRESS1
        flg = d.u32(reg)
        flg = 0 if flg == 0xFFFFFFFF else flg
        rom, size = d.resource(ROM_INDEX) if header_type == R.PCI_HEADER_TYPE_NORMAL else (0, 0)
        if not rom and d.resources is None:
            rom = flg & R.PCI_ROM_ADDRESS_MASK
        if rom or flg or size:
            virtual = d.resources is not None and bool(rom & R.PCI_ROM_ADDRESS_MASK and not flg & R.PCI_ROM_ADDRESS_MASK)
            if virtual:
                flg = rom
            line = "\tExpansion ROM at " + (f"{rom & R.PCI_ROM_ADDRESS_MASK:08x}" if rom & R.PCI_ROM_ADDRESS_MASK
                                            else "<ignored>" if flg & R.PCI_ROM_ADDRESS_MASK else "<unassigned>")
            line += " [virtual]" if virtual else ""
            if not flg & R.PCI_ROM_ADDRESS_ENABLE:
                line += " [disabled]"
            elif not virtual and not cmd & R.PCI_COMMAND_MEMORY:
                line += " [disabled by cmd]"
            if size:
                line += f" [size={format_size(size)}]"
            lines.append(line)
    return lines


# -- capabilities ------------------------------------------------------------------------------------

def _cap_pm(d: DeviceImage, pos: int) -> list[str]:
    pmc = d.u16(pos + R.PCI_PM_PMC)
    aux = (0, 55, 100, 160, 220, 270, 320, 375)[(pmc >> 6) & 7]
    pme = [flag(pmc, 0x0800 << i) for i in range(5)]
    ctrl = d.u16(pos + R.PCI_PM_CTRL)
    return [f"Power Management version {pmc & R.PCI_PM_CAP_VER_MASK}",
            f"\t\tFlags: PMEClk{flag(pmc, R.PCI_PM_CAP_PME_CLOCK)} DSI{flag(pmc, R.PCI_PM_CAP_DSI)} "
            f"D1{flag(pmc, R.PCI_PM_CAP_D1)} D2{flag(pmc, R.PCI_PM_CAP_D2)} AuxCurrent={aux}mA "
            f"PME(D0{pme[0]},D1{pme[1]},D2{pme[2]},D3hot{pme[3]},D3cold{pme[4]})",
            f"\t\tStatus: D{ctrl & R.PCI_PM_CTRL_STATE_MASK} NoSoftRst{flag(ctrl, R.PCI_PM_CTRL_NO_SOFT_RESET)} "
            f"PME-Enable{flag(ctrl, R.PCI_PM_CTRL_PME_ENABLE)} DSel={(ctrl & R.PCI_PM_CTRL_DATA_SEL_MASK) >> 9} "
            f"DScale={(ctrl & R.PCI_PM_CTRL_DATA_SCALE_MASK) >> 13} PME{flag(ctrl, R.PCI_PM_CTRL_PME_STATUS)}"]


def _cap_msi(d: DeviceImage, pos: int) -> list[str]:
    f = d.u16(pos + R.PCI_MSI_FLAGS)
    is64 = f & R.PCI_MSI_FLAGS_64BIT
    lines = [f"MSI: Enable{flag(f, R.PCI_MSI_FLAGS_ENABLE)} Count={1 << ((f & R.PCI_MSI_FLAGS_QSIZE) >> 4)}/"
             f"{1 << ((f & R.PCI_MSI_FLAGS_QMASK) >> 1)} Maskable{flag(f, R.PCI_MSI_FLAGS_MASKBIT)} "
             f"64bit{flag(f, R.PCI_MSI_FLAGS_64BIT)}"]
    lo = d.u32(pos + R.PCI_MSI_ADDRESS_LO)
    if is64:
        lines.append(f"\t\tAddress: {d.u32(pos + R.PCI_MSI_ADDRESS_HI):08x}{lo:08x}  "
                     f"Data: {d.u16(pos + R.PCI_MSI_DATA_64):04x}")
    else:
        lines.append(f"\t\tAddress: {lo:08x}  Data: {d.u16(pos + R.PCI_MSI_DATA_32):04x}")
    if f & R.PCI_MSI_FLAGS_MASKBIT:
        mask = d.u32(pos + (R.PCI_MSI_MASK_64 if is64 else R.PCI_MSI_MASK_32))
        pending = d.u32(pos + (R.PCI_MSI_PENDING_64 if is64 else R.PCI_MSI_PENDING_32))
        lines.append(f"\t\tMasking: {mask:08x}  Pending: {pending:08x}")
    return lines


def _cap_msix(d: DeviceImage, pos: int) -> list[str]:
    f = d.u16(pos + R.PCI_MSIX_FLAGS)
    lay = MsixLayout.from_registers(pos, f, d.u32(pos + R.PCI_MSIX_TABLE), d.u32(pos + R.PCI_MSIX_PBA))
    return [f"MSI-X: Enable{flag(f, R.PCI_MSIX_FLAGS_ENABLE)} Count={lay.entries} "
            f"Masked{flag(f, R.PCI_MSIX_FLAGS_MASKALL)}",
            f"\t\tVector table: BAR={lay.table_bar} offset={lay.table_offset:08x}",
            f"\t\tPBA: BAR={lay.pba_bar} offset={lay.pba_offset:08x}"]


VIRTIO_CFG_TYPES = {1: "CommonCfg", 2: "Notify", 3: "ISR", 4: "DeviceCfg"}


def _cap_vendor(d: DeviceImage, pos: int) -> list[str]:
    length = d.u8(pos + 2)
    vendor, device = d.u16(R.PCI_VENDOR_ID), d.u16(R.PCI_DEVICE_ID)
    if vendor == 0x1AF4 and 0x1000 <= device <= 0x107F and length >= 16 and d.has(pos, length):
        cfg_type = d.u8(pos + 3)
        detail = (f"\t\tBAR={d.u8(pos + 4)} offset={d.u32(pos + 8):08x} size={d.u32(pos + 12):08x}"
                  + (f" multiplier={d.u32(pos + 16):08x}" if cfg_type == 2 and length >= 20 else ""))
        return [f"Vendor Specific Information: VirtIO: {VIRTIO_CFG_TYPES.get(cfg_type, '<unknown>')}", detail]
    return [f"Vendor Specific Information: Len={length:02x} <?>"]


EXP_TYPES = {R.PCI_EXP_TYPE_ENDPOINT: "Endpoint", R.PCI_EXP_TYPE_LEG_END: "Legacy Endpoint",
             R.PCI_EXP_TYPE_ROOT_PORT: "Root Port", R.PCI_EXP_TYPE_UPSTREAM: "Upstream Port",
             R.PCI_EXP_TYPE_DOWNSTREAM: "Downstream Port", R.PCI_EXP_TYPE_PCI_BRIDGE: "PCI-Express to PCI/PCI-X Bridge",
             R.PCI_EXP_TYPE_PCIE_BRIDGE: "PCI/PCI-X to PCI-Express Bridge",
             R.PCI_EXP_TYPE_RC_END: "Root Complex Integrated Endpoint",
             R.PCI_EXP_TYPE_RC_EC: "Root Complex Event Collector"}


def _cap_express(d: DeviceImage, pos: int) -> list[str]:
    f = d.u16(pos + R.PCI_EXP_FLAGS)
    kind = (f & R.PCI_EXP_FLAGS_TYPE) >> 4
    name = EXP_TYPES.get(kind, f"Unknown type {kind}")
    if kind in (R.PCI_EXP_TYPE_ROOT_PORT, R.PCI_EXP_TYPE_DOWNSTREAM):
        name += f" (Slot{flag(f, R.PCI_EXP_FLAGS_SLOT)})"
    lines = [f"Express (v{f & R.PCI_EXP_FLAGS_VERS}) {name}, IntMsgNum {(f & R.PCI_EXP_FLAGS_IRQ) >> 9}"]
    devcap, devctl = d.u32(pos + R.PCI_EXP_DEVCAP), d.u16(pos + R.PCI_EXP_DEVCTL)
    lines.append(f"\t\tDevCap:\tMaxPayload {128 << (devcap & R.PCI_EXP_DEVCAP_PAYLOAD)} bytes, "
                 f"FLReset{flag(devcap, R.PCI_EXP_DEVCAP_FLR)}")
    lines.append(f"\t\tDevCtl:\tCorrErr{flag(devctl, R.PCI_EXP_DEVCTL_CERE)} "
                 f"NonFatalErr{flag(devctl, R.PCI_EXP_DEVCTL_NFERE)} FatalErr{flag(devctl, R.PCI_EXP_DEVCTL_FERE)} "
                 f"UnsupReq{flag(devctl, R.PCI_EXP_DEVCTL_URRE)}")
    lines.append(f"\t\t\tMaxPayload {128 << ((devctl & R.PCI_EXP_DEVCTL_PAYLOAD) >> 5)} bytes, "
                 f"MaxReadReq {128 << ((devctl & R.PCI_EXP_DEVCTL_READRQ) >> 12)} bytes")
    if kind not in (R.PCI_EXP_TYPE_RC_END, R.PCI_EXP_TYPE_RC_EC) and d.has(pos + R.PCI_EXP_LNKSTA, 2):
        lnkcap, lnksta = d.u32(pos + R.PCI_EXP_LNKCAP), d.u16(pos + R.PCI_EXP_LNKSTA)
        speeds = {1: "2.5GT/s", 2: "5GT/s", 3: "8GT/s", 4: "16GT/s", 5: "32GT/s", 6: "64GT/s"}
        lines.append(f"\t\tLnkCap:\tPort #{lnkcap >> 24}, Speed {speeds.get(lnkcap & 0xF, 'unknown')}, "
                     f"Width x{(lnkcap & R.PCI_EXP_LNKCAP_MLW) >> 4}")
        lines.append(f"\t\tLnkSta:\tSpeed {speeds.get(lnksta & R.PCI_EXP_LNKSTA_CLS, 'unknown')}, "
                     f"Width x{(lnksta & R.PCI_EXP_LNKSTA_NLW) >> R.PCI_EXP_LNKSTA_NLW_SHIFT}")
    return lines


def _cap_sata(d: DeviceImage, pos: int) -> list[str]:
    rev = d.u8(pos + 2)
    bars = d.u32(pos + R.PCI_SATA_REGS)
    bar = bars & 0xF
    text = f"SATA HBA v{rev >> 4 & 0xF}.{rev & 0xF}"
    if 4 <= bar <= 9:
        text += f" BAR{bar - 4} Offset={(bars >> 4) & 0xFFFFF:08x}"
    elif bar == R.PCI_SATA_REGS_INLINE:
        text += " InCfgSpace"
    else:
        text += f" BAR??{bar}"
    return [text]


def _cap_af(d: DeviceImage, pos: int) -> list[str]:
    cap, ctrl, status = d.u8(pos + R.PCI_AF_CAP), d.u8(pos + R.PCI_AF_CTRL), d.u8(pos + R.PCI_AF_STATUS)
    return ["PCI Advanced Features", f"\t\tAFCap: TP{flag(cap, R.PCI_AF_CAP_TP)} FLR{flag(cap, R.PCI_AF_CAP_FLR)}",
            f"\t\tAFCtrl: FLR{flag(ctrl, R.PCI_AF_CTRL_FLR)}", f"\t\tAFStatus: TP{flag(status, 1)}"]


STD_DECODERS: dict[int, Callable[[DeviceImage, int], list[str]]] = {
    R.PCI_CAP_ID_PM: _cap_pm, R.PCI_CAP_ID_MSI: _cap_msi, R.PCI_CAP_ID_MSIX: _cap_msix,
    R.PCI_CAP_ID_VNDR: _cap_vendor, R.PCI_CAP_ID_EXP: _cap_express, R.PCI_CAP_ID_SATA: _cap_sata,
    R.PCI_CAP_ID_AF: _cap_af,
}


def _std_cap(d: DeviceImage, cap: C.Capability) -> list[str]:
    decoder = STD_DECODERS.get(cap.id)
    if decoder is not None:
        return decoder(d, cap.offset)
    if cap.id in C.CAP_NAMES:
        return [C.CAP_NAMES[cap.id]]
    return [f"#{cap.id:02x} [{d.u16(cap.offset + 2):04x}]"]


def _ext_cap(d: DeviceImage, cap: C.Capability) -> list[str]:
    pos = cap.offset
    if cap.id == R.PCI_EXT_CAP_ID_DSN:
        serial = d.u32(pos + 8) << 32 | d.u32(pos + 4)
        return ["Device Serial Number " + "-".join(f"{serial >> (8 * i) & 0xFF:02x}" for i in range(7, -1, -1))]
    if cap.id == R.PCI_EXT_CAP_ID_VNDR:
        hdr = d.u32(pos + R.PCI_VNDR_HEADER)
        return [f"Vendor Specific Information: ID={R.PCI_VNDR_HEADER_ID(hdr):04x} "
                f"Rev={R.PCI_VNDR_HEADER_REV(hdr)} Len={R.PCI_VNDR_HEADER_LEN(hdr):03x} <?>"]
    return [cap.name]


def capability_lines(d: DeviceImage) -> list[str]:
    """Every ``Capabilities:`` line (and detail lines) of lspci -vv, or why the chain cannot be shown."""
    lines: list[str] = []
    if not d.u16(R.PCI_STATUS) & R.PCI_STATUS_CAP_LIST:
        return lines
    if len(d.config) <= R.PCI_STD_HEADER_SIZEOF:
        return ["\tCapabilities: <access denied>"]
    chains = C.walk(d.config)
    for cap in chains.standard:
        body = _std_cap(d, cap)
        lines.append(f"\tCapabilities: {cap.label} {body[0]}")
        lines.extend(body[1:])
    if chains.standard_error is not None:
        lines.append(f"\tCapabilities: <chain broken: {chains.standard_error}>")
    # Like lspci: only PCI Express and PCI-X 2.0 functions have an extended space worth showing.
    if any(c.id in (R.PCI_CAP_ID_EXP, R.PCI_CAP_ID_PCIX) for c in chains.standard) \
            and len(d.config) > R.PCI_CFG_SPACE_SIZE:
        for cap in chains.extended:
            body = _ext_cap(d, cap)
            lines.append(f"\tCapabilities: {cap.label} {body[0]}")
            lines.extend(body[1:])
        if chains.extended_error is not None:
            lines.append(f"\tCapabilities: <chain broken: {chains.extended_error}>")
    return lines


def title(d: DeviceImage) -> str:
    """The first line: label, class, IDs, revision, programming interface."""
    cls = d.u16(R.PCI_CLASS_DEVICE)
    text = (f"{d.label} {class_name(cls)} [{cls:04x}]: Device [{d.u16(R.PCI_VENDOR_ID):04x}:"
            f"{d.u16(R.PCI_DEVICE_ID):04x}]")
    if d.u8(R.PCI_REVISION_ID):
        text += f" (rev {d.u8(R.PCI_REVISION_ID):02x})"
    if d.u8(R.PCI_CLASS_PROG):
        text += f" (prog-if {d.u8(R.PCI_CLASS_PROG):02x})"
    return text


def describe(d: DeviceImage) -> list[str]:
    """The whole ``lspci -vv``-style block for one function."""
    if len(d.config) < R.PCI_STD_HEADER_SIZEOF:
        return [f"{d.label}: only {len(d.config)} config bytes; a header needs {R.PCI_STD_HEADER_SIZEOF}"]
    lines = [title(d), *_header_lines(d), *_bar_lines(d), *capability_lines(d)]
    if d.driver:
        lines.append(f"\tKernel driver in use: {d.driver}")
    return lines


def hex_dump(config: bytes) -> list[str]:
    """``lspci -xxx`` rows: offset, then 16 bytes in hex."""
    return [f"{off:02x}: " + " ".join(f"{b:02x}" for b in config[off: off + 16]) for off in range(0, len(config), 16)]


# -- sources -----------------------------------------------------------------------------------------

_ADDRESS = re.compile(r"^(?:(?P<domain>[0-9a-fA-F]{1,4}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<slot>[0-9a-fA-F]{1,2})"
                      r"\.(?P<fn>[0-7])$")


def normalize_address(text: str) -> Optional[str]:
    """``0000:00:03.0`` from ``00:03.0`` or ``0:3.0``; None when ``text`` is not a PCI address."""
    m = _ADDRESS.match(text.strip())
    if not m:
        return None
    return f"{int(m['domain'] or '0', 16):04x}:{int(m['bus'], 16):02x}:{int(m['slot'], 16):02x}.{m['fn']}"


def short_address(address: str) -> str:
    """lspci's label: the domain is dropped when it is 0000."""
    return address[5:] if address.startswith("0000:") else address


def parse_resource(text: str) -> list[tuple[int, int, int]]:
    """sysfs ``resource``: one ``start end flags`` line per resource, hex."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)))
    return out


def read_sysfs(address: str, root: str = SYSFS_PCI) -> DeviceImage:
    """A function as sysfs shows it: ``config`` (all of it as root, 64 bytes otherwise), resources, driver, IRQ."""
    norm = normalize_address(address)
    if norm is None:
        raise ValueError(f"{address!r} is not a PCI address (expected e.g. 0000:00:03.0 or 00:03.0)")
    path = Path(root, norm)
    if not path.is_dir():
        raise FileNotFoundError(f"no PCI function {norm} in {root}")
    config = (path / "config").read_bytes()
    resources = parse_resource((path / "resource").read_text()) if (path / "resource").exists() else None
    driver = os.path.basename(os.readlink(path / "driver")) if (path / "driver").exists() else None
    irq: Optional[int] = None
    try:
        irq = int((path / "irq").read_text().strip())
    except (OSError, ValueError):
        pass
    return DeviceImage(short_address(norm), config, resources, driver=driver, irq=irq)


def sysfs_addresses(root: str = SYSFS_PCI) -> list[str]:
    """Every function sysfs lists, in address order."""
    if not os.path.isdir(root):
        return []
    return sorted(name for name in os.listdir(root) if normalize_address(name))


_HEX_ROW = re.compile(r"^([0-9a-fA-F]{2,3}):((?:\s[0-9a-fA-F]{2})+)\s*$")


def parse_hex_dump(text: str) -> list[tuple[str, bytes]]:
    """Functions in ``lspci -x``/``-xxx``/``-xxxx`` output: (title line or "", config bytes) pairs.

    Rows must be contiguous from offset 0; a gap means a damaged dump and raises ValueError.
    """
    out: list[tuple[str, bytearray]] = []
    label = ""
    current: Optional[bytearray] = None
    for line in text.splitlines():
        m = _HEX_ROW.match(line)
        if m:
            offset = int(m[1], 16)
            if current is None:
                current = bytearray()
                out.append((label, current))
            if offset != len(current):
                raise ValueError(f"hex dump row at {offset:#x} does not follow the {len(current)} bytes before it")
            current += bytes(int(b, 16) for b in m[2].split())
        elif line.strip():
            label, current = line.split(" ", 1)[0], None
        else:
            current = None
    return [(lbl, bytes(data)) for lbl, data in out]


def load_dump(path: str) -> list[DeviceImage]:
    """Images from a file: a raw config dump (binary), or the text of ``lspci -x`` (one or many functions)."""
    data = Path(path).read_bytes()
    name = os.path.basename(path)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and any(_HEX_ROW.match(line) for line in text.splitlines()):
        dumps = parse_hex_dump(text)
        return [DeviceImage(label or f"{name}#{i}", config) for i, (label, config) in enumerate(dumps)]
    return [DeviceImage(name, data)]


__all__ = ["DeviceImage", "capability_lines", "class_name", "describe", "hex_dump", "load_dump",
           "normalize_address", "parse_hex_dump", "parse_resource", "read_sysfs", "sysfs_addresses", "title"]
