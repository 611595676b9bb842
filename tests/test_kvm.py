"""Interrupt routing proven on a real /dev/kvm: routes, irqfds, LAPIC IRR, IOAPIC/PIC state.

No guest ever runs (this host's ``kvm_pvm`` could not run one): the in-kernel
interrupt controllers are state, and ``KVM_GET_LAPIC``/``KVM_GET_IRQCHIP``
read it back.  What that can and cannot show:

* MSI: an eventfd signal through ``KVM_SET_GSI_ROUTING`` + ``KVM_IRQFD``
  sets the vector in the target vCPU's LAPIC IRR -- the full delivery, since a
  running vCPU would take the interrupt from there.
* INTx (resampling irqfd on an IOAPIC pin): the signal asserts the line
  (IOAPIC ``irr`` bit), the IOAPIC delivers a level interrupt (LAPIC IRR and
  TMR bits, ``remote_irr`` set), further signals change nothing while it
  waits for EOI, and removing the irqfd deasserts the line.  The EOI itself --
  KVM deasserting the line and writing the resamplefd, which is vfio-pci's
  UNMASK eventfd -- needs the vCPU to execute an EOI and is not observable
  here; the tests write the resamplefd themselves to show the vfio side of
  that step, and say so.

The end-to-end tests route the *simulated* kernel's devices into the real
KVM: the sim's vfio-pci signals real eventfds, which real irqfds consume.
Every test skips with the reason when /dev/kvm is missing or unusable.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Callable, Iterator

import pytest

from pyvfio.irq.eventfd import EventFd, FdHandlers
from pyvfio.irq.kvm import (
    Kvm, KvmError, KvmVm, MsiMessage, default_irqchip_routes, irqchip_route, kvm_unavailable, msi_route,
)
from pyvfio.irq.routing import Mode, RoutingTable
from pyvfio.irq.vfio_irqs import IntxController, MsiController, MsixController, VfioIrqs
from pyvfio.uapi import kvm as uk

REASON = kvm_unavailable()
pytestmark = [pytest.mark.kvm, pytest.mark.skipif(REASON is not None, reason=f"needs /dev/kvm: {REASON}")]

V1, V2 = 0x41, 0x52
INTX_GSI, INTX_VECTOR = 10, 0x70


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def kvm() -> Iterator[Kvm]:
    with Kvm() as k:
        yield k


@pytest.fixture
def vm(kvm: Kvm) -> Iterator[KvmVm]:
    """A VM with the in-kernel irqchip and one vCPU whose LAPIC is software-enabled."""
    with kvm.create_vm(vcpus=1) as v:
        yield v


def errno_of(fn: Callable[..., Any], *args: Any) -> int:
    with pytest.raises(OSError) as e:
        fn(*args)
    return int(e.value.errno or 0)


def wait_for(cond: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0002)
    return True


# -- the system fd and the VM's controllers ----------------------------------------------------------

def test_api_version_and_the_capabilities_routing_needs(kvm: Kvm) -> None:
    assert kvm.api_version() == uk.KVM_API_VERSION == 12
    for cap in (uk.KVM_CAP_IRQCHIP, uk.KVM_CAP_IRQ_ROUTING, uk.KVM_CAP_IRQFD, uk.KVM_CAP_IRQFD_RESAMPLE,
                uk.KVM_CAP_SIGNAL_MSI):
        assert kvm.check_extension(cap) > 0, uk.KvmCap(cap).name
    assert kvm.check_extension(uk.KVM_CAP_IRQ_ROUTING) >= 1024  # the value is the route limit (4096)


def test_irqchip_ordering_and_absence_errors(kvm: Kvm) -> None:
    with kvm.create_vm(irqchip=False) as bare:
        assert errno_of(bare.get_irqchip, uk.KVM_IRQCHIP_IOAPIC) == errno.ENXIO
        assert errno_of(bare.set_gsi_routing, []) == errno.EINVAL
        with EventFd() as e:
            assert errno_of(bare.irqfd, e.fd, 5) == errno.EINVAL  # irqfds need the in-kernel irqchip
        vcpu = bare.create_vcpu()
        assert errno_of(vcpu.get_lapic) == errno.EINVAL  # no in-kernel LAPIC
        assert errno_of(bare.create_irqchip) == errno.EINVAL  # after a vCPU exists
    with kvm.create_vm() as vm:
        assert errno_of(vm.create_irqchip) == errno.EEXIST
        assert errno_of(vm.get_irqchip, 7) == errno.EINVAL
        assert vm.create_vcpu(0).id == 0
        assert errno_of(vm.create_vcpu, 0) == errno.EEXIST


def test_kvm_error_names_the_ioctl(vm: KvmVm) -> None:
    with pytest.raises(KvmError) as e:
        vm.get_irqchip(9)
    assert e.value.ioctl == "KVM_GET_IRQCHIP" and "chip 9" in str(e.value)


def test_new_controllers_state(kvm: Kvm) -> None:
    with kvm.create_vm(vcpus=1, enable_lapic=False) as vm:
        lapic = vm.vcpus[0].get_lapic()
        assert not lapic.software_enabled and lapic.apic_id == 0 and not lapic.irr
        io = vm.ioapic()
        assert io.base_address == 0xFEC00000 and io.irr == 0
        assert all(io.redirtbl[p].fields.mask for p in range(uk.KVM_IOAPIC_NUM_PINS))  # every pin masked
        assert vm.pic().irr == 0


def test_a_software_disabled_lapic_drops_fixed_msis(kvm: Kvm) -> None:
    with kvm.create_vm(vcpus=1, enable_lapic=False) as vm:
        msg = MsiMessage.for_vector(V1)
        assert vm.signal_msi(msg) == 0  # blocked: SVR bit 8 is clear after reset
        assert not vm.vcpus[0].irr()
        vm.vcpus[0].enable_lapic()
        assert vm.vcpus[0].get_lapic().software_enabled
        assert vm.signal_msi(msg) == 1
        assert vm.vcpus[0].irr() == {V1}


# -- MSI through a route and an irqfd ------------------------------------------------------------------

def test_msi_irqfd_lands_in_the_lapic_irr_and_kvm_consumes_the_eventfd(vm: KvmVm) -> None:
    vcpu = vm.vcpus[0]
    vm.set_gsi_routing([*default_irqchip_routes(), msi_route(24, MsiMessage.for_vector(V1))])
    with EventFd() as e:
        vm.irqfd(e.fd, 24)
        assert not vcpu.irr()
        e.signal()
        assert vcpu.wait_irr(V1), f"vector {V1:#x} never reached the LAPIC: {vcpu.get_lapic()}"
        assert vcpu.irr() == {V1}
        assert e.count() == 0  # a live irqfd reads the counter: the interrupt was KVM's, not the VMM's
        vm.irqfd_deassign(e.fd, 24)


def test_irqfd_over_a_signalled_eventfd_injects_from_a_work_queue(vm: KvmVm) -> None:
    vcpu = vm.vcpus[0]
    vm.set_gsi_routing([msi_route(24, MsiMessage.for_vector(V1))])
    with EventFd() as e:
        e.signal()  # pending before anyone listens
        vm.irqfd(e.fd, 24)
        assert vcpu.wait_irr(V1)
        assert e.count() == 1  # the assign-time injection does not read the counter ...
        vm.irqfd_deassign(e.fd, 24)
        assert e.count() == 0  # ... deassigning does (irqfd_shutdown)


def test_route_update_moves_an_assigned_irqfd(vm: KvmVm) -> None:
    vcpu = vm.vcpus[0]
    with EventFd() as e:
        vm.set_gsi_routing([msi_route(30, MsiMessage.for_vector(V1))])
        vm.irqfd(e.fd, 30)
        e.signal()
        assert vcpu.wait_irr(V1)
        vcpu.clear_irr()
        vm.set_gsi_routing([msi_route(30, MsiMessage.for_vector(V2))])  # the guest rewrote the message
        e.signal()
        assert vcpu.wait_irr(V2) and V1 not in vcpu.irr()
        vm.irqfd_deassign(e.fd, 30)


def test_msi_to_a_second_vcpu_by_destination_id(kvm: Kvm) -> None:
    with kvm.create_vm(vcpus=2) as vm:
        vm.set_gsi_routing([msi_route(24, MsiMessage.for_vector(V1, dest_id=1))])
        with EventFd() as e:
            vm.irqfd(e.fd, 24)
            e.signal()
            assert vm.vcpus[1].wait_irr(V1)
            assert not vm.vcpus[0].irr()
            vm.irqfd_deassign(e.fd, 24)


def test_irqfd_errors(vm: KvmVm) -> None:
    vm.set_gsi_routing([msi_route(24, MsiMessage.for_vector(V1))])
    with EventFd() as e:
        vm.irqfd(e.fd, 24)
        assert errno_of(vm.irqfd, e.fd, 25) == errno.EBUSY  # one irqfd per eventfd per VM
        vm.irqfd_deassign(e.fd, 99)  # not bound there: succeeds, changes nothing
        vm.irqfd_deassign(e.fd, 24)
        vm.irqfd(e.fd, 25)  # free again
        vm.irqfd_deassign(e.fd, 25)
        bad = uk.kvm_irqfd(fd=e.fd, gsi=24, flags=1 << 2)
        assert errno_of(uk_ioctl, vm, uk.KVM_IRQFD, bad) == errno.EINVAL
    bad_msi = uk.kvm_msi(address_lo=0xFEE00000, data=V1, flags=1 << 1)
    assert errno_of(uk_ioctl, vm, uk.KVM_SIGNAL_MSI, bad_msi) == errno.EINVAL
    kvm_fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        assert errno_of(vm.irqfd, kvm_fd, 24) == errno.EINVAL  # not an eventfd
    finally:
        os.close(kvm_fd)
    assert errno_of(vm.irqfd, kvm_fd, 24) == errno.EBADF


def uk_ioctl(vm: KvmVm, request: int, arg: Any) -> int:
    from pyvfio.irq.kvm import _ioctl
    return _ioctl(vm.fd, request, arg)


@pytest.mark.parametrize("entries, why", [
    ([msi_route(50, MsiMessage.for_vector(V1)), msi_route(50, MsiMessage.for_vector(V2))], "two MSI routes, one GSI"),
    ([msi_route(4096, MsiMessage.for_vector(V1))], "GSI at the route limit"),
    ([irqchip_route(1, uk.KVM_IRQCHIP_IOAPIC, 24)], "IOAPIC pin 24"),
    ([irqchip_route(1, uk.KVM_IRQCHIP_PIC_MASTER, 8)], "PIC pin 8"),
    ([uk.kvm_irq_routing_entry(gsi=1, type=99)], "unknown type"),
    ([uk.kvm_irq_routing_entry(gsi=1, type=uk.KVM_IRQ_ROUTING_IRQCHIP, flags=uk.KVM_MSI_VALID_DEVID)],
     "flags on an irqchip route"),
], ids=["dup-msi", "gsi-limit", "ioapic-pin", "pic-pin", "type", "flags"])
def test_gsi_routing_errors(vm: KvmVm, entries: list[uk.kvm_irq_routing_entry], why: str) -> None:
    assert errno_of(vm.set_gsi_routing, entries) == errno.EINVAL, why


def test_gsi_routing_header_errors(vm: KvmVm) -> None:
    assert errno_of(uk_ioctl, vm, uk.KVM_SET_GSI_ROUTING, uk.kvm_irq_routing(nr=0, flags=1)) == errno.EINVAL
    assert errno_of(uk_ioctl, vm, uk.KVM_SET_GSI_ROUTING, uk.kvm_irq_routing(nr=4097)) == errno.EINVAL
    vm.set_gsi_routing([])  # an empty table is valid: it also drops the default irqchip routes
    assert vm.irq_line(INTX_GSI, 1) < 0  # GSI 10 now goes nowhere


# -- INTx: an IOAPIC line through a resampling irqfd --------------------------------------------------------

def test_intx_resample_irqfd_holds_the_ioapic_line_until_eoi(vm: KvmVm) -> None:
    """What is provable without running the vCPU: assert, level delivery, coalescing, deassert on teardown."""
    vcpu = vm.vcpus[0]
    vm.program_ioapic_pin(INTX_GSI, INTX_VECTOR, level=True)  # as a guest's IOAPIC driver would
    with EventFd() as trigger, EventFd() as resample:
        vm.irqfd(trigger.fd, INTX_GSI, resamplefd=resample.fd)  # GSI 10 -> IOAPIC pin 10: a default route
        trigger.signal()
        assert wait_for(lambda: bool(vm.ioapic().irr >> INTX_GSI & 1)), "the line was never asserted"
        io = vm.ioapic()
        assert io.redirtbl[INTX_GSI].fields.remote_irr == 1  # delivered, awaiting EOI
        assert vcpu.wait_irr(INTX_VECTOR)
        assert INTX_VECTOR in vcpu.get_lapic().tmr  # accepted as level-triggered
        assert trigger.count() == 0 and resample.count() == 0  # KVM consumed it; no EOI, so no resample
        trigger.signal()  # the line is already asserted and remote_irr set: nothing new happens
        time.sleep(0.01)
        assert vm.ioapic().irr >> INTX_GSI & 1 and vcpu.irr() == {INTX_VECTOR}
        # Not observable here: the guest's EOI (needs the vCPU to run), which would clear remote_irr,
        # deassert the line and signal `resample`.  Removing the irqfd deasserts the line instead:
        vm.irqfd_deassign(trigger.fd, INTX_GSI)
        io = vm.ioapic()
        assert not io.irr >> INTX_GSI & 1
        assert io.redirtbl[INTX_GSI].fields.remote_irr == 1 and resample.count() == 0


def test_intx_on_a_masked_ioapic_pin_is_held_not_delivered(vm: KvmVm) -> None:
    vm.program_ioapic_pin(INTX_GSI, INTX_VECTOR, level=True, masked=True)
    with EventFd() as trigger, EventFd() as resample:
        vm.irqfd(trigger.fd, INTX_GSI, resamplefd=resample.fd)
        trigger.signal()
        assert wait_for(lambda: bool(vm.ioapic().irr >> INTX_GSI & 1))
        assert vm.ioapic().redirtbl[INTX_GSI].fields.remote_irr == 0
        assert not vm.vcpus[0].irr()
        vm.program_ioapic_pin(INTX_GSI, INTX_VECTOR, level=True, masked=False)  # the guest unmasks the pin
        assert vm.vcpus[0].wait_irr(INTX_VECTOR)  # the held level is delivered now
        vm.irqfd_deassign(trigger.fd, INTX_GSI)


def test_intx_edge_irqfd_on_an_ioapic_pin(vm: KvmVm) -> None:
    vm.program_ioapic_pin(11, 0x71, level=False)
    with EventFd() as trigger:
        vm.irqfd(trigger.fd, 11)  # no resample: assert then deassert, an edge
        trigger.signal()
        assert vm.vcpus[0].wait_irr(0x71)
        assert vm.ioapic().irr >> 11 & 1 == 0 and 0x71 not in vm.vcpus[0].get_lapic().tmr
        vm.irqfd_deassign(trigger.fd, 11)


def test_intx_through_a_pic_route(vm: KvmVm) -> None:
    vm.set_gsi_routing([irqchip_route(5, uk.KVM_IRQCHIP_PIC_MASTER, 5)])
    chip = vm.get_irqchip(uk.KVM_IRQCHIP_PIC_MASTER)
    chip.chip.pic.elcr |= 1 << 5  # pin 5 level-triggered (the chipset's ELCR, as firmware sets it for PCI)
    vm.set_irqchip(chip)
    with EventFd() as trigger, EventFd() as resample:
        vm.irqfd(trigger.fd, 5, resamplefd=resample.fd)
        trigger.signal()
        assert wait_for(lambda: bool(vm.pic().irr >> 5 & 1))  # requested at the (uninitialised) 8259
        vm.irqfd_deassign(trigger.fd, 5)
        assert not vm.pic().irr >> 5 & 1  # a level pin follows the line down (an edge pin would stay latched)


# -- the routing table ----------------------------------------------------------------------------------

def test_routing_table_switches_a_vector_between_kvm_vmm_and_parked(vm: KvmVm) -> None:
    vcpu = vm.vcpus[0]
    before = open_fds()
    handlers = FdHandlers()
    with RoutingTable(vm, handlers) as table:
        route = table.add_msi("v", MsiMessage.for_vector(V1))
        assert route.mode is Mode.KVM and route.gsi == 24 and route.irqfd
        route.eventfd.signal()
        assert vcpu.wait_irr(V1) and handlers.dispatch() == 0  # KVM took it; user space saw nothing
        vcpu.clear_irr()

        table.to_vmm("v")
        route.eventfd.signal()
        time.sleep(0.005)
        assert not vcpu.irr() and route.eventfd.count() == 1  # waiting for the VMM's handler
        assert handlers.dispatch() == 1 and route.delivered == 1
        assert vcpu.irr() == {V1}  # the handler delivered it (KVM_SIGNAL_MSI)
        vcpu.clear_irr()

        table.park("v")
        route.eventfd.signal()
        assert handlers.dispatch() == 0 and route.eventfd.count() == 1 and not vcpu.irr()
        table.to_kvm("v")  # the parked interrupt is injected by the irqfd assign
        assert vcpu.wait_irr(V1)
    assert len(handlers) == 0 and open_fds() == before  # irqfd gone, the owned eventfd closed


def test_routing_table_keeps_default_routes_and_batches(vm: KvmVm) -> None:
    with RoutingTable(vm) as table:
        with table.batch():
            for i in range(64):
                table.add_msi(i, MsiMessage.for_vector(0x30 + i % 0xC0), mode=Mode.PARKED)
        assert table.commits == 1 and len(table.entries()) == 40 + 64
        assert vm.irq_line(INTX_GSI, 1) >= 0  # the default IOAPIC/PIC route of GSI 10 survived
        with pytest.raises(ValueError):
            table.add_msi(3, MsiMessage.for_vector(V1))  # key already routed


def test_routing_table_update_and_borrowed_eventfds(vm: KvmVm) -> None:
    vcpu = vm.vcpus[0]
    with EventFd() as e:
        with RoutingTable(vm) as table:
            table.add_msi("v", MsiMessage.for_vector(V1), e)
            table.update_msi("v", MsiMessage.for_vector(V2))
            e.signal()
            assert vcpu.wait_irr(V2)
        assert not e.closed  # borrowed: the table does not close it
        vm.irqfd(e.fd, 24)  # the table's irqfd is gone: the eventfd can be bound again
        vm.irqfd_deassign(e.fd, 24)


def test_routing_table_close_after_the_vm_is_gone(kvm: Kvm) -> None:
    before = open_fds()
    vm = kvm.create_vm(vcpus=1)
    table = RoutingTable(vm)
    table.add_msi("v", MsiMessage.for_vector(V1))
    vm.close()  # KVM dropped the irqfds with the VM
    table.close()
    assert len(table) == 0 and open_fds() == before


# -- the simulated kernel's devices into the real KVM ----------------------------------------------------

def sim_edu(msix_vectors: int = 0) -> tuple[Any, Any, Any]:
    """(kernel, sim device, opened edu_driver.Device) for a simulated edu."""
    from conftest import EduDevice
    from pyvfio.sim import Kernel
    from test_real_kernel_irqs import open_edu

    k = Kernel()
    sdev = k.add_device("edu", msix_vectors=msix_vectors)
    cm = open_edu(k, EduDevice(sdev.address, int(sdev.group_id), sdev.cdev))
    return k, sdev, cm


def test_sim_edu_msi_reaches_the_kvm_lapic(vm: KvmVm) -> None:
    """Device -> (simulated) vfio-pci -> eventfd -> real KVM irqfd -> real LAPIC IRR."""
    _, _, cm = sim_edu()
    handlers = FdHandlers()
    with cm as dev, RoutingTable(vm, handlers) as table:
        msi = MsiController(VfioIrqs(dev), handlers, table)
        dev.enable_bus_master()
        msi.enable([MsiMessage.for_vector(0x45)])
        try:
            dev.write32(0x60, 0x4)  # edu: raise
            assert vm.vcpus[0].wait_irr(0x45)
            assert handlers.dispatch() == 0  # the VMM's handler never saw it
        finally:
            msi.disable()
        assert len(table) == 0


def test_sim_edu_intx_through_a_resampling_irqfd(vm: KvmVm) -> None:
    """QEMU's vfio_intx_enable_kvm on the simulated edu, into the real IOAPIC.

    The guest EOI cannot happen (the vCPU never runs); the test writes the
    resamplefd itself -- what KVM would do at EOI -- to show vfio-pci's side:
    the device is unmasked and interrupts again.
    """
    _, sdev, cm = sim_edu()
    core = sdev.ops
    vm.program_ioapic_pin(INTX_GSI, INTX_VECTOR, level=True)
    handlers = FdHandlers()
    with cm as dev, RoutingTable(vm, handlers) as table:
        intx = IntxController(VfioIrqs(dev), handlers)
        intx.enable()
        intx.enable_kvm(table, INTX_GSI)
        assert intx.kvm and intx.unmask_fd is not None
        try:
            dev.write32(0x60, 0x2)  # edu asserts INTx
            assert wait_for(lambda: bool(vm.ioapic().irr >> INTX_GSI & 1))
            assert vm.vcpus[0].wait_irr(INTX_VECTOR)
            assert core.irq_ctx[0].masked  # vfio-pci auto-masked it
            assert handlers.dispatch() == 0
            dev.write32(0x64, 0x2)  # the guest's driver acks the device ...
            intx.unmask_fd.signal()  # ... and (stand-in for KVM at EOI) the resamplefd is written
            assert wait_for(lambda: not core.irq_ctx[0].masked), "vfio-pci did not unmask on the resamplefd"
            dev.write32(0x60, 0x2)
            assert wait_for(lambda: bool(core.irq_ctx[0].masked))  # fired (into KVM) and auto-masked again
        finally:
            intx.disable_kvm()
        assert not vm.ioapic().irr >> INTX_GSI & 1  # the resampler's teardown deasserted the line
        assert not intx.kvm and handlers.has_handler(intx.interrupt.fd if intx.interrupt else -1)
        intx.disable()


def test_msix_mask_emulation_with_kvm_routes(vm: KvmVm) -> None:
    """QEMU's MSI-X masking: unmasked -> KVM irqfd; masked -> the VMM's eventfd and the PBA; unmask delivers."""
    _, _, cm = sim_edu(msix_vectors=4)
    vcpu = vm.vcpus[0]
    handlers = FdHandlers()
    with cm as dev, RoutingTable(vm, handlers) as table:
        dev.enable_bus_master()
        msix = MsixController(VfioIrqs(dev), handlers, table)
        for n in range(4):
            msix.set_message(n, MsiMessage.for_vector(0x50 + n))
        msix.enable()
        msix.unmask(1)
        assert table[("msix", 1)].mode is Mode.KVM
        dev.write32(0x68, 1)  # edu (simulated): raise MSI-X vector 1
        assert vcpu.wait_irr(0x51) and handlers.dispatch() == 0  # straight through KVM
        vcpu.clear_irr()

        msix.mask(1)  # the trigger moves to the VMM's eventfd; the KVM route stays
        assert ("msix", 1) in table
        dev.write32(0x68, 1)
        assert handlers.dispatch(1.0) == 1
        assert msix.pending[1] and msix.pba_overlay and not vcpu.irr()  # held in the emulated PBA

        msix.unmask(1)  # back to KVM, and the pending interrupt is delivered (KVM_SIGNAL_MSI)
        assert vcpu.wait_irr(0x51) and not msix.pba_overlay
        vcpu.clear_irr()
        dev.write32(0x68, 1)
        assert vcpu.wait_irr(0x51) and handlers.dispatch() == 0
        msix.disable()
        assert len(table) == 0 and len(handlers) == 0
