"""CPR with interrupts delivered into a KVM VM through irqfds (``interrupts="kvm"``).

With KVM the VMM never reads its vectors' eventfds: each one is an irqfd
that KVM consumes and turns into an MSI on a vCPU's LAPIC.  The hand-off
(seed 001) then is:

1. Old side, after its last tick: deassign every irqfd.  What KVM injected
   so far is in the old vCPU's LAPIC (counted as received there); whatever
   the device raises from now on stays in the eventfd counters.
2. The eventfds travel with the other preserved descriptors.
3. New side: a *new* VM with the same GSI routes, then an irqfd on each
   eventfd.  KVM polls a counting eventfd when the irqfd is assigned and
   injects it, so the pending interrupts show up in the new LAPIC's IRR.

Why a new VM rather than the old VM's descriptor: KVM binds a VM to the
address space that created it, and every VM or vCPU ioctl from another one
fails with ``EIO`` (``kvm->mm != current->mm``).  Neither an exec'd image
nor a cpr-transfer peer shares that address space, so a passed VM fd is
useless to them (``tests/test_cpr_kvm.py`` shows the ``EIO``).  A real VMM
carries the guest's vCPU and irqchip state in its migration stream instead;
here only the routes (vector ``n`` -> GSI ``24 + n`` -> IDT vector
``base + n``) need to be known on both sides, and they are derived from the
vector number.

Counting: a vCPU that never runs never takes a vector, so each check of the
IRR counts the vectors set and clears them (standing in for the guest taking
them).  An irqfd injects *once* for whatever its eventfd counted, so the
exact count holds while each vector has at most one interrupt pending at a
time (what the demo's workload does).
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from ..irq.eventfd import eventfd_count
from ..irq.kvm import FIRST_MSI_GSI, Kvm, KvmVm, MsiMessage, msi_route

#: IDT vector of interrupt vector 0; vector n arrives as BASE_VECTOR + n
BASE_VECTOR = 0x40
MAX_VECTORS = 0x100 - BASE_VECTOR


class KvmDelivery:
    """A VM with one vCPU whose LAPIC receives the device's vectors through irqfds on ``eventfds``."""

    def __init__(self, eventfds: Sequence[int], *, assign: bool = True) -> None:
        if not 0 < len(eventfds) <= MAX_VECTORS:
            raise ValueError(f"{len(eventfds)} vectors: KVM delivery handles 1..{MAX_VECTORS}")
        self.eventfds = list(eventfds)
        self.assigned = False
        self._kvm: Optional[Kvm] = Kvm()
        self.vm: Optional[KvmVm] = None
        try:
            self.vm = self._kvm.create_vm(vcpus=1)
            # routes first: an irqfd on a GSI without a route would inject into nothing
            self.vm.set_gsi_routing([msi_route(self.gsi(n), MsiMessage.for_vector(self.idt_vector(n)))
                                     for n in range(len(self.eventfds))])
            if assign:
                self.assign()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def gsi(n: int) -> int:
        return FIRST_MSI_GSI + n

    @staticmethod
    def idt_vector(n: int) -> int:
        return BASE_VECTOR + n

    def _vm(self) -> KvmVm:
        if self.vm is None:
            raise ValueError("KVM delivery is closed")
        return self.vm

    def assign(self) -> None:
        """Attach every eventfd as an irqfd; counters that already count are injected (asynchronously)."""
        vm = self._vm()
        done: list[int] = []
        try:
            for n, fd in enumerate(self.eventfds):
                vm.irqfd(fd, self.gsi(n))
                done.append(n)
        except BaseException:
            for n in done:
                vm.irqfd_deassign(self.eventfds[n], self.gsi(n))
            raise
        self.assigned = True

    def deassign(self) -> None:
        """Detach every irqfd: from now on the device's signals wait in the eventfd counters."""
        vm = self._vm()
        for n, fd in enumerate(self.eventfds):
            vm.irqfd_deassign(fd, self.gsi(n))
        self.assigned = False

    def pending(self) -> list[int]:
        """Each eventfd's counter, read without consuming it (only meaningful while deassigned)."""
        return [eventfd_count(fd) for fd in self.eventfds]

    def wait(self, vectors: Sequence[int], timeout: float = 1.0) -> set[int]:
        """Wait until interrupt vectors ``vectors`` are all in the IRR; returns those that never came."""
        vcpu = self._vm().vcpus[0]
        want = {self.idt_vector(n) for n in vectors}
        deadline = time.monotonic() + timeout
        while True:
            missing = want - vcpu.irr()
            if not missing or time.monotonic() >= deadline:
                return {v - BASE_VECTOR for v in missing}
            time.sleep(0.0002)

    def take(self) -> list[int]:
        """The interrupt vectors now requested in the IRR, which is then cleared (the guest took them)."""
        vcpu = self._vm().vcpus[0]
        got = sorted(v - BASE_VECTOR for v in vcpu.irr() if 0 <= v - BASE_VECTOR < len(self.eventfds))
        if got:
            vcpu.clear_irr()
        return got

    def close(self) -> None:
        """Close the VM (KVM drops its irqfds; the eventfds stay open: the owner's registry has them)."""
        if self.vm is not None:
            self.vm.close()
            self.vm = None
        if self._kvm is not None:
            self._kvm.close()
            self._kvm = None
        self.assigned = False
