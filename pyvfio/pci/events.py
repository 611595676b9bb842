"""What the virtual config space tells the rest of a VMM when a guest's write changes something.

A guest programs interrupts and address decoding through config writes; the config emulation only
keeps the registers, and the layers that act on them (the interrupt layer wiring eventfds and KVM
routes, the memory layer placing BAR mappings) subscribe to these events -- the role QEMU gives to
``vfio_msi_enable``/``vfio_msix_enable``, the MSI-X vector notifiers and ``pci_update_mappings``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional


# x86 MSI message format: address 0xFEE00000 | dest_id << 12 | dest_mode << 2; data: vector,
# delivery mode << 8, trigger mode << 15.
MSI_ADDR_BASE = 0xFEE00000
MSI_ADDR_DEST_ID_SHIFT = 12
MSI_ADDR_DEST_MODE_LOGICAL = 1 << 2


@dataclasses.dataclass(frozen=True)
class MsiMessage:
    """One MSI/MSI-X message: the write a function performs to signal a vector (64-bit address, 32-bit data).

    One type from the config space that holds it to the interrupt layer and the KVM route that deliver
    it.  :meth:`for_vector` builds the x86 form: fixed delivery of ``vector`` to APIC ``dest_id``
    (physical destination mode, edge-triggered).
    """

    address: int
    data: int

    @classmethod
    def for_vector(cls, vector: int, dest_id: int = 0, *, logical: bool = False) -> "MsiMessage":
        if not 16 <= vector <= 255:
            raise ValueError(f"MSI vector {vector} outside 16..255 (0-15 are reserved on x86)")
        if not 0 <= dest_id <= 255:
            raise ValueError(f"xAPIC destination id {dest_id} outside 0..255")
        address = MSI_ADDR_BASE | (dest_id << MSI_ADDR_DEST_ID_SHIFT)
        if logical:
            address |= MSI_ADDR_DEST_MODE_LOGICAL
        return cls(address, vector)

    @property
    def vector(self) -> int:
        return self.data & 0xFF

    @property
    def dest_id(self) -> int:
        return (self.address >> MSI_ADDR_DEST_ID_SHIFT) & 0xFF

    def __repr__(self) -> str:
        return f"MsiMessage(address={self.address:#x}, data={self.data:#x})"


@dataclasses.dataclass(frozen=True)
class ConfigEvent:
    """A change a config write (or a device interrupt) caused.

    ``kind`` is one of:

    - ``"bar-map"``: BAR ``index`` (6 = ROM) moved: ``old``/``new`` are guest addresses, None = unmapped;
    - ``"command"``: COMMAND changed from ``old`` to ``new`` (decode enables, bus master, INTx disable);
    - ``"intx-disable"``: the INTx disable bit became ``new`` (1 = disabled);
    - ``"msi-enable"`` (``new`` = vectors allocated), ``"msi-disable"``, ``"msi-update"`` (address or data
      rewritten while enabled: routes must be refreshed);
    - ``"msi-mask"``: vector ``index`` masked (``new`` = 1) or unmasked (0);
    - ``"msix-enable"`` (``new`` = table size), ``"msix-disable"``;
    - ``"msix-mask"``: vector ``index`` became masked (``new`` = 1) or unmasked (0), by its own mask bit or
      the function mask -- QEMU's vector use/release notifiers;
    - ``"deliver"``: a vector that was pending while masked is delivered on unmask: ``index`` and ``message``.
    """

    kind: str
    index: int = -1
    old: Optional[int] = None
    new: Optional[int] = None
    message: Optional[MsiMessage] = None


Listener = Callable[[ConfigEvent], None]

__all__ = ["ConfigEvent", "Listener", "MsiMessage"]
