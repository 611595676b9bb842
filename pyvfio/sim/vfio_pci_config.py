"""vfio-pci config-space virtualization (``drivers/vfio/pci/vfio_pci_config.c``).

The user reads and writes the device's config space through region 7 of the
device fd, but never touches the hardware directly: every byte is owned by a
capability (``pci_config_map``) whose *permission bits* say, bit by bit,
whether it is **virtualized** (served from and stored into the per-open
shadow ``vconfig``) and whether it is **writable** at all.  Reads merge
``(hardware & ~virt) | (vconfig & virt)``; writes keep only writable bits,
sending the virtualized ones to ``vconfig`` and the rest (read-modify-write)
to the hardware.  That is why, for example:

- BARs are all virtual: writing all-ones and reading back gives the size
  mask with the type bits (``vfio_bar_fixup``), and the user value never
  reaches the real BAR;
- COMMAND passes through except INTX_DISABLE, which is virtual and drives
  INTx masking; STATUS is read-only (W1C bits cannot be cleared);
- the MSI capability's flags/address/data are virtual: setting MSI ENABLE in
  config does nothing until ``VFIO_DEVICE_SET_IRQS``; the MSI-X capability is
  read-only;
- unknown capabilities are unlinked from the chain (via the virtual NEXT
  bytes) and gaps between capabilities pass through raw.

Each function is named after the one it models.  The per-open state lives in
:class:`VfioPciConfig`; the shared permission tables are built once at import
(``vfio_pci_init_perm_bits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from ..uapi import vfio as uv
from .errno import EFAULT, KernelError
from ..uapi.pci_regs import (
    PCI_AF_CAP,
    PCI_AF_CAP_FLR,
    PCI_AF_CAP_TP,
    PCI_AF_CTRL,
    PCI_AF_CTRL_FLR,
    PCI_BASE_ADDRESS_0,
    PCI_BASE_ADDRESS_5,
    PCI_BASE_ADDRESS_MEM_TYPE_64,
    PCI_BIST,
    PCI_CACHE_LINE_SIZE,
    PCI_CAPABILITY_LIST,
    PCI_CAP_ID_AF,
    PCI_CAP_ID_AGP,
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_HT,
    PCI_CAP_ID_MAX,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_PCIX,
    PCI_CAP_ID_PM,
    PCI_CAP_ID_SATA,
    PCI_CAP_ID_VNDR,
    PCI_CAP_ID_VPD,
    PCI_CAP_LIST_ID,
    PCI_CAP_LIST_NEXT,
    PCI_CAP_MSIX_SIZEOF,
    PCI_CAP_PCIX_SIZEOF_V0,
    PCI_CAP_PCIX_SIZEOF_V1,
    PCI_CAP_SIZEOF,
    PCI_CFG_SPACE_SIZE,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_IO,
    PCI_COMMAND_MEMORY,
    PCI_DEVICE_ID,
    PCI_DVSEC_HEADER1,
    PCI_ERR_CAP,
    PCI_ERR_COR_MASK,
    PCI_ERR_COR_STATUS,
    PCI_ERR_ROOT_COMMAND,
    PCI_ERR_UNCOR_MASK,
    PCI_ERR_UNCOR_SEVER,
    PCI_ERR_UNCOR_STATUS,
    PCI_EXP_DEVCAP,
    PCI_EXP_DEVCAP_FLR,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL2,
    PCI_EXP_DEVCTL2_ARI,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_EXP_DEVCTL_PAYLOAD,
    PCI_EXP_DEVCTL_PHANTOM,
    PCI_EXP_DEVCTL_READRQ,
    PCI_EXP_FLAGS,
    PCI_EXP_FLAGS_TYPE,
    PCI_EXP_FLAGS_VERS,
    PCI_EXP_TYPE_RC_END,
    PCI_EXT_CAP_ID,
    PCI_EXT_CAP_ID_ACS,
    PCI_EXT_CAP_ID_ARI,
    PCI_EXT_CAP_ID_ATS,
    PCI_EXT_CAP_ID_DPA,
    PCI_EXT_CAP_ID_DSN,
    PCI_EXT_CAP_ID_DVSEC,
    PCI_EXT_CAP_ID_ERR,
    PCI_EXT_CAP_ID_LTR,
    PCI_EXT_CAP_ID_MCAST,
    PCI_EXT_CAP_ID_MFVC,
    PCI_EXT_CAP_ID_PRI,
    PCI_EXT_CAP_ID_PWR,
    PCI_EXT_CAP_ID_REBAR,
    PCI_EXT_CAP_ID_SRIOV,
    PCI_EXT_CAP_ID_TPH,
    PCI_EXT_CAP_ID_VC,
    PCI_EXT_CAP_ID_VC9,
    PCI_EXT_CAP_ID_VNDR,
    PCI_EXT_CAP_NEXT,
    PCI_INTERRUPT_LINE,
    PCI_INTERRUPT_PIN,
    PCI_LATENCY_TIMER,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_32,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_MSI_FLAGS_QMASK,
    PCI_MSI_FLAGS_QSIZE,
    PCI_MSI_MASK_32,
    PCI_MSI_MASK_64,
    PCI_MSI_PENDING_32,
    PCI_MSI_PENDING_64,
    PCI_PM_CAP_PME_MASK,
    PCI_PM_CTRL,
    PCI_PM_CTRL_PME_ENABLE,
    PCI_PM_CTRL_PME_STATUS,
    PCI_PM_CTRL_STATE_MASK,
    PCI_PM_PMC,
    PCI_PM_SIZEOF,
    PCI_ROM_ADDRESS,
    PCI_ROM_ADDRESS_ENABLE,
    PCI_SATA_REGS,
    PCI_SATA_REGS_INLINE,
    PCI_SATA_REGS_MASK,
    PCI_SATA_SIZEOF_LONG,
    PCI_SATA_SIZEOF_SHORT,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
    PCI_VENDOR_ID,
    PCI_VNDR_HEADER,
    PCI_VPD_ADDR,
    PCI_VPD_ADDR_F,
    PCI_VPD_DATA,
    PCI_X_CMD,
)
from .pci_device import (
    msi_cap_size,
)

if TYPE_CHECKING:
    from .vfio_pci_core import VfioPciCoreDevice

PCI_CAP_ID_BASIC = 0  # the fake capability id owning the standard header
PCI_CAP_ID_INVALID = 0xFF  # a byte no capability owns: raw pass-through
PCI_CAP_ID_INVALID_VIRT = 0xFE  # a byte fully virtualized (quirks)
PCI_PWR_DATA = 4
PCI_X_ECC_CSR = 8
PCI_ACS_CAP = 4
PCI_ACS_EC = 0x20  # egress control: an egress control vector follows the control register
PCI_ACS_EGRESS_BITS = 5
PCI_TPH_CAP = 4
PCI_TPH_CAP_LOC_MASK = 0x600
PCI_TPH_LOC_CAP = 0x200  # the steering-tag table sits in the capability
PCI_TPH_CAP_ST_MASK = 0x07FF0000
PCI_TPH_CAP_ST_SHIFT = 16
PCI_TPH_BASE_SIZEOF = 12
PCI_VC_PORT_CAP1 = 4
PCI_VC_CAP1_EVCC = 0x7
PCI_VC_PORT_CAP2 = 8
PCI_VC_CAP2_32_PHASE = 0x2
PCI_VC_CAP2_64_PHASE = 0x4
PCI_VC_CAP2_128_PHASE = 0x8
PCI_CAP_VC_BASE_SIZEOF = 0x10
PCI_CAP_VC_PER_VC_SIZEOF = 0x0C


def PCI_X_CMD_VERSION(cmd: int) -> int:
    return (cmd >> 12) & 3

NO_VIRT = 0
ALL_VIRT = 0xFFFFFFFF
NO_WRITE = 0
ALL_WRITE = 0xFFFFFFFF

# Length of each standard capability: 0 = hidden from the user, 0xFF = computed (vfio_cap_len).
pci_cap_length: dict[int, int] = {
    PCI_CAP_ID_BASIC: PCI_STD_HEADER_SIZEOF, PCI_CAP_ID_PM: PCI_PM_SIZEOF, PCI_CAP_ID_AGP: 48,
    PCI_CAP_ID_VPD: 8, PCI_CAP_ID_MSI: 0xFF, PCI_CAP_ID_PCIX: 0xFF, PCI_CAP_ID_HT: 0xFF,
    PCI_CAP_ID_VNDR: 0xFF, PCI_CAP_ID_EXP: 0xFF, PCI_CAP_ID_MSIX: PCI_CAP_MSIX_SIZEOF,
    PCI_CAP_ID_SATA: 0xFF, PCI_CAP_ID_AF: 6,
}  # SLOTID, CHSWP, DBG, CCRC, SHPC, SSVID, AGP3, SECDEV, EA and unknown ids: 0

# Same for extended capabilities; ids missing here (root-only, obsolete, not-yet, PASID...) are hidden.
PCI_EXT_CAP_ID_MAX = 0x2E
pci_ext_cap_length: dict[int, int] = {
    PCI_EXT_CAP_ID_ERR: PCI_ERR_ROOT_COMMAND, PCI_EXT_CAP_ID_VC: 0xFF, PCI_EXT_CAP_ID_DSN: 12,
    PCI_EXT_CAP_ID_PWR: 16, PCI_EXT_CAP_ID_MFVC: 0xFF, PCI_EXT_CAP_ID_VC9: 0xFF, PCI_EXT_CAP_ID_VNDR: 0xFF,
    PCI_EXT_CAP_ID_ACS: 0xFF, PCI_EXT_CAP_ID_ARI: 8, PCI_EXT_CAP_ID_ATS: 8, PCI_EXT_CAP_ID_SRIOV: 64,
    PCI_EXT_CAP_ID_MCAST: 40, PCI_EXT_CAP_ID_PRI: 16, PCI_EXT_CAP_ID_REBAR: 0xFF, PCI_EXT_CAP_ID_DPA: 0xFF,
    PCI_EXT_CAP_ID_TPH: 0xFF, PCI_EXT_CAP_ID_LTR: 8, PCI_EXT_CAP_ID_DVSEC: 0xFF,
}

ReadFn = Callable[["VfioPciConfig", int, int, "PermBits", int], int]
WriteFn = Callable[["VfioPciConfig", int, int, "PermBits", int, int], int]


class PermBits:
    """``struct perm_bits``: per-bit virtualization and write permission for one capability layout."""

    def __init__(self, size: int = 0, readfn: Optional[ReadFn] = None, writefn: Optional[WriteFn] = None) -> None:
        size = (size + 3) & ~3  # rounded up so an access never runs past the table
        self.virt = bytearray(size)
        self.write = bytearray(size)
        self.readfn = readfn
        self.writefn = writefn

    def p_setb(self, off: int, virt: int, write: int) -> None:
        self.virt[off] = virt & 0xFF
        self.write[off] = write & 0xFF

    def p_setw(self, off: int, virt: int, write: int) -> None:
        self.virt[off: off + 2] = (virt & 0xFFFF).to_bytes(2, "little")
        self.write[off: off + 2] = (write & 0xFFFF).to_bytes(2, "little")

    def p_setd(self, off: int, virt: int, write: int) -> None:
        self.virt[off: off + 4] = (virt & 0xFFFFFFFF).to_bytes(4, "little")
        self.write[off: off + 4] = (write & 0xFFFFFFFF).to_bytes(4, "little")

    def bits(self, table: bytearray, offset: int, count: int) -> int:
        return int.from_bytes(table[offset: offset + count], "little")


class VfioPciConfig:
    """The per-open config state of one device: ``vconfig``, ``pci_config_map``, BAR bookkeeping."""

    def __init__(self, core: "VfioPciCoreDevice") -> None:
        self.core = core
        size = core.pci.config_size
        self.cfg_size = size
        self.vconfig = bytearray(size)
        self.map = bytearray([PCI_CAP_ID_BASIC] * PCI_STD_HEADER_SIZEOF
                             + [PCI_CAP_ID_INVALID] * (size - PCI_STD_HEADER_SIZEOF))
        self.msi_perm: Optional[PermBits] = None
        self.bardirty = True
        self.rbar = [0] * 7
        self.extended_caps = False

    # vconfig accessors
    def v(self, pos: int, count: int) -> int:
        return int.from_bytes(self.vconfig[pos: pos + count], "little")

    def set_v(self, pos: int, count: int, val: int) -> None:
        self.vconfig[pos: pos + count] = (val & ((1 << (8 * count)) - 1)).to_bytes(count, "little")

    # hardware accessors (pci_user_read/write_config_*)
    def hw_read(self, pos: int, count: int) -> int:
        return self.core.pci_read_config(pos, count)

    def hw_write(self, pos: int, count: int, val: int) -> None:
        self.core.pci_write_config(pos, count, val)


def _mask(count: int) -> int:
    return (1 << (8 * count)) - 1


# -- the generic access functions ----------------------------------------------------------------

def vfio_default_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    """Virtual bits from vconfig, the rest from the device (read only if some bit is not virtual)."""
    val = cfg.v(pos, count)
    virt = perm.bits(perm.virt, offset, count)
    if virt != _mask(count):
        phys = cfg.hw_read(pos, count)
        val = (phys & ~virt) | (val & virt)
    return val & _mask(count)


def vfio_default_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int,
                              val: int) -> int:
    """Writable virtual bits to vconfig, writable physical bits read-modify-write to the device."""
    write = perm.bits(perm.write, offset, count)
    if not write:
        return count  # nothing writable: dropped, still reported as written
    virt = perm.bits(perm.virt, offset, count)
    if write & virt:
        cur = cfg.v(pos, count)
        cfg.set_v(pos, count, (cur & ~(write & virt)) | (val & write & virt))
    if write & ~virt & _mask(count):
        phys = cfg.hw_read(pos, count)
        phys = (phys & ~(write & ~virt)) | (val & write & ~virt)
        cfg.hw_write(pos, count, phys)
    return count


def vfio_direct_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    """Read the device, except a capability's ID/NEXT (or an ecap's header) come from vconfig."""
    val = cfg.hw_read(pos, count)
    raw = bytearray(val.to_bytes(count, "little"))
    if pos >= PCI_CFG_SPACE_SIZE:
        if offset < 4:
            raw[:] = cfg.vconfig[pos: pos + count]
    elif pos >= PCI_STD_HEADER_SIZEOF:
        if offset == PCI_CAP_LIST_ID and count > 1:
            n = min(2, count)
            raw[:n] = cfg.vconfig[pos: pos + n]
        elif offset == PCI_CAP_LIST_NEXT:
            raw[0] = cfg.vconfig[pos]
    return int.from_bytes(raw, "little")


def vfio_raw_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    cfg.hw_write(pos, count, val)
    return count


def vfio_raw_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    return cfg.hw_read(pos, count)


def vfio_virt_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    cfg.set_v(pos, count, val)
    return count


def vfio_virt_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    return cfg.v(pos, count)


# -- the standard header -------------------------------------------------------------------------

def is_bar(offset: int) -> bool:
    return PCI_BASE_ADDRESS_0 <= offset < PCI_BASE_ADDRESS_5 + 4 or PCI_ROM_ADDRESS <= offset < PCI_ROM_ADDRESS + 4


def vfio_pci_memory_enabled(cfg: VfioPciConfig) -> bool:
    """BAR access is allowed while the *virtual* MEMORY bit is set and the device is not in D3."""
    return cfg.core.power_state < 3 and bool(cfg.v(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)


def vfio_bar_restore(cfg: VfioPciConfig) -> None:
    """Put the real BAR addresses back after a reset the kernel did not see (a "backdoor" reset)."""
    for i in range(6):
        cfg.hw_write(PCI_BASE_ADDRESS_0 + 4 * i, 4, cfg.rbar[i])
    cfg.hw_write(PCI_ROM_ADDRESS, 4, cfg.rbar[6])


def vfio_generate_bar_flags(cfg: VfioPciConfig, bar: int) -> int:
    b = cfg.core.pci.bars[bar]
    return b.type_bits if b is not None else 0


def vfio_bar_fixup(cfg: VfioPciConfig) -> None:
    """Make the virtual BARs behave like hardware ones: keep only address bits of the size, add type bits."""
    if not cfg.bardirty:
        return
    pci = cfg.core.pci
    i = 0
    while i < 6:
        pos = PCI_BASE_ADDRESS_0 + 4 * i
        b = pci.bars[i]
        if b is None or not b.address:
            cfg.set_v(pos, 4, 0)  # unmapped by the host = unimplemented for the user
            i += 1
            continue
        mask = ~(b.size - 1) & ((1 << 64) - 1)
        vbar = (cfg.v(pos, 4) & mask & 0xFFFFFFFF) | vfio_generate_bar_flags(cfg, i)
        cfg.set_v(pos, 4, vbar)
        if vbar & PCI_BASE_ADDRESS_MEM_TYPE_64:
            cfg.set_v(pos + 4, 4, cfg.v(pos + 4, 4) & (mask >> 32))
            i += 1
        i += 1
    if pci.rom_size and pci.rom_address:
        mask = (~(pci.rom_size - 1) | PCI_ROM_ADDRESS_ENABLE) & 0xFFFFFFFF
        cfg.set_v(PCI_ROM_ADDRESS, 4, cfg.v(PCI_ROM_ADDRESS, 4) & mask)
    else:
        cfg.set_v(PCI_ROM_ADDRESS, 4, 0)
    cfg.bardirty = False


def vfio_basic_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    if is_bar(offset):
        vfio_bar_fixup(cfg)
    return vfio_default_config_read(cfg, pos, count, perm, offset)


def vfio_need_bar_restore(cfg: VfioPciConfig) -> bool:
    for i in range(6):
        if cfg.rbar[i] and cfg.hw_read(PCI_BASE_ADDRESS_0 + 4 * i, 4) != cfg.rbar[i]:
            return True
    return False


def vfio_basic_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int,
                            val: int) -> int:
    from .vfio_pci_intrs import vfio_pci_intx_mask, vfio_pci_intx_unmask

    core = cfg.core
    new_cmd = 0
    if offset == PCI_COMMAND:
        phys_cmd = cfg.hw_read(PCI_COMMAND, 2)
        virt_cmd = cfg.v(PCI_COMMAND, 2)
        new_cmd = val
        phys_mem, virt_mem, new_mem = (bool(c & PCI_COMMAND_MEMORY) for c in (phys_cmd, virt_cmd, new_cmd))
        phys_io, virt_io, new_io = (bool(c & PCI_COMMAND_IO) for c in (phys_cmd, virt_cmd, new_cmd))
        # Enabling decode the kernel believes on while the device shows it off: a reset it did not see.
        if (new_mem and virt_mem and not phys_mem) or (new_io and virt_io and not phys_io) \
                or vfio_need_bar_restore(cfg):
            vfio_bar_restore(cfg)
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    if offset == PCI_COMMAND:
        mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO
        cfg.set_v(PCI_COMMAND, 2, (cfg.v(PCI_COMMAND, 2) & ~mask) | (new_cmd & mask))
    if PCI_COMMAND <= offset <= PCI_COMMAND + 1:
        virt_intx_disable = bool(cfg.v(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE)
        if virt_intx_disable and not core.virq_disabled:
            core.virq_disabled = True
            vfio_pci_intx_mask(core)
        elif not virt_intx_disable and core.virq_disabled:
            core.virq_disabled = False
            vfio_pci_intx_unmask(core)
    if is_bar(offset):
        cfg.bardirty = True
    return count


def init_pci_cap_basic_perm() -> PermBits:
    perm = PermBits(PCI_STD_HEADER_SIZEOF, vfio_basic_config_read, vfio_basic_config_write)
    perm.p_setw(PCI_VENDOR_ID, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_DEVICE_ID, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, ALL_WRITE)
    perm.p_setw(PCI_STATUS, PCI_STATUS_CAP_LIST, NO_WRITE)
    perm.p_setb(PCI_CACHE_LINE_SIZE, NO_VIRT, ALL_WRITE)
    perm.p_setb(PCI_LATENCY_TIMER, NO_VIRT, ALL_WRITE)
    perm.p_setb(PCI_BIST, NO_VIRT, ALL_WRITE)
    for i in range(6):
        perm.p_setd(PCI_BASE_ADDRESS_0 + 4 * i, ALL_VIRT, ALL_WRITE)
    perm.p_setd(PCI_ROM_ADDRESS, ALL_VIRT, ALL_WRITE)
    perm.p_setb(PCI_CAPABILITY_LIST, ALL_VIRT, NO_WRITE)
    perm.p_setb(PCI_INTERRUPT_LINE, ALL_VIRT, ALL_WRITE)
    perm.p_setb(PCI_INTERRUPT_PIN, ALL_VIRT, NO_WRITE)
    return perm


# -- power management ----------------------------------------------------------------------------

def vfio_pm_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    """The power-state field is read-only to the user, but a write to PM_CTRL asks the kernel to move."""
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    if offset == PCI_PM_CTRL:
        cfg.core.vfio_pci_set_power_state(val & PCI_PM_CTRL_STATE_MASK)
    return count


def init_pci_cap_pm_perm() -> PermBits:
    perm = PermBits(PCI_PM_SIZEOF, vfio_default_config_read, vfio_pm_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_PM_PMC, PCI_PM_CAP_PME_MASK, NO_WRITE)  # the user cannot take PME
    both = PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS
    perm.p_setd(PCI_PM_CTRL, both, ~(both | PCI_PM_CTRL_STATE_MASK))
    return perm


# -- VPD and PCI-X --------------------------------------------------------------------------------

def vfio_vpd_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    """ADDR and DATA are shadows; a write reaching ADDR's flag byte runs the VPD cycle through the host.

    Flag set = write DATA at ADDR, clear = read ADDR into DATA (4 bytes either way); on success the flag
    is toggled in the shadow to say "done", on failure it is left as written (the user's driver times out).
    """
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    if offset > PCI_VPD_ADDR + 1 or offset + count <= PCI_VPD_ADDR + 1:
        return count
    start = pos - offset
    addr = cfg.v(start + PCI_VPD_ADDR, 2)
    if addr & PCI_VPD_ADDR_F:
        if not cfg.core.pci_write_vpd(addr & ~PCI_VPD_ADDR_F, cfg.v(start + PCI_VPD_DATA, 4)):
            return count
    else:
        data = cfg.core.pci_read_vpd(addr)
        if data is None:
            return count
        cfg.set_v(start + PCI_VPD_DATA, 4, data)
    cfg.set_v(start + PCI_VPD_ADDR, 2, addr ^ PCI_VPD_ADDR_F)
    return count


def init_pci_cap_vpd_perm() -> PermBits:
    perm = PermBits(pci_cap_length[PCI_CAP_ID_VPD], vfio_default_config_read, vfio_vpd_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_VPD_ADDR, ALL_VIRT, ALL_WRITE)
    perm.p_setd(PCI_VPD_DATA, ALL_VIRT, ALL_WRITE)
    return perm


def init_pci_cap_pcix_perm() -> PermBits:
    """Sized for mode 2; a mode-1 capability (8 bytes) only ever uses the front of it."""
    perm = PermBits(PCI_CAP_PCIX_SIZEOF_V1, vfio_default_config_read, vfio_default_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_X_CMD, NO_VIRT, ALL_WRITE)
    perm.p_setd(PCI_X_ECC_CSR, NO_VIRT, ALL_WRITE)
    return perm


# -- PCI Express ----------------------------------------------------------------------------------

def vfio_exp_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    """FLR is virtual (writing it resets the function if DEVCAP says FLR); MRRS goes down to no less than MPS."""
    start = pos - offset
    readrq = cfg.v(start + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_READRQ
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    ctrl = cfg.v(start + PCI_EXP_DEVCTL, 2)
    if ctrl & PCI_EXP_DEVCTL_BCR_FLR:
        cfg.set_v(start + PCI_EXP_DEVCTL, 2, ctrl & ~PCI_EXP_DEVCTL_BCR_FLR)
        if cfg.hw_read(start + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR:
            cfg.core.pci_try_reset_function()
    ctrl = cfg.v(start + PCI_EXP_DEVCTL, 2)
    if readrq != ctrl & PCI_EXP_DEVCTL_READRQ:
        mps = (cfg.hw_read(start + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_PAYLOAD) >> 5
        rq = max((ctrl & PCI_EXP_DEVCTL_READRQ) >> 12, mps)
        phys = cfg.hw_read(start + PCI_EXP_DEVCTL, 2)
        cfg.hw_write(start + PCI_EXP_DEVCTL, 2, (phys & ~PCI_EXP_DEVCTL_READRQ) | (rq << 12))
    return count


def init_pci_cap_exp_perm() -> PermBits:
    perm = PermBits(0x3C, vfio_default_config_read, vfio_exp_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setw(PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ,
                ~PCI_EXP_DEVCTL_PHANTOM)
    perm.p_setw(PCI_EXP_DEVCTL2, NO_VIRT, ~PCI_EXP_DEVCTL2_ARI)
    return perm


def vfio_af_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    start = pos - offset
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    ctrl = cfg.v(start + PCI_AF_CTRL, 1)
    if ctrl & PCI_AF_CTRL_FLR:
        cfg.set_v(start + PCI_AF_CTRL, 1, ctrl & ~PCI_AF_CTRL_FLR)
        cap = cfg.hw_read(start + PCI_AF_CAP, 1)
        if cap & PCI_AF_CAP_FLR and cap & PCI_AF_CAP_TP:
            cfg.core.pci_try_reset_function()
    return count


def init_pci_cap_af_perm() -> PermBits:
    perm = PermBits(6, vfio_default_config_read, vfio_af_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setb(PCI_AF_CTRL, PCI_AF_CTRL_FLR, PCI_AF_CTRL_FLR)
    return perm


# -- MSI (per device: its layout depends on the flags) ---------------------------------------------

def _find_cap_start(cfg: VfioPciConfig, pos: int) -> int:
    """``vfio_find_cap_start``: the first byte of the capability owning ``pos``."""
    cap = cfg.map[pos]
    if cap == PCI_CAP_ID_BASIC and pos < PCI_STD_HEADER_SIZEOF:
        return 0
    base = PCI_CFG_SPACE_SIZE if pos >= PCI_CFG_SPACE_SIZE else PCI_STD_HEADER_SIZEOF
    while pos - 1 >= base and cfg.map[pos - 1] == cap:
        pos -= 1
    return pos


def vfio_msi_config_read(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int) -> int:
    """MSI reads are the default merge; the flags the user sees hold the function's own Multiple Message Capable.

    The kernel means to refresh Multiple Message Capable from ``msi_qmax`` here, but its pointer is the
    capability's first 16 bits (ID and NEXT) rather than the flags word: the update lands in the ID byte's
    shadow, which the MSI permissions never virtualize (ID reads come from the device) and the QMASK bits
    miss NEXT.  So what the user reads is the hardware's MMC, copied into vconfig at open -- a 4-vector
    function reads as 4-capable before and after any ``SET_IRQS``.  The model does the same write, to the
    same place, so the shadow bytes match the kernel's too.
    """
    if offset <= PCI_MSI_FLAGS and offset + count >= PCI_MSI_FLAGS:
        start = _find_cap_start(cfg, pos)
        word = cfg.v(start, 2) & ~PCI_MSI_FLAGS_QMASK
        cfg.set_v(start, 2, word | (cfg.core.msi_qmax << 1))
    return vfio_default_config_read(cfg, pos, count, perm, offset)


def vfio_msi_config_write(cfg: VfioPciConfig, pos: int, count: int, perm: PermBits, offset: int, val: int) -> int:
    """Flags go to vconfig; ENABLE survives only if MSI is the active type; QSIZE is clamped; both reach the device."""
    count = vfio_default_config_write(cfg, pos, count, perm, offset, val)
    if offset <= PCI_MSI_FLAGS and offset + count >= PCI_MSI_FLAGS:
        start = _find_cap_start(cfg, pos)
        flags = cfg.v(start + PCI_MSI_FLAGS, 2)
        if cfg.core.irq_type != uv.VFIO_PCI_MSI_IRQ_INDEX:
            flags &= ~PCI_MSI_FLAGS_ENABLE
        if (flags & PCI_MSI_FLAGS_QSIZE) >> 4 > cfg.core.msi_qmax:
            flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (cfg.core.msi_qmax << 4)
        cfg.set_v(start + PCI_MSI_FLAGS, 2, flags)
        cfg.hw_write(start + PCI_MSI_FLAGS, 2, flags)
    return count


def init_pci_cap_msi_perm(length: int, flags: int) -> PermBits:
    perm = PermBits(length, vfio_msi_config_read, vfio_msi_config_write)
    perm.p_setb(PCI_CAP_LIST_NEXT, ALL_VIRT, NO_WRITE)
    perm.p_setb(PCI_MSI_FLAGS, ALL_VIRT, ALL_WRITE)  # the upper flags byte is reserved
    perm.p_setd(PCI_MSI_ADDRESS_LO, ALL_VIRT, ALL_WRITE)
    if flags & PCI_MSI_FLAGS_64BIT:
        perm.p_setd(PCI_MSI_ADDRESS_HI, ALL_VIRT, ALL_WRITE)
        perm.p_setw(PCI_MSI_DATA_64, ALL_VIRT, ALL_WRITE)
        if flags & PCI_MSI_FLAGS_MASKBIT:
            perm.p_setd(PCI_MSI_MASK_64, NO_VIRT, ALL_WRITE)
            perm.p_setd(PCI_MSI_PENDING_64, NO_VIRT, ALL_WRITE)
    else:
        perm.p_setw(PCI_MSI_DATA_32, ALL_VIRT, ALL_WRITE)
        if flags & PCI_MSI_FLAGS_MASKBIT:
            perm.p_setd(PCI_MSI_MASK_32, NO_VIRT, ALL_WRITE)
            perm.p_setd(PCI_MSI_PENDING_32, NO_VIRT, ALL_WRITE)
    return perm


# -- extended capabilities -----------------------------------------------------------------------

PCI_ERR_UNC_WRITABLE = (0x1 | 0x10 | 0x20 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000
                        | 0x80000 | 0x100000 | 0x200000 | 0x400000 | 0x800000 | 0x1000000 | 0x2000000)
PCI_ERR_COR_WRITABLE = 0x1 | 0x40 | 0x80 | 0x100 | 0x1000 | 0x2000 | 0x4000 | 0x8000
PCI_ERR_CAP_WRITABLE = 0x40 | 0x100  # ECRC generation and check enable


def init_pci_ext_cap_err_perm() -> PermBits:
    perm = PermBits(PCI_ERR_ROOT_COMMAND, vfio_default_config_read, vfio_default_config_write)
    perm.p_setd(0, ALL_VIRT, NO_WRITE)  # the header holds NEXT: virtual so caps can be unlinked
    for reg in (PCI_ERR_UNCOR_STATUS, PCI_ERR_UNCOR_MASK, PCI_ERR_UNCOR_SEVER):
        perm.p_setd(reg, NO_VIRT, PCI_ERR_UNC_WRITABLE)
    for reg in (PCI_ERR_COR_STATUS, PCI_ERR_COR_MASK):
        perm.p_setd(reg, NO_VIRT, PCI_ERR_COR_WRITABLE)
    perm.p_setd(PCI_ERR_CAP, NO_VIRT, PCI_ERR_CAP_WRITABLE)
    return perm


def init_pci_ext_cap_pwr_perm() -> PermBits:
    perm = PermBits(16, vfio_default_config_read, vfio_default_config_write)
    perm.p_setd(0, ALL_VIRT, NO_WRITE)
    perm.p_setb(PCI_PWR_DATA, NO_VIRT, ALL_WRITE)
    return perm


# -- the shared tables (vfio_pci_init_perm_bits) ---------------------------------------------------

direct_ro_perms = PermBits(0, vfio_direct_config_read, None)
unassigned_perms = PermBits(0, vfio_raw_config_read, vfio_raw_config_write)
virt_perms = PermBits(0, vfio_virt_config_read, vfio_virt_config_write)

cap_perms: dict[int, PermBits] = {i: PermBits(0, vfio_direct_config_read, None) for i in range(PCI_CAP_ID_MAX + 1)}
ecap_perms: dict[int, PermBits] = {i: PermBits(0, vfio_direct_config_read, None)
                                   for i in range(PCI_EXT_CAP_ID_MAX + 1)}


def vfio_pci_init_perm_bits() -> None:
    """Build the permission tables shared by every device (at module load, as the kernel's module init)."""
    cap_perms[PCI_CAP_ID_BASIC] = init_pci_cap_basic_perm()
    cap_perms[PCI_CAP_ID_PM] = init_pci_cap_pm_perm()
    cap_perms[PCI_CAP_ID_VPD] = init_pci_cap_vpd_perm()
    cap_perms[PCI_CAP_ID_PCIX] = init_pci_cap_pcix_perm()
    cap_perms[PCI_CAP_ID_VNDR] = PermBits(0, vfio_direct_config_read, vfio_raw_config_write)
    cap_perms[PCI_CAP_ID_EXP] = init_pci_cap_exp_perm()
    cap_perms[PCI_CAP_ID_AF] = init_pci_cap_af_perm()
    ecap_perms[PCI_EXT_CAP_ID_ERR] = init_pci_ext_cap_err_perm()
    ecap_perms[PCI_EXT_CAP_ID_PWR] = init_pci_ext_cap_pwr_perm()
    ecap_perms[PCI_EXT_CAP_ID_VNDR] = PermBits(0, vfio_direct_config_read, vfio_raw_config_write)
    ecap_perms[PCI_EXT_CAP_ID_DVSEC] = PermBits(0, vfio_direct_config_read, vfio_raw_config_write)


vfio_pci_init_perm_bits()


# -- building the map at open (vfio_config_init) ---------------------------------------------------

def vfio_msi_cap_len(cfg: VfioPciConfig, pos: int) -> int:
    flags = cfg.hw_read(pos + PCI_MSI_FLAGS, 2)
    length = msi_cap_size(flags)
    if cfg.msi_perm is None:
        cfg.msi_perm = init_pci_cap_msi_perm(length, flags)
    return length


def vfio_cap_len(cfg: VfioPciConfig, cap: int, pos: int) -> int:
    """Length of a variable-size capability read from the device; 0 hides it."""
    if cap == PCI_CAP_ID_MSI:
        return vfio_msi_cap_len(cfg, pos)
    if cap == PCI_CAP_ID_PCIX:
        if not PCI_X_CMD_VERSION(cfg.hw_read(pos + PCI_X_CMD, 2)):
            return PCI_CAP_PCIX_SIZEOF_V0
        # PCI-X mode 2 functions have extended config space, as PCIe ones do
        if cfg.cfg_size > PCI_CFG_SPACE_SIZE:
            cfg.extended_caps = cfg.hw_read(PCI_CFG_SPACE_SIZE, 4) != 0
        return PCI_CAP_PCIX_SIZEOF_V1
    if cap == PCI_CAP_ID_VNDR:
        return cfg.hw_read(pos + 2, 1)  # the length byte follows NEXT
    if cap == PCI_CAP_ID_EXP:
        if cfg.cfg_size > PCI_CFG_SPACE_SIZE:
            cfg.extended_caps = cfg.hw_read(PCI_CFG_SPACE_SIZE, 4) != 0
        flags = cfg.hw_read(pos + PCI_EXP_FLAGS, 2)
        rc_end = (flags & PCI_EXP_FLAGS_TYPE) >> 4 == PCI_EXP_TYPE_RC_END
        if flags & PCI_EXP_FLAGS_VERS == 1:
            return 0xC if rc_end else 0x14
        return 0x2C if rc_end else 0x3C
    if cap == PCI_CAP_ID_HT:
        return 24 if cfg.hw_read(pos + 3, 1) & 0xE0 else 28
    if cap == PCI_CAP_ID_SATA:
        regs = cfg.hw_read(pos + PCI_SATA_REGS, 1) & PCI_SATA_REGS_MASK  # the byte after SATA_CR0
        return PCI_SATA_SIZEOF_LONG if regs == PCI_SATA_REGS_INLINE else PCI_SATA_SIZEOF_SHORT
    return 0


def vfio_vc_cap_len(cfg: VfioPciConfig, epos: int) -> int:
    """VC, VC9 and MFVC: the base, one resource block per VC, and the VC arbitration table if any.

    The table is counted from the phases the port advertises (4 bits per phase, starting on a 16-byte
    boundary); port and function arbitration tables are never writable, so their size does not matter.
    """
    evcc = cfg.hw_read(epos + PCI_VC_PORT_CAP1, 4) & PCI_VC_CAP1_EVCC
    cap2 = cfg.hw_read(epos + PCI_VC_PORT_CAP2, 4)
    phases = (128 if cap2 & PCI_VC_CAP2_128_PHASE else 64 if cap2 & PCI_VC_CAP2_64_PHASE
              else 32 if cap2 & PCI_VC_CAP2_32_PHASE else 0)
    length = PCI_CAP_VC_BASE_SIZEOF + (1 + evcc) * PCI_CAP_VC_PER_VC_SIZEOF
    if phases:
        length = (length + 15) // 16 * 16 + phases * 4 // 8
    return length


def vfio_ext_cap_len(cfg: VfioPciConfig, ecap: int, epos: int) -> int:
    if ecap == PCI_EXT_CAP_ID_VNDR:
        return cfg.hw_read(epos + PCI_VNDR_HEADER, 4) >> 20
    if ecap == PCI_EXT_CAP_ID_DVSEC:
        return cfg.hw_read(epos + PCI_DVSEC_HEADER1, 4) >> 20
    if ecap in (PCI_EXT_CAP_ID_VC, PCI_EXT_CAP_ID_VC9, PCI_EXT_CAP_ID_MFVC):
        return vfio_vc_cap_len(cfg, epos)
    if ecap == PCI_EXT_CAP_ID_ACS:
        if not cfg.hw_read(epos + PCI_ACS_CAP, 1) & PCI_ACS_EC:
            return 8
        # the egress control vector follows: one bit per function, in whole dwords (0 means 256)
        bits = cfg.hw_read(epos + PCI_ACS_EGRESS_BITS, 1)
        bits = (bits + 31) // 32 * 32 if bits else 256
        return 8 + bits // 8
    if ecap == PCI_EXT_CAP_ID_REBAR:
        nbar = (cfg.hw_read(epos + 8, 1) & 0xE0) >> 5
        return 4 + nbar * 8
    if ecap == PCI_EXT_CAP_ID_DPA:
        return 16 + (cfg.hw_read(epos + 4, 1) & 0x1F) + 1
    if ecap == PCI_EXT_CAP_ID_TPH:
        cap = cfg.hw_read(epos + PCI_TPH_CAP, 4)
        if cap & PCI_TPH_CAP_LOC_MASK != PCI_TPH_LOC_CAP:
            return PCI_TPH_BASE_SIZEOF
        # the steering-tag table lives in the capability: one 16-bit entry per tag, ST_MASK+1 tags
        sts = (cap & PCI_TPH_CAP_ST_MASK) >> PCI_TPH_CAP_ST_SHIFT
        return PCI_TPH_BASE_SIZEOF + sts * 2 + 2
    return 0


def vfio_fill_vconfig_bytes(cfg: VfioPciConfig, offset: int, size: int) -> None:
    end = min(offset + size, cfg.cfg_size)
    cfg.vconfig[offset:end] = cfg.core.pci.config_read(offset, end - offset)


def vfio_cap_init(cfg: VfioPciConfig) -> None:
    """Walk the device's capability list: map each known cap, unlink hidden ones through vconfig NEXT bytes."""
    if not cfg.hw_read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
        return
    pos = cfg.hw_read(PCI_CAPABILITY_LIST, 1)
    prev = PCI_CAPABILITY_LIST
    loops = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) // PCI_CAP_SIZEOF
    caps = 0
    while pos and loops > 0:
        loops -= 1
        cap = cfg.hw_read(pos, 1)
        nxt = cfg.hw_read(pos + PCI_CAP_LIST_NEXT, 1)
        length = 0
        if cap and cap <= PCI_CAP_ID_MAX:
            length = pci_cap_length.get(cap, 0)
            if length == 0xFF:
                length = vfio_cap_len(cfg, cap, pos)
        if not length:
            cfg.vconfig[prev] = nxt  # hidden: the previous NEXT skips it
            pos = nxt
            continue
        length = min(length, PCI_CFG_SPACE_SIZE - pos)
        cfg.map[pos: pos + length] = bytes([cap]) * length
        vfio_fill_vconfig_bytes(cfg, pos, length)
        if cap == PCI_CAP_ID_PM:
            pmc = cfg.v(pos + PCI_PM_PMC, 2) & ~PCI_PM_CAP_PME_MASK
            cfg.set_v(pos + PCI_PM_PMC, 2, pmc)
            ctrl = cfg.v(pos + PCI_PM_CTRL, 2) & ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS)
            cfg.set_v(pos + PCI_PM_CTRL, 2, ctrl)
        prev = pos + PCI_CAP_LIST_NEXT
        pos = nxt
        caps += 1
    if not caps:
        cfg.set_v(PCI_STATUS, 2, cfg.v(PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST)


def vfio_ecap_init(cfg: VfioPciConfig) -> None:
    """Walk the extended list; a hidden first ecap keeps only its NEXT (ID 0, version 0) as an anchor."""
    if not cfg.extended_caps:
        return
    epos = PCI_CFG_SPACE_SIZE
    prev: Optional[int] = None
    loops = (cfg.cfg_size - PCI_CFG_SPACE_SIZE) // PCI_CAP_SIZEOF
    ecaps = 0
    while loops > 0 and epos >= PCI_CFG_SPACE_SIZE:
        loops -= 1
        header = cfg.hw_read(epos, 4)
        ecap = PCI_EXT_CAP_ID(header)
        length = 0
        hidden = False
        if ecap <= PCI_EXT_CAP_ID_MAX:
            length = pci_ext_cap_length.get(ecap, 0)
            if length == 0xFF:
                length = vfio_ext_cap_len(cfg, ecap, epos)
        if not length:
            if prev is not None:
                epos = PCI_EXT_CAP_NEXT(header)
                cfg.set_v(prev, 4, (cfg.v(prev, 4) & ~(0xFFC << 20)) | (epos << 20))
                continue
            length = PCI_CAP_SIZEOF
            hidden = True
        length = min(length, cfg.cfg_size - epos)
        cfg.map[epos: epos + length] = bytes([min(ecap, 0xFD)]) * length
        vfio_fill_vconfig_bytes(cfg, epos, length)
        if hidden:
            cfg.set_v(epos, 4, cfg.v(epos, 4) & (0xFFC << 20))
        else:
            ecaps += 1
        prev = epos
        epos = PCI_EXT_CAP_NEXT(header)
    if not ecaps:
        cfg.set_v(PCI_CFG_SPACE_SIZE, 4, 0)


def vfio_config_init(core: "VfioPciCoreDevice") -> VfioPciConfig:
    """Build vconfig and the capability map from the device, at open."""
    cfg = VfioPciConfig(core)
    vfio_fill_vconfig_bytes(cfg, 0, PCI_STD_HEADER_SIZEOF)
    cfg.bardirty = True
    cfg.rbar = [cfg.v(PCI_BASE_ADDRESS_0 + 4 * i, 4) for i in range(6)] + [cfg.v(PCI_ROM_ADDRESS, 4)]
    if core.nointx or not core.pci.irq_pin:
        cfg.vconfig[PCI_INTERRUPT_PIN] = 0
    vfio_cap_init(cfg)
    vfio_ecap_init(cfg)
    return cfg


# -- the region accessor ---------------------------------------------------------------------------

def vfio_pci_cap_remaining_dword(cfg: VfioPciConfig, pos: int) -> int:
    cap = cfg.map[pos]
    i = 1
    while (pos + i) % 4 and pos + i < cfg.cfg_size and cfg.map[pos + i] == cap:
        i += 1
    return i


def _perm_for(cfg: VfioPciConfig, pos: int) -> tuple[PermBits, int]:
    cap_id = cfg.map[pos]
    if cap_id == PCI_CAP_ID_INVALID:
        return unassigned_perms, pos
    if cap_id == PCI_CAP_ID_INVALID_VIRT:
        return virt_perms, pos
    if pos >= PCI_CFG_SPACE_SIZE:
        perm = ecap_perms.get(cap_id, direct_ro_perms)
        return perm, _find_cap_start(cfg, pos)
    if cap_id == PCI_CAP_ID_MSI and cfg.msi_perm is not None:
        return cfg.msi_perm, _find_cap_start(cfg, pos)
    perm = cap_perms.get(cap_id, direct_ro_perms)
    return perm, (_find_cap_start(cfg, pos) if cap_id != PCI_CAP_ID_BASIC else 0)


def vfio_config_do_rw(cfg: VfioPciConfig, pos: int, count: int, data: Optional[bytes],
                      out: Optional[bytearray]) -> int:
    """One aligned chunk within one capability; returns its length."""
    if pos < 0 or pos >= cfg.cfg_size or pos + count > cfg.cfg_size:
        raise KernelError(EFAULT, f"config access {pos:#x}+{count} outside the {cfg.cfg_size}-byte config space")
    count = min(count, vfio_pci_cap_remaining_dword(cfg, pos))
    if count >= 4 and not pos % 4:
        count = 4
    elif count >= 2 and not pos % 2:
        count = 2
    else:
        count = 1
    perm, cap_start = _perm_for(cfg, pos)
    offset = pos - cap_start
    if data is not None:
        if perm.writefn is not None:
            perm.writefn(cfg, pos, count, perm, offset, int.from_bytes(data[:count], "little"))
    else:
        assert out is not None
        val = perm.readfn(cfg, pos, count, perm, offset) if perm.readfn is not None else 0
        out += val.to_bytes(count, "little")
    return count


def vfio_pci_config_rw(cfg: VfioPciConfig, pos: int, count: int, data: Optional[bytes] = None) -> bytes | int:
    """Region 7: read ``count`` bytes (returns them) or write ``data`` (returns the count) at ``pos``."""
    done = 0
    out = bytearray()
    while count:
        n = vfio_config_do_rw(cfg, pos, count, data[done:] if data is not None else None, out)
        count -= n
        done += n
        pos += n
    return done if data is not None else bytes(out)


__all__ = ["VfioPciConfig", "vfio_config_init", "vfio_pci_config_rw", "vfio_pci_memory_enabled",
           "PermBits", "cap_perms", "ecap_perms"]
