"""Handing pending device interrupts from one KVM VM to a new one (QEMU "vfio/pci: preserve pending interrupts").

When a VMM live-updates itself (cpr-transfer, cpr-exec) the old KVM VM is
destroyed and a new one created while the device keeps running.  An interrupt
the device raises in between must not be lost.  The trick (SEMANTICS 5.4) is
to make the *eventfd counter* the place where it waits:

1. Old side, vCPUs stopped (:func:`detach_vectors`): for every vector, deassign
   the KVM irqfd and remove the VMM's handler.  vfio-pci keeps signalling the
   same eventfds, nobody reads them, so each interrupt stays counted.  What
   KVM had already injected is in the old vCPUs' LAPIC state, which the VMM
   saves with ``KVM_GET_LAPIC``.
2. The eventfds (not the VM) cross to the new process.
3. New side (:func:`claim_vectors`): add the routes to the new VM *first*,
   then assign an irqfd on each preserved eventfd.  ``KVM_IRQFD`` polls the
   eventfd at assign time and, if it counts, injects once from a kernel work
   queue -- so the pending interrupt arrives, asynchronously.
4. On failure the old side re-assigns its irqfds and handlers
   (:func:`recover_vectors`).

Order matters in step 3: an irqfd assigned before its GSI has a route injects
into nothing, and the pending interrupt is gone.  Order matters in step 1
too: deassigning reads the counter to zero, so interrupts raised *during* the
deassign call went to the old VM (and are in its LAPIC state), and only those
raised after it wait in the counter.

:func:`hand_off` runs 1-3 between two :class:`~pyvfio.irq.routing.RoutingTable`
objects in one process, which is how the tests prove it 1,000 times on a
real ``/dev/kvm``; a VMM doing real CPR runs 1 in the old process and 3 in the
new one, passing the eventfds on (they are ordinary descriptors).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Optional

from .eventfd import EventFd
from .kvm import KvmVcpu, MsiMessage
from .routing import Mode, RoutingTable, VectorRoute

__all__ = ["PreservedVector", "HandoffResult", "detach_vectors", "claim_vectors", "recover_vectors", "hand_off",
           "wait_injected"]


@dataclass
class PreservedVector:
    """A vector between two VMs: the eventfd the device signals and how to route it again.

    It owns ``eventfd`` (and ``resample``) once the old table has let go, so
    the descriptors outlive the old VM and its table; :meth:`close` releases
    them if the hand-off is abandoned.
    """

    key: Hashable
    eventfd: EventFd
    gsi: int
    msg: Optional[MsiMessage] = None
    pin: Optional[tuple[int, int]] = None
    resample: Optional[EventFd] = None
    owned: bool = False
    old_mode: Mode = Mode.KVM

    def pending(self) -> int:
        """Interrupts waiting in the eventfd's counter (read without consuming them)."""
        return self.eventfd.count()

    def close(self) -> None:
        if self.owned:
            self.eventfd.close()
            self.owned = False


@dataclass
class HandoffResult:
    """What :func:`hand_off` saw: the preserved vectors and what each eventfd held before the claim."""

    preserved: list[PreservedVector]
    pending_before_claim: dict[Hashable, int] = field(default_factory=dict)
    routes: list[VectorRoute] = field(default_factory=list)


def detach_vectors(table: RoutingTable, keys: Optional[Iterable[Hashable]] = None) -> list[PreservedVector]:
    """Old side, step 1: park every vector (irqfd deassigned, handler removed) and take over its eventfd.

    ``keys`` limits it to some vectors.  The table keeps its routes, so
    :func:`recover_vectors` can undo this; closing the table no longer closes
    the eventfds (the :class:`PreservedVector` owns them now).
    """
    out = []
    for route in list(table) if keys is None else [table[k] for k in keys]:
        old_mode = route.mode
        table.park(route.key)
        owned, route.owns_eventfd = route.owns_eventfd, False
        out.append(PreservedVector(route.key, route.eventfd, route.gsi, msg=route.msg, pin=route.pin,
                                   resample=route.resample, owned=owned, old_mode=old_mode))
    return out


def claim_vectors(table: RoutingTable, preserved: Iterable[PreservedVector]) -> list[VectorRoute]:
    """New side, step 3: route each preserved vector on ``table``'s VM, then bind its eventfd with an irqfd.

    All routes are committed in one ``KVM_SET_GSI_ROUTING`` before the first
    irqfd is assigned, so a pending count is injected into a real route.  The
    eventfds stay owned by the preserved vectors' owner (the table borrows
    them); GSIs are allocated afresh, as a new VMM would.
    """
    items = list(preserved)
    routes: list[VectorRoute] = []
    with table.batch():
        for p in items:
            if p.msg is not None:
                routes.append(table.add_msi(p.key, p.msg, p.eventfd, mode=Mode.PARKED))
            elif p.pin is not None:
                routes.append(table.add_intx(p.key, p.gsi, p.eventfd, resample=p.resample, mode=Mode.PARKED,
                                             pin=p.pin))
            else:
                raise ValueError(f"vector {p.key!r} has neither an MSI message nor an irqchip pin")
    for route in routes:
        table.to_kvm(route.key)
    return routes


def recover_vectors(table: RoutingTable, preserved: Iterable[PreservedVector]) -> None:
    """Failure path, step 4: the old side takes its vectors back in the mode each had (irqfds re-assigned)."""
    for p in preserved:
        route = table[p.key]
        route.owns_eventfd, p.owned = p.owned, False
        table.set_mode(p.key, p.old_mode)


def hand_off(old: RoutingTable, new: RoutingTable, *,
             between: Optional[Callable[[list[PreservedVector]], None]] = None) -> HandoffResult:
    """Steps 1-3 in one process: detach from ``old``, run ``between`` (the device keeps interrupting), claim on ``new``.

    Returns the preserved vectors (now owning their eventfds; the caller
    closes them when done) and each one's pending count just before the claim.
    Observe the injection in ``new``'s vCPUs with :func:`wait_injected`.
    """
    preserved = detach_vectors(old)
    try:
        if between is not None:
            between(preserved)
        pending = {p.key: p.pending() for p in preserved}
        routes = claim_vectors(new, preserved)
    except BaseException:
        # a partial claim: the new VM lets go (best effort) before the old one takes its vectors back
        with contextlib.suppress(OSError), new.batch():
            for p in preserved:
                if p.key in new:
                    new.remove(p.key)
        recover_vectors(old, preserved)
        raise
    return HandoffResult(preserved, pending, routes)


def wait_injected(vcpu: KvmVcpu, vectors: Iterable[int], timeout: float = 1.0) -> set[int]:
    """Poll ``vcpu``'s LAPIC IRR until every vector in ``vectors`` is there; returns those still missing.

    A bounded poll, because KVM injects a pending count from a work queue
    after ``KVM_IRQFD`` returns.
    """
    want = set(vectors)
    deadline = time.monotonic() + timeout
    while True:
        missing = want - vcpu.irr()
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.0002)
