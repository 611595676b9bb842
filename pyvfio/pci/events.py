"""What the virtual config space tells the rest of a VMM when a guest's write changes something.

A guest programs interrupts and address decoding through config writes; the config emulation only
keeps the registers, and the layers that act on them (the interrupt layer wiring eventfds and KVM
routes, the memory layer placing BAR mappings) subscribe to these events -- the role QEMU gives to
``vfio_msi_enable``/``vfio_msix_enable``, the MSI-X vector notifiers and ``pci_update_mappings``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class MsiMessage:
    """One MSI/MSI-X message: the write a function performs to signal a vector."""

    address: int
    data: int


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
