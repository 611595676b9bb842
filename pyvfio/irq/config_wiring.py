"""Turning what a guest programs in config space into host interrupt setup (``VFIO_DEVICE_SET_IRQS``).

Why this exists: :class:`~pyvfio.pci.config.VirtualConfig` only keeps the guest's registers and
reports changes as :class:`~pyvfio.pci.events.ConfigEvent`\\ s, and the controllers of
:mod:`pyvfio.irq.vfio_irqs` only act when told to.  Something has to listen to the first and call the
second, or a guest that sets MSI Enable (or a migration destination that restores a config where
MSI-X was on) ends up with a host device whose interrupts go nowhere.  In QEMU that job is spread over
the vfio-pci config-write hook that notices the enable bits changing (its MSI/MSI-X enable and disable
paths) and the MSI-X vector use/release notifiers; :class:`ConfigInterruptWiring` is that job here.

What it does with each event:

- ``msi-enable`` / ``msi-update`` / ``msi-disable``: enable MSI with one message per vector the guest
  enabled (address/data from the emulated capability), refresh the messages, tear MSI down;
- ``msi-mask``: passed on only when the MSI controller has ``mask``/``unmask`` (the stock one does
  not: MSI masking through SET_IRQS is ``ENOTTY``; the mask bit stays in the emulated capability);
- ``msix-enable`` / ``msix-disable``: copy every entry's message and mask from the emulated table into
  the MSI-X controller, then enable (entries already unmasked are used at once) or disable;
- ``msix-mask``: unmask (the vector gets its eventfd; an interrupt the controller held pending is
  delivered) or mask;
- ``intx-disable``, and every MSI/MSI-X transition: INTx is kept enabled exactly while the guest
  allows it (COMMAND.INTX_DISABLE clear) and neither MSI nor MSI-X is on -- vfio-pci refuses MSI while
  INTx is wired, so INTx is released before MSI/MSI-X is enabled and given back when they go away.

``deliver`` events (pending bits the config emulation itself held) and BAR/COMMAND events are not
host-IRQ matters and are ignored.

Failures: SET_IRQS errors propagate as the controllers raise them (:class:`~pyvfio.errors.VfioError`
naming ``VFIO_DEVICE_SET_IRQS``, the errno and the request).  Before re-raising, the wiring undoes what
the failed step enabled -- the whole index when enabling failed, the one vector when an unmask failed
(the whole index if even that cannot be undone) -- so no vector is left half set up.  Because the
listener runs inside the guest's config write, the error surfaces from that write.

A wiring created after the config already holds state (a restore done before it existed) programs
the device with :meth:`ConfigInterruptWiring.sync`; :meth:`~ConfigInterruptWiring.close` unsubscribes
and disables everything it drives.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..pci.events import ConfigEvent
from ..uapi import pci_regs as R
from .kvm import MsiMessage
from .vfio_irqs import IntxController, MsiController, MsixController

if TYPE_CHECKING:
    from ..pci.config import VirtualConfig

__all__ = ["ConfigInterruptWiring"]

log = logging.getLogger("pyvfio.irq.config_wiring")


class ConfigInterruptWiring:
    """Drives the given INTx / MSI / MSI-X controllers from a :class:`VirtualConfig`'s events.

    Any controller may be None (that interrupt type is then left alone).  Subscribing happens in the
    constructor; nothing is programmed until an event arrives or :meth:`sync` is called.
    """

    def __init__(self, vc: "VirtualConfig", *, intx: Optional[IntxController] = None,
                 msi: Optional[MsiController] = None, msix: Optional[MsixController] = None) -> None:
        if msi is not None and vc.msi is None:
            raise ValueError("an MSI controller was given but the config has no MSI capability")
        if msix is not None and vc.msix is None:
            raise ValueError("an MSI-X controller was given but the config has no MSI-X capability")
        if msix is not None and vc.msix is not None and msix.entries < vc.msix.entries:
            raise ValueError(f"the MSI-X controller has {msix.entries} entries, the guest's table "
                             f"{vc.msix.entries}")
        self.vc = vc
        self.intx = intx
        self.msi = msi
        self.msix = msix
        self._closed = False
        self._handlers: dict[str, Callable[[ConfigEvent], None]] = {
            "msi-enable": lambda e: self._msi_enable(),
            "msi-update": lambda e: self._msi_update(),
            "msi-disable": lambda e: self._msi_disable(),
            "msi-mask": self._msi_mask,
            "msix-enable": lambda e: self._msix_enable(),
            "msix-disable": lambda e: self._msix_disable(),
            "msix-mask": self._msix_mask,
            "intx-disable": lambda e: self._settle_intx(),
        }
        vc.add_listener(self._on_event)

    # -- the listener ------------------------------------------------------------------------------
    def _on_event(self, event: ConfigEvent) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            log.debug("wiring %s", event)
            handler(event)

    # -- what the guest's config says --------------------------------------------------------------
    def _guest_msi_on(self) -> bool:
        return self.vc.msi is not None and self.vc.msi.enabled

    def _guest_msix_on(self) -> bool:
        return self.vc.msix is not None and self.vc.msix.enabled

    def _guest_intx_allowed(self) -> bool:
        command = self.vc.get_int(R.PCI_COMMAND, 2)
        return not command & R.PCI_COMMAND_INTX_DISABLE and not self._guest_msi_on() and not self._guest_msix_on()

    # -- INTx --------------------------------------------------------------------------------------
    def _settle_intx(self) -> None:
        """Enable or release INTx so it is wired exactly while the guest's config allows it."""
        if self.intx is None:
            return
        if self._guest_intx_allowed() and not self._host_msi_on():
            if not self.intx.enabled:
                self.intx.enable()
        elif self.intx.enabled:
            self.intx.disable()

    def _host_msi_on(self) -> bool:
        return bool(self.msi is not None and self.msi.vectors) or bool(self.msix is not None and self.msix.enabled)

    def _release_intx(self) -> None:
        """vfio-pci accepts one interrupt type at a time: INTx goes before MSI/MSI-X comes."""
        if self.intx is not None and self.intx.enabled:
            self.intx.disable()

    # -- MSI ---------------------------------------------------------------------------------------
    def _msi_messages(self) -> list[MsiMessage]:
        cap = self.vc.msi
        assert cap is not None
        return [cap.message(v) for v in range(cap.vectors)]

    def _msi_enable(self) -> None:
        """(Re-)enable MSI with the guest's vectors; a restore may announce an enable that is already on."""
        if self.msi is None:
            return
        if self.msi.vectors:
            self.msi.disable()  # the vector count may differ: start over, as a fresh enable would
        self._release_intx()
        try:
            self.msi.enable(self._msi_messages())  # rolls its own vectors back when SET_IRQS fails
        except BaseException:
            with contextlib.suppress(OSError):
                self._settle_intx()
            raise
        self._apply_msi_masks()

    def _msi_update(self) -> None:
        if self.msi is None or not self.msi.vectors:
            return
        messages = self._msi_messages()
        for nr in sorted(self.msi.vectors):
            if nr < len(messages):
                self.msi.update(nr, messages[nr])

    def _msi_disable(self) -> None:
        if self.msi is None:
            return
        try:
            self.msi.disable()
        finally:
            self._settle_intx()

    def _msi_mask(self, event: ConfigEvent) -> None:
        if self.msi is None or not self.msi.vectors:
            return
        op: Any = getattr(self.msi, "mask" if event.new else "unmask", None)
        if callable(op):
            op(event.index)

    def _apply_msi_masks(self) -> None:
        """Hand the guest's per-vector MSI masks to a controller that can use them."""
        cap = self.vc.msi
        if self.msi is None or cap is None or not cap.maskable:
            return
        mask: Any = getattr(self.msi, "mask", None)
        if not callable(mask):
            return
        for v in range(cap.vectors):
            if cap.is_masked(v) and v in self.msi.vectors:
                mask(v)

    # -- MSI-X -------------------------------------------------------------------------------------
    def _load_msix_table(self) -> None:
        """Copy messages and masks from the guest's table into the (not yet enabled) controller."""
        cap, ctl = self.vc.msix, self.msix
        assert cap is not None and ctl is not None
        for nr in range(cap.entries):
            ctl.set_message(nr, cap.message(nr))
            if cap.is_masked(nr):
                ctl.mask(nr)
            else:
                ctl.unmask(nr)  # while disabled this only records the mask bit

    def _msix_enable(self) -> None:
        """Enable MSI-X and use every entry the guest has unmasked; all or nothing."""
        if self.msix is None:
            return
        if self.msix.enabled:
            self._msix_sync_enabled()  # a restore re-announcing an enable: reconcile entry by entry
            return
        self._release_intx()
        self._load_msix_table()
        try:
            self.msix.enable()
        except BaseException:
            self._msix_abandon()
            with contextlib.suppress(OSError):
                self._settle_intx()
            raise

    def _msix_disable(self) -> None:
        if self.msix is None:
            return
        try:
            self.msix.disable()
        finally:
            self._settle_intx()

    def _msix_mask(self, event: ConfigEvent) -> None:
        cap, ctl = self.vc.msix, self.msix
        if ctl is None or cap is None or not ctl.enabled:
            return
        nr = event.index
        if event.new:
            ctl.mask(nr)
        else:
            self._msix_unmask(nr)

    def _msix_unmask(self, nr: int) -> None:
        """Use entry ``nr`` with the guest's current message; undo the vector if SET_IRQS refuses it."""
        cap, ctl = self.vc.msix, self.msix
        assert cap is not None and ctl is not None
        ctl.set_message(nr, cap.message(nr))
        try:
            ctl.unmask(nr)
        except OSError:
            self._undo_vector(nr)
            raise

    def _undo_vector(self, nr: int) -> None:
        """After a failed unmask: free the one vector, or the whole index when that cannot be trusted.

        A non-resizing kernel grows the range by disable + re-enable of everything, so a failure there
        may have left the index off with the controller still holding vectors: only a full disable is
        consistent then.  Likewise when freeing the single vector fails.
        """
        ctl = self.msix
        assert ctl is not None
        ctl.masked[nr] = True  # the controller already recorded the unmask; the vector is not in use
        if ctl.noresize:
            self._msix_abandon()
            return
        if nr not in ctl.vectors:
            return
        try:
            ctl.release_vector(nr)
        except OSError:
            self._msix_abandon()

    def _msix_abandon(self) -> None:
        """Disable the MSI-X index and drop every vector, even when the kernel refuses the disable."""
        ctl = self.msix
        assert ctl is not None
        if ctl.enabled:
            with contextlib.suppress(OSError):
                ctl.disable()  # its vectors and eventfds are released even if the ioctl fails

    def _msix_sync_enabled(self) -> None:
        """Bring an enabled controller in line with the table: messages, then masks."""
        cap, ctl = self.vc.msix, self.msix
        assert cap is not None and ctl is not None
        for nr in range(cap.entries):
            if cap.is_masked(nr):
                ctl.set_message(nr, cap.message(nr))
                ctl.mask(nr)
            else:
                self._msix_unmask(nr)

    # -- attaching late, detaching -----------------------------------------------------------------
    def sync(self) -> None:
        """Program the controllers from the config as it is now (no events needed).

        For a wiring attached after the guest (or a restore) already set things up.  Turning off comes
        first, so the one interrupt type vfio-pci allows is free when something is turned on.
        """
        if self.msi is not None and self.msi.vectors and not self._guest_msi_on():
            self._msi_disable()
        if self.msix is not None and self.msix.enabled and not self._guest_msix_on():
            self._msix_disable()
        if self.msi is not None and self._guest_msi_on():
            if self.msi.vectors:
                self._msi_update()  # already on (fewer vectors than asked, perhaps): keep it, refresh messages
            else:
                self._msi_enable()
        if self.msix is not None and self._guest_msix_on():
            self._msix_enable()  # reconciles entry by entry when already enabled
        self._settle_intx()

    def close(self) -> None:
        """Stop listening and disable everything driven from here (MSI-X, MSI, INTx); idempotent.

        Every controller is disabled even if an earlier one fails; the first failure is raised after.
        """
        if self._closed:
            return
        self._closed = True
        self.vc.remove_listener(self._on_event)
        error: Optional[BaseException] = None
        for ctl in (self.msix, self.msi, self.intx):
            if ctl is None:
                continue
            try:
                ctl.disable()
            except OSError as e:
                error = error or e
        if error is not None:
            raise error

    def __enter__(self) -> "ConfigInterruptWiring":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [f"{name}={ctl!r}" for name, ctl in (("intx", self.intx), ("msi", self.msi), ("msix", self.msix))
                 if ctl is not None]
        return f"ConfigInterruptWiring({', '.join(parts) or 'nothing wired'}{', closed' if self._closed else ''})"
