"""The VMM's interrupt routing table: vector -> (eventfd, GSI route, irqfd on/off).

KVM has no "read the routing table" call and ``KVM_SET_GSI_ROUTING`` replaces
the whole table, so a VMM keeps its own copy (QEMU's ``KVMState`` route list)
and resubmits it.  :class:`RoutingTable` is that copy plus the irqfds bound to
it and the user-space handlers that take a vector's interrupts when KVM does
not.  Each vector is one :class:`VectorRoute`: an eventfd, a GSI with its
route (an MSI message or an interrupt-controller pin), and where its signals
go right now -- one of three *modes*:

``KVM``
    An irqfd binds the eventfd to the GSI: each signal is injected by KVM,
    without user space (the fast path).
``VMM``
    No irqfd; the VMM's handler (an :class:`~pyvfio.irq.eventfd.FdHandlers`
    entry) reads the eventfd and delivers the interrupt itself -- for MSI,
    ``KVM_SIGNAL_MSI`` with the route's message, which is what QEMU's
    ``msi_notify`` ends in.
``PARKED``
    Neither: nobody reads the eventfd, so signals accumulate in its counter.
    This is the state SEMANTICS 5.4 puts vectors in before a VMM hands its
    device to a new process (see :mod:`pyvfio.irq.handoff`).

Switching between modes at run time never loses an interrupt that arrives
while parked: going to ``KVM`` assigns an irqfd over the signalled eventfd
and KVM injects the pending count; going to ``VMM`` installs a handler that
finds the count on its next dispatch.  Going *from* ``KVM`` deassigns the
irqfd, which (Linux ``irqfd_shutdown``) reads the counter to zero: what was
counted before then has already been injected.

The table owns the eventfds it creates and borrows those it is given (a
hand-off passes eventfds from one table to the next); :meth:`close` undoes
everything in reverse.  Without a VM (``vm=None``) the table still tracks
vectors and handlers, so the same code runs on a host without ``/dev/kvm``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterator, Optional

from ..uapi import kvm as uk
from .eventfd import EventFd, FdHandlers
from .kvm import FIRST_MSI_GSI, KvmVm, MsiMessage, default_irqchip_routes, irqchip_route, msi_route

__all__ = ["Mode", "VectorRoute", "RoutingTable"]

log = logging.getLogger("pyvfio.irq")

MAX_GSI = 4096  # KVM_MAX_IRQ_ROUTES; KVM_CHECK_EXTENSION(KVM_CAP_IRQ_ROUTING) reports the real one


class Mode(enum.Enum):
    """Who consumes a vector's eventfd: KVM (irqfd), the VMM (handler) or nobody (parked)."""

    KVM = "kvm"
    VMM = "vmm"
    PARKED = "parked"


Handler = Callable[[int], None]


@dataclass(eq=False)
class VectorRoute:
    """One vector: its eventfd, its GSI and route, and who consumes it now.

    ``msg`` is set for MSI routes, ``pin`` (``(chip, pin)``) for irqchip
    routes.  ``resample`` is the resamplefd of a level-triggered (INTx)
    irqfd: KVM signals it when the guest EOIs the interrupt.
    """

    key: Hashable
    eventfd: EventFd
    gsi: int
    msg: Optional[MsiMessage] = None
    pin: Optional[tuple[int, int]] = None
    resample: Optional[EventFd] = None
    handler: Optional[Handler] = None
    mode: Mode = Mode.PARKED
    owns_eventfd: bool = False
    default_route: bool = False  # the route is part of KVM's default irqchip table, not ours
    delivered: int = field(default=0)  # interrupts the VMM handler delivered

    @property
    def irqfd(self) -> bool:
        return self.mode is Mode.KVM


class RoutingTable:
    """A VM's GSI routes and irqfds, as the VMM keeps them; see the module docstring.

    ``keep_default_routes`` keeps the PIC/IOAPIC routes ``KVM_CREATE_IRQCHIP``
    installed in every table this object submits (QEMU does the same), so
    INTx keeps working once MSI routes are added.
    """

    def __init__(self, vm: Optional[KvmVm], handlers: Optional[FdHandlers] = None, *,
                 keep_default_routes: bool = True) -> None:
        self.vm = vm
        self.handlers = handlers if handlers is not None else FdHandlers()
        self.keep_default_routes = keep_default_routes
        self._routes: dict[Hashable, VectorRoute] = {}
        self._gsis: set[int] = set()
        self._batch = 0
        self._dirty = False
        self.commits = 0

    # -- the KVM table ---------------------------------------------------------------------------
    def entries(self) -> list[uk.kvm_irq_routing_entry]:
        """The table this object submits: the default irqchip routes (if kept), then one entry per own route."""
        out = default_irqchip_routes() if self.keep_default_routes else []
        for r in self._routes.values():
            if r.default_route:
                continue
            if r.msg is not None:
                out.append(msi_route(r.gsi, r.msg))
            elif r.pin is not None:
                out.append(irqchip_route(r.gsi, *r.pin))
        return out

    def commit(self) -> None:
        """Submit the table (``KVM_SET_GSI_ROUTING``) unless inside :meth:`batch`.

        A failed submission leaves the table marked out of sync, so the next
        commit (or the end of a batch) tries again.
        """
        if self._batch:
            self._dirty = True
            return
        self._dirty = True
        if self.vm is not None:
            self.vm.set_gsi_routing(self.entries())
            self.commits += 1
        self._dirty = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer commits to the end of the block (QEMU's ``kvm_irqchip_commit_routes``): one ioctl for many routes.

        If the block raises, the deferred commit is still attempted but its own
        failure is only logged, so the block's exception is the one reported.
        """
        self._batch += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            self._batch -= 1
            if not self._batch and self._dirty:
                if ok:
                    self.commit()
                else:
                    try:
                        self.commit()
                    except OSError as e:
                        log.warning("routing table commit after a failed batch: %s", e)

    def _alloc_gsi(self) -> int:
        gsi = FIRST_MSI_GSI
        while gsi in self._gsis:
            gsi += 1
        if gsi >= MAX_GSI:
            raise RuntimeError(f"no free GSI below {MAX_GSI}")
        return gsi

    # -- vectors ---------------------------------------------------------------------------------
    def __contains__(self, key: Hashable) -> bool:
        return key in self._routes

    def __getitem__(self, key: Hashable) -> VectorRoute:
        try:
            return self._routes[key]
        except KeyError:
            raise KeyError(f"no vector {key!r} in the routing table") from None

    def __iter__(self) -> Iterator[VectorRoute]:
        return iter(list(self._routes.values()))

    def __len__(self) -> int:
        return len(self._routes)

    def add_msi(self, key: Hashable, msg: MsiMessage, eventfd: Optional[EventFd] = None, *,
                mode: Mode = Mode.KVM, handler: Optional[Handler] = None, gsi: Optional[int] = None) -> VectorRoute:
        """Route a vector to MSI ``msg`` on a fresh GSI (QEMU's ``kvm_irqchip_add_msi_route`` + irqfd).

        ``eventfd`` is borrowed if given, else created and owned.  ``mode``
        says who consumes it from the start; ``handler`` replaces the default
        VMM handler (deliver ``msg`` with ``KVM_SIGNAL_MSI``).
        """
        if key in self._routes:
            raise ValueError(f"vector {key!r} is already routed (GSI {self._routes[key].gsi})")
        g = self._alloc_gsi() if gsi is None else gsi
        if g in self._gsis:
            raise ValueError(f"GSI {g} is already in use")
        owned = eventfd is None
        efd = EventFd() if eventfd is None else eventfd
        route = VectorRoute(key, efd, g, msg=msg, handler=handler, owns_eventfd=owned)
        self._routes[key] = route
        self._gsis.add(g)
        try:
            self.commit()
            self.set_mode(key, mode)
        except BaseException:
            self._drop(route)
            raise
        return route

    def add_intx(self, key: Hashable, gsi: int, eventfd: Optional[EventFd] = None, *,
                 resample: Optional[EventFd] = None, mode: Mode = Mode.KVM, handler: Optional[Handler] = None,
                 pin: Optional[tuple[int, int]] = None) -> VectorRoute:
        """Route a level-triggered line: GSI ``gsi`` to IOAPIC pin ``gsi`` (or ``pin`` = ``(chip, pin)``).

        With ``resample`` the irqfd is a resampling one: the line stays
        asserted until the guest's EOI, then KVM deasserts it and signals
        ``resample`` (vfio-pci's UNMASK eventfd), as QEMU's
        ``vfio_intx_enable_kvm`` wires it.  A GSI the default table already
        routes is not added again.
        """
        if key in self._routes:
            raise ValueError(f"vector {key!r} is already routed (GSI {self._routes[key].gsi})")
        target = pin if pin is not None else (uk.KVM_IRQCHIP_IOAPIC, gsi)
        default = (self.keep_default_routes and target[0] == uk.KVM_IRQCHIP_IOAPIC and target[1] == gsi
                   and gsi < uk.KVM_IOAPIC_NUM_PINS)
        if not default and gsi in self._gsis:
            raise ValueError(f"GSI {gsi} is already in use")
        owned = eventfd is None
        efd = EventFd() if eventfd is None else eventfd
        route = VectorRoute(key, efd, gsi, pin=target, resample=resample, handler=handler, owns_eventfd=owned,
                            default_route=default)
        self._routes[key] = route
        if not default:
            self._gsis.add(gsi)
        try:
            if not default:
                self.commit()
            self.set_mode(key, mode)
        except BaseException:
            self._drop(route)
            raise
        return route

    def update_msi(self, key: Hashable, msg: MsiMessage) -> None:
        """The guest rewrote the vector's message: update the route (an assigned irqfd follows it)."""
        route = self[key]
        if route.msg is None:
            raise ValueError(f"vector {key!r} is not an MSI route")
        if route.msg != msg:
            route.msg = msg
            self.commit()

    # -- who consumes the eventfd ------------------------------------------------------------------
    def set_mode(self, key: Hashable, mode: Mode, handler: Optional[Handler] = None) -> None:
        """Move a vector to ``mode``; pending signals in the eventfd are kept (see the module docstring)."""
        route = self[key]
        if handler is not None:
            route.handler = handler
        if mode is Mode.KVM and self.vm is None:
            raise ValueError(f"vector {key!r}: no VM to deliver through (the table was made with vm=None)")
        if route.mode is mode:
            return
        # leave the current mode first, so at no point do two consumers race for the counter
        if route.mode is Mode.KVM:
            assert self.vm is not None
            self.vm.irqfd_deassign(route.eventfd.fd, route.gsi)
        elif route.mode is Mode.VMM:
            self.handlers.remove_handler(route.eventfd.fd)
        route.mode = Mode.PARKED
        if mode is Mode.KVM:
            assert self.vm is not None
            self.vm.irqfd(route.eventfd.fd, route.gsi,
                          route.resample.fd if route.resample is not None else None)
        elif mode is Mode.VMM:
            self.handlers.set_handler(route.eventfd.fd, self._vmm_handler(route))
        route.mode = mode

    def to_kvm(self, key: Hashable) -> None:
        self.set_mode(key, Mode.KVM)

    def to_vmm(self, key: Hashable, handler: Optional[Handler] = None) -> None:
        self.set_mode(key, Mode.VMM, handler)

    def park(self, key: Hashable) -> None:
        self.set_mode(key, Mode.PARKED)

    def _vmm_handler(self, route: VectorRoute) -> Handler:
        def handle(count: int) -> None:
            route.delivered += 1
            if route.handler is not None:
                route.handler(count)
            elif route.msg is not None and self.vm is not None:
                self.vm.signal_msi(route.msg)  # what QEMU's msi_notify amounts to under KVM
        return handle

    def deliver(self, key: Hashable) -> int:
        """Deliver the vector's MSI now from user space (``KVM_SIGNAL_MSI``); > 0 when a vCPU took it."""
        route = self[key]
        if route.msg is None or self.vm is None:
            raise ValueError(f"vector {key!r}: needs an MSI route and a VM")
        return self.vm.signal_msi(route.msg)

    # -- teardown --------------------------------------------------------------------------------
    def remove(self, key: Hashable) -> None:
        """Stop consuming, drop the route (resubmitting the table) and close the eventfd if owned."""
        route = self[key]
        try:
            self.set_mode(key, Mode.PARKED)
        finally:
            self._drop(route)
            if not route.default_route:
                self.commit()

    def _drop(self, route: VectorRoute) -> None:
        if route.mode is Mode.VMM:
            self.handlers.remove_handler(route.eventfd.fd)
            route.mode = Mode.PARKED
        self._routes.pop(route.key, None)
        if not route.default_route:
            self._gsis.discard(route.gsi)
        if route.owns_eventfd:
            route.eventfd.close()

    def close(self) -> None:
        """Remove every vector (irqfds deassigned, handlers removed, owned eventfds closed), last added first.

        Best effort, as a destructor must be: the table is submitted once at
        the end and a failure to submit it is logged, not raised.  A VM that
        is already closed took its irqfds with it, so then only the local
        state is dropped.
        """
        vm_open = self.vm is not None and not _closed(self.vm)
        self._batch += 1
        try:
            for route in reversed(list(self._routes.values())):
                if route.mode is Mode.KVM and not vm_open:
                    route.mode = Mode.PARKED
                try:
                    self.set_mode(route.key, Mode.PARKED)
                except OSError as e:
                    log.warning("routing table close: vector %r: %s", route.key, e)
                finally:
                    self._drop(route)
                    if not route.default_route:
                        self._dirty = True
        finally:
            self._batch -= 1
        if vm_open and self._dirty and not self._batch:
            try:
                self.commit()
            except OSError as e:
                log.warning("routing table close: %s", e)
        self._dirty = False

    def __enter__(self) -> "RoutingTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        modes = {m.value: sum(1 for r in self._routes.values() if r.mode is m) for m in Mode}
        return f"RoutingTable(vm={self.vm!r}, vectors={len(self._routes)}, {modes})"


def _closed(vm: KvmVm) -> bool:
    try:
        vm.fd
    except ValueError:
        return True
    return False
