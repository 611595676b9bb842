"""The MSI capability as a VMM emulates it for its guest (QEMU ``hw/pci/msi.c`` plus the vfio hooks).

The guest sees a complete MSI capability whose every byte is emulated: the kernel's own view (where
writing ENABLE does nothing and ``Multiple Message Capable`` reflects the last allocation) is never
shown.  The VMM keeps the guest's address, data, per-vector mask and pending bits, and turns the
guest's ENABLE transitions into ``VFIO_DEVICE_SET_IRQS`` calls -- here, into ``msi-enable`` /
``msi-disable`` / ``msi-update`` events for the interrupt layer.

Layout (offsets from the capability): flags at +2 (``ENABLE``, ``QMASK`` = log2 of vectors the function
supports, ``QSIZE`` = log2 of vectors the guest enabled, ``64BIT``, ``MASKBIT``), address low at +4,
then either data at +8 (32-bit) or address high at +8 and data at +12 (64-bit), then mask and pending
(32 bits each) when per-vector masking is supported: 10, 14, 20 or 24 bytes in all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..uapi import pci_regs as R
from .events import ConfigEvent, MsiMessage

if TYPE_CHECKING:
    from .config import VirtualConfig

#: The most vectors MSI can carry (QMASK is 3 bits but only 0-5 are defined).
MSI_VECTORS_MAX = 32


def msi_cap_size(flags: int) -> int:
    """Bytes the capability occupies for these flags (QEMU's ``msi_cap_sizeof``, the kernel's ``vfio_msi_cap_len``)."""
    size = 10
    if flags & R.PCI_MSI_FLAGS_64BIT:
        size += 4
    if flags & R.PCI_MSI_FLAGS_MASKBIT:
        size += 10
    return size


class MsiCapability:
    """The emulated MSI capability at ``offset`` of a :class:`~pyvfio.pci.config.VirtualConfig`."""

    def __init__(self, vc: "VirtualConfig", offset: int, device_flags: int) -> None:
        self.vc = vc
        self.offset = offset
        self.is_64 = bool(device_flags & R.PCI_MSI_FLAGS_64BIT)
        self.maskable = bool(device_flags & R.PCI_MSI_FLAGS_MASKBIT)
        order = min((device_flags & R.PCI_MSI_FLAGS_QMASK) >> 1, 5)
        self.max_vectors = 1 << order
        self.size = msi_cap_size(device_flags)
        self.data_off = offset + (R.PCI_MSI_DATA_64 if self.is_64 else R.PCI_MSI_DATA_32)
        self.mask_off = offset + (R.PCI_MSI_MASK_64 if self.is_64 else R.PCI_MSI_MASK_32)
        self.pending_off = offset + (R.PCI_MSI_PENDING_64 if self.is_64 else R.PCI_MSI_PENDING_32)
        self._setup(order)

    def _setup(self, order: int) -> None:
        """``msi_init``: fresh flags, every byte emulated, write masks for what a guest may change."""
        vc, off = self.vc, self.offset
        flags = (order << 1) | (R.PCI_MSI_FLAGS_64BIT if self.is_64 else 0) \
            | (R.PCI_MSI_FLAGS_MASKBIT if self.maskable else 0)
        vc.set_int(off + R.PCI_MSI_FLAGS, 2, flags)
        vc.mark_emulated(off, self.size)
        vc.set_wmask(off + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_QSIZE | R.PCI_MSI_FLAGS_ENABLE)
        vc.set_wmask(off + R.PCI_MSI_ADDRESS_LO, 4, 0xFFFFFFFC)  # the low two address bits are reserved
        if self.is_64:
            vc.set_wmask(off + R.PCI_MSI_ADDRESS_HI, 4, 0xFFFFFFFF)
        vc.set_wmask(self.data_off, 2, 0xFFFF)
        if self.maskable:
            vc.set_wmask(self.mask_off, 4, (1 << self.max_vectors) - 1)
            # pending bits are the device's to set: read-only to the guest

    # -- registers -------------------------------------------------------------------------------
    @property
    def flags(self) -> int:
        return self.vc.get_int(self.offset + R.PCI_MSI_FLAGS, 2)

    @property
    def enabled(self) -> bool:
        return bool(self.flags & R.PCI_MSI_FLAGS_ENABLE)

    @property
    def vectors(self) -> int:
        """Vectors the guest enabled (``1 << QSIZE``; QEMU's ``msi_nr_vectors_allocated``)."""
        return 1 << ((self.flags & R.PCI_MSI_FLAGS_QSIZE) >> 4)

    @property
    def address(self) -> int:
        lo = self.vc.get_int(self.offset + R.PCI_MSI_ADDRESS_LO, 4)
        hi = self.vc.get_int(self.offset + R.PCI_MSI_ADDRESS_HI, 4) if self.is_64 else 0
        return (hi << 32) | lo

    @property
    def data(self) -> int:
        return self.vc.get_int(self.data_off, 2)

    @property
    def mask(self) -> int:
        return self.vc.get_int(self.mask_off, 4) if self.maskable else 0

    @property
    def pending(self) -> int:
        return self.vc.get_int(self.pending_off, 4) if self.maskable else 0

    def message(self, vector: int) -> MsiMessage:
        """The message vector ``vector`` sends: with several vectors the low data bits carry the vector number."""
        n = self.vectors
        if not 0 <= vector < n:
            raise ValueError(f"MSI vector {vector} is not enabled (the guest enabled {n})")
        data = self.data
        if n > 1:
            data = (data & ~(n - 1)) | vector
        return MsiMessage(self.address, data)

    def is_masked(self, vector: int) -> bool:
        return self.maskable and bool(self.mask >> vector & 1)

    def notify(self, vector: int) -> Optional[MsiMessage]:
        """The function raised ``vector``: the message to send, or None when masked (the pending bit is set).

        Raises ValueError while MSI is disabled or for a vector the guest did not enable.
        """
        if not self.enabled:
            raise ValueError("MSI is not enabled: the function cannot send MSI messages")
        msg = self.message(vector)
        if self.is_masked(vector):
            self.vc.set_int(self.pending_off, 4, self.pending | 1 << vector)
            return None
        return msg

    # -- the write hook --------------------------------------------------------------------------
    def after_write(self, offset: int, size: int, was_enabled: bool, old_mask: int, old_message: tuple[int, int],
                    events: list[ConfigEvent]) -> None:
        """Apply ``msi_write_config`` and the vfio transitions after the byte rule stored a write."""
        if not self.enabled:
            if was_enabled:
                events.append(ConfigEvent("msi-disable"))
            return
        flags = self.flags
        qsize = (flags & R.PCI_MSI_FLAGS_QSIZE) >> 4
        qmask = (flags & R.PCI_MSI_FLAGS_QMASK) >> 1
        if qsize > qmask:  # more vectors than the function has: not legal, clamped rather than trusted
            self.vc.set_int(self.offset + R.PCI_MSI_FLAGS, 2, (flags & ~R.PCI_MSI_FLAGS_QSIZE) | (qmask << 4))
        if not was_enabled:
            events.append(ConfigEvent("msi-enable", new=self.vectors))
        elif (self.address, self.data) != old_message:
            events.append(ConfigEvent("msi-update"))
        if not self.maskable:
            return
        valid = (1 << self.vectors) - 1
        mask = self.mask
        for v in range(self.vectors):
            if (old_mask ^ mask) >> v & 1:
                events.append(ConfigEvent("msi-mask", index=v, old=old_mask >> v & 1, new=mask >> v & 1))
        pending = self.pending & valid  # bits beyond the enabled vectors are discarded
        self.vc.set_int(self.pending_off, 4, pending)
        for v in range(self.vectors):
            if pending >> v & 1 and not mask >> v & 1:
                pending &= ~(1 << v)
                self.vc.set_int(self.pending_off, 4, pending)
                events.append(ConfigEvent("deliver", index=v, message=self.message(v)))

    def reset(self) -> None:
        """``msi_reset``: disabled, one vector, address/data/mask/pending cleared."""
        vc, off = self.vc, self.offset
        vc.set_int(off + R.PCI_MSI_FLAGS, 2, self.flags & ~(R.PCI_MSI_FLAGS_QSIZE | R.PCI_MSI_FLAGS_ENABLE))
        vc.set_int(off + R.PCI_MSI_ADDRESS_LO, 4, 0)
        if self.is_64:
            vc.set_int(off + R.PCI_MSI_ADDRESS_HI, 4, 0)
        vc.set_int(self.data_off, 2, 0)
        if self.maskable:
            vc.set_int(self.mask_off, 4, 0)
            vc.set_int(self.pending_off, 4, 0)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return (f"MsiCapability(at {self.offset:#x}, {state}, {self.vectors}/{self.max_vectors} vectors, "
                f"{'64' if self.is_64 else '32'}-bit{', maskable' if self.maskable else ''})")


__all__ = ["MSI_VECTORS_MAX", "MsiCapability", "msi_cap_size"]
