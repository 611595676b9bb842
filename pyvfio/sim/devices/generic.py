"""A configurable PCI function for exercising vfio-pci rules no single real device shows at once.

``add_device("pci", ...)`` builds a function whose BARs are plain memory
(what is written reads back) and whose capabilities are chosen by options:
64-bit/prefetchable/I/O/sub-page BARs, MSI with several vectors and per-vector
masking, MSI-X in a chosen BAR, PCIe with FLR and AER, PM with or without
NoSoftReset, a vendor capability, capabilities vfio-pci hides, an expansion
ROM.  Its BARs are ordinary memory and it never interrupts on its own (use
edu for device-initiated interrupts and DMA); what it offers is layouts.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ...uapi.pci_regs import (
    PCI_CAP_ID_SLOTID,
    PCI_EXP_TYPE_ENDPOINT,
    PCI_EXT_CAP_ID_PASID,
)
from ..pci_device import (
    HOST_RESOURCES,
    Bar,
    SimPciDevice,
)

GENERIC_VENDOR_ID = 0x1B36  # Red Hat, Inc. (QEMU's own devices)
GENERIC_DEVICE_ID = 0x0005  # "QEMU PCI test device"
GENERIC_CLASS = 0x00FF00


class GenericPciDevice(SimPciDevice):
    """Options (all optional):

    ``bars``: list of dicts ``{"index", "size", "kind": "mem32"|"mem64"|"io", "prefetch", "mmap",
    "page_offset"}`` (``page_offset`` places a sub-page BAR that far into a fresh page);
    ``msi``: vector count (0 = no MSI), ``msi_64bit``, ``msi_maskable``; ``msix``: vector count,
    ``msix_bar``, ``msix_table_offset``, ``msix_pba_offset``; ``express`` (PCIe cap, FLR per ``flr``,
    AER); ``pm`` (a PM cap; ``no_soft_reset``); ``vendor_cap`` (bytes); ``hidden_cap`` (a SLOTID cap
    vfio-pci unlinks); ``hidden_ecap_first`` (a PASID ecap at 0x100 that vfio-pci masks);
    ``rom_size``; ``irq_pin`` (1 = INTA, 0 = none); ``vpd`` (bytes: a VPD capability over them);
    ``caps`` (list of ``(cap_id, body)``: raw standard capabilities, body without ID/NEXT) and ``ecaps``
    (list of ``(cap_id, version, body)``: raw extended ones, after AER) for layouts no helper builds
    (PCI-X, SATA, ACS with egress control, TPH, VC...); ``extended_config`` gives a 4 KiB config space
    without the PCIe capability (a PCI-X mode 2 function).
    """

    kind = "pci"

    def __init__(self, *, bars: Optional[list[dict[str, Any]]] = None, msi: int = 0, msi_64bit: bool = True,
                 msi_maskable: bool = False, msix: int = 0, msix_bar: int = 0, msix_table_offset: int = 0x2000,
                 msix_pba_offset: Optional[int] = None, express: bool = False, flr: bool = True, pm: bool = False,
                 no_soft_reset: bool = True, vendor_cap: bytes = b"", hidden_cap: bool = False,
                 hidden_ecap_first: bool = False, rom_size: int = 0, irq_pin: int = 1, vpd: bytes = b"",
                 caps: Sequence[tuple[int, bytes]] = (), ecaps: Sequence[tuple[int, int, bytes]] = (),
                 extended_config: bool = False) -> None:
        super().__init__(GENERIC_VENDOR_ID, GENERIC_DEVICE_ID, GENERIC_CLASS, revision=1,
                         express=express or extended_config, irq_pin=irq_pin)
        if bars is None:
            bars = [{"index": 0, "size": 0x4000}]
        for spec in bars:
            bar = Bar(spec["size"], spec.get("kind", "mem32"), spec.get("prefetch", False), spec.get("mmap", True))
            page_offset = spec.get("page_offset")
            if page_offset is not None:
                base = HOST_RESOURCES.alloc(Bar(0x1000))
                self.set_bar(spec["index"], bar, address=base + page_offset)
            else:
                self.set_bar(spec["index"], bar)
        if rom_size:
            self.set_rom(rom_size, b"\x55\xaa" + b"generic")
        if pm:
            self.add_pm_cap(no_soft_reset=no_soft_reset)
        if hidden_cap:
            self.add_capability(PCI_CAP_ID_SLOTID, b"\x00\x00")
        if express:
            self.add_pcie_cap(port_type=PCI_EXP_TYPE_ENDPOINT, flr=flr)
        if msi:
            self.add_msi_cap(msi, is_64bit=msi_64bit, maskable=msi_maskable)
        if msix:
            self.add_msix_cap(msix, bar=msix_bar, table_offset=msix_table_offset, pba_offset=msix_pba_offset)
        if vendor_cap:
            self.add_vendor_cap(vendor_cap)
        if vpd:
            self.add_vpd_cap(vpd)
        for cap_id, body in caps:
            self.add_capability(cap_id, body)
        if express:
            if hidden_ecap_first:
                self.add_ext_capability(PCI_EXT_CAP_ID_PASID, 1, bytes(4))
            self.add_aer_ecap()
        for cap_id, version, body in ecaps:
            self.add_ext_capability(cap_id, version, body)
        self.finalize()
