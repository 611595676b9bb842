"""Layer 4: PCI config space -- walking it, decoding it, and emulating it for a guest.

- :mod:`.caps`: capability chains (standard and extended), walked defensively and named.
- :mod:`.bars`: BAR decoding, sizing (all-ones write, read back) and guest placement rules.
- :mod:`.config`: :class:`VirtualConfig`, the guest's view of an assigned device (QEMU ``hw/vfio/pci.c``
  over the kernel's ``vfio_pci_config.c``): emulated bits, write masks, W1C, BARs, COMMAND/STATUS.
- :mod:`.msi`, :mod:`.msix`: the interrupt capabilities, MSI-X table/PBA emulation and mmap windows.
- :mod:`.state`: save/restore of the guest-visible state (versioned, big-endian), for migration and CPR.
- :mod:`.lspci`: an ``lspci -vv``-style decoder (``python -m pyvfio lspci``).
- :mod:`.access`: config access over a raw vfio device fd.

Register names come from :mod:`pyvfio.uapi.pci_regs` (``linux/pci_regs.h``).
"""

from .access import VfioConfigRegion, open_group_device
from .bars import BarInfo, decode_bars, probe_bar, probe_bar_sizes
from .caps import (Capability, CapabilityChainError, extended_capabilities, find_capability, find_ext_capability,
                   standard_capabilities, walk)
from .config import VirtualBar, VirtualConfig
from .events import ConfigEvent, MsiMessage
from .msix import mmap_windows
from .state import StateError

__all__ = ["BarInfo", "Capability", "CapabilityChainError", "ConfigEvent", "MsiMessage", "StateError",
           "VfioConfigRegion", "VirtualBar", "VirtualConfig", "decode_bars", "extended_capabilities",
           "find_capability", "find_ext_capability", "mmap_windows", "open_group_device", "probe_bar",
           "probe_bar_sizes", "standard_capabilities", "walk"]
