"""RoutingTable without a VM, and controller policy checked against a recording fake kernel.

The fake kernel answers ``VFIO_DEVICE_SET_IRQS``/``GET_IRQ_INFO`` from a
script, so the tests can see exactly which calls QEMU's policy makes and in
what order -- and can give the positive "fewer vectors" answer older kernels
gave for MSI, which neither the simulated nor a current kernel produces.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import pytest

from pyvfio.errors import VfioError
from pyvfio.irq.eventfd import FdHandlers
from pyvfio.irq.kvm import MsiMessage
from pyvfio.irq.routing import Mode, RoutingTable
from pyvfio.irq.vfio_irqs import INTX, MSI, MSIX, IntxController, MsiController, MsixController, VfioIrqs
from pyvfio.uapi import kvm as uk
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import flex_array

TRIGGER_EVENTFD = uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_TRIGGER
TRIGGER_NONE = uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds_checked() -> Iterator[None]:
    before = open_fds()
    yield
    assert open_fds() == before, "descriptors leaked"


@dataclass
class FakeKernel:
    """Records SET_IRQS as (index, flags, start, count, fds); answers from ``results`` or ``errors``."""

    counts: dict[int, int] = field(default_factory=lambda: {INTX: 1, MSI: 4, MSIX: 16})
    noresize: bool = True
    calls: list[tuple[int, int, int, int, list[int]]] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    errors: list[Optional[int]] = field(default_factory=list)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        if request == uv.VFIO_DEVICE_GET_IRQ_INFO:
            arg.count = self.counts.get(arg.index, 0)
            arg.flags = uv.VFIO_IRQ_INFO_EVENTFD | (uv.VFIO_IRQ_INFO_NORESIZE if self.noresize else 0)
            return 0
        assert request == uv.VFIO_DEVICE_SET_IRQS
        fds: list[int] = []
        if arg.flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
            fds = list((ctypes.c_int32 * arg.count).from_buffer(flex_array(arg)))
        self.calls.append((arg.index, arg.flags, arg.start, arg.count, fds))
        err = self.errors.pop(0) if self.errors else None
        if err:
            raise VfioError(err, "VFIO_DEVICE_SET_IRQS", "scripted")
        return self.results.pop(0) if self.results else 0


@dataclass
class FakeDevice:
    kernel: FakeKernel
    fd: int = 99


# -- RoutingTable with no VM --------------------------------------------------------------------------------

def test_table_without_a_vm_tracks_vectors_and_vmm_handlers(fds_checked: None) -> None:
    handlers = FdHandlers()
    seen: list[int] = []
    with RoutingTable(None, handlers) as table:
        r0 = table.add_msi("a", MsiMessage.for_vector(0x41), mode=Mode.VMM, handler=seen.append)
        r1 = table.add_msi("b", MsiMessage.for_vector(0x42), mode=Mode.PARKED)
        assert (r0.gsi, r1.gsi) == (24, 25) and len(table) == 2 and "a" in table
        assert [e.type for e in table.entries()][-2:] == [uk.KVM_IRQ_ROUTING_MSI] * 2
        assert len(table.entries()) == 42  # the 40 default irqchip routes are kept
        r0.eventfd.signal(3)
        r1.eventfd.signal()
        assert handlers.dispatch() == 1 and seen == [3] and r0.delivered == 1
        assert r1.eventfd.count() == 1  # parked: nobody consumes it
        table.to_vmm("b", handler=seen.append)
        assert handlers.dispatch() == 1 and seen == [3, 1]  # the parked signal is found
        table.park("a")
        r0.eventfd.signal()
        assert handlers.dispatch() == 0 and r0.eventfd.count() == 1
        with pytest.raises(ValueError, match="no VM"):
            table.to_kvm("a")
        assert r0.mode is Mode.PARKED  # a refused move changes nothing
        with pytest.raises(ValueError, match="needs an MSI route and a VM"):
            table.deliver("a")
        table.remove("a")
        assert r0.eventfd.closed and "a" not in table
        assert table.commits == 0  # no VM: nothing is submitted
        assert "vectors=1" in repr(table)
    assert len(handlers) == 0 and r1.eventfd.closed


def test_table_errors(fds_checked: None) -> None:
    with RoutingTable(None, keep_default_routes=False) as table:
        table.add_msi("a", MsiMessage.for_vector(0x41), mode=Mode.PARKED)
        with pytest.raises(ValueError, match="already routed"):
            table.add_msi("a", MsiMessage.for_vector(0x41), mode=Mode.PARKED)
        with pytest.raises(ValueError, match="GSI 24 is already in use"):
            table.add_msi("b", MsiMessage.for_vector(0x41), mode=Mode.PARKED, gsi=24)
        with pytest.raises(KeyError, match="no vector 'zz'"):
            table["zz"]
        intx = table.add_intx("intx", 10, mode=Mode.PARKED)
        assert not intx.default_route  # defaults not kept: the table routes GSI 10 itself
        with pytest.raises(ValueError, match="not an MSI route"):
            table.update_msi("intx", MsiMessage.for_vector(0x41))
        pins = [(e.gsi, e.u.irqchip.irqchip, e.u.irqchip.pin) for e in table.entries()
                if e.type == uk.KVM_IRQ_ROUTING_IRQCHIP]
        assert pins == [(10, uk.KVM_IRQCHIP_IOAPIC, 10)]
        with pytest.raises(ValueError, match="GSI 10 is already in use"):
            table.add_intx("intx2", 10, mode=Mode.PARKED)


def test_intx_on_a_default_route_adds_no_entry(fds_checked: None) -> None:
    with RoutingTable(None) as table:
        table.add_intx("intx", 10, mode=Mode.PARKED)
        assert table["intx"].default_route and len(table.entries()) == 40
        table.add_intx("pic", 40, pin=(uk.KVM_IRQCHIP_PIC_MASTER, 3), mode=Mode.PARKED)
        assert len(table.entries()) == 41


def test_msi_messages() -> None:
    msg = MsiMessage.for_vector(0x41, dest_id=3)
    assert (msg.address, msg.data, msg.vector, msg.dest_id) == (0xFEE03000, 0x41, 0x41, 3)
    assert MsiMessage.for_vector(0x41, logical=True).address == 0xFEE00004
    for bad in (15, 256):
        with pytest.raises(ValueError):
            MsiMessage.for_vector(bad)
    with pytest.raises(ValueError):
        MsiMessage.for_vector(0x41, dest_id=256)


# -- controllers against the recording kernel ------------------------------------------------------------

def test_msi_retries_with_the_count_an_older_kernel_offers(fds_checked: None) -> None:
    k = FakeKernel(results=[2])  # "only 2 of 4": the positive return of pre-5.x kernels
    handlers = FdHandlers()
    msi = MsiController(VfioIrqs(FakeDevice(k)), handlers)
    assert msi.enable([MsiMessage.for_vector(0x40 + i) for i in range(4)]) == 2
    assert [(c[0], c[1], c[2], c[3], len(c[4])) for c in k.calls] == [(MSI, TRIGGER_EVENTFD, 0, 4, 4),
                                                                     (MSI, TRIGGER_EVENTFD, 0, 2, 2)]
    assert sorted(msi.vectors) == [0, 1] and len(handlers) == 2
    msi.update(1, MsiMessage.for_vector(0x77))
    assert msi.vectors[1].msg.vector == 0x77
    msi.disable()
    assert k.calls[-1][:4] == (MSI, TRIGGER_NONE, 0, 0) and len(handlers) == 0


def test_msi_enable_failure_leaves_nothing_behind(fds_checked: None) -> None:
    k = FakeKernel(errors=[errno.EINVAL])
    handlers = FdHandlers()
    msi = MsiController(VfioIrqs(FakeDevice(k)), handlers)
    with pytest.raises(OSError) as e:
        msi.enable([MsiMessage.for_vector(0x40)])
    assert e.value.errno == errno.EINVAL and "MSI" in str(e.value)
    assert not msi.vectors and len(handlers) == 0
    assert msi.enable([MsiMessage.for_vector(0x40)]) == 1  # and it can be enabled again
    with pytest.raises(RuntimeError, match="already enabled"):
        msi.enable([MsiMessage.for_vector(0x40)])
    msi.disable()


def test_msix_noresize_growth_is_disable_then_one_enable(fds_checked: None) -> None:
    k = FakeKernel(noresize=True)
    handlers = FdHandlers()
    c = MsixController(VfioIrqs(FakeDevice(k)), handlers)
    for n in range(16):
        c.set_message(n, MsiMessage.for_vector(0x40 + n))
    c.enable()
    assert k.calls[-1] == (MSIX, TRIGGER_EVENTFD, 0, 1, [-1])  # MSI-X on, no vector usable
    c.unmask(2)
    c.unmask(5)
    disable, enable = k.calls[-2:]
    assert disable[:4] == (MSIX, TRIGGER_NONE, 0, 0)
    assert enable[:4] == (MSIX, TRIGGER_EVENTFD, 0, 6)
    assert enable[4][:2] == [-1, -1] and enable[4][3:5] == [-1, -1]  # unused entries get -1
    assert enable[4][2] == c.vectors[2].interrupt.fd and enable[4][5] == c.vectors[5].interrupt.fd
    c.mask(5)  # no KVM route: the trigger already is the VMM's eventfd, nothing to switch
    assert k.calls[-1] is enable
    c.disable()
    assert k.calls[-1][:4] == (MSIX, TRIGGER_NONE, 0, 0) and len(handlers) == 0


def test_msix_dynamic_growth_is_one_call_per_vector(fds_checked: None) -> None:
    k = FakeKernel(noresize=False)
    c = MsixController(VfioIrqs(FakeDevice(k)), FdHandlers())
    assert not c.noresize
    c.set_message(9, MsiMessage.for_vector(0x49))
    c.enable()
    c.unmask(9)
    assert k.calls[-1] == (MSIX, TRIGGER_EVENTFD, 9, 1, [c.vectors[9].interrupt.fd])
    assert c.nr_vectors == 10 and len(k.calls) == 2
    assert "used=[9]" in repr(c)
    c.disable()


def test_intx_controller_order_and_misuse(fds_checked: None) -> None:
    k = FakeKernel()
    handlers = FdHandlers()
    levels: list[bool] = []
    intx = IntxController(VfioIrqs(FakeDevice(k)), handlers, set_level=levels.append)
    intx.disable()  # not enabled: nothing to do
    with pytest.raises(RuntimeError):
        intx.enable_kvm(RoutingTable(None), 10)
    intx.enable()
    with pytest.raises(RuntimeError):
        intx.enable()
    assert intx.interrupt is not None
    intx.interrupt.signal()
    assert handlers.dispatch() == 1 and intx.pending and levels == [True]
    intx.eoi()
    assert k.calls[-1][:2] == (INTX, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_UNMASK)
    intx.eoi()  # nothing pending: no second UNMASK
    assert len(k.calls) == 2 and levels == [True, False]
    assert "kvm=False" in repr(intx)
    intx.disable()
    assert k.calls[-1][:4] == (INTX, TRIGGER_NONE, 0, 0) and len(handlers) == 0


def test_eventfd_owned_by_a_removed_route_is_closed_even_when_commit_fails(fds_checked: None) -> None:
    class Boom:
        def set_gsi_routing(self, entries: Any) -> None:
            raise VfioError(errno.EINVAL, "KVM_SET_GSI_ROUTING", "scripted")

        @property
        def fd(self) -> int:
            return 1

    table = RoutingTable(Boom())  # type: ignore[arg-type]
    with pytest.raises(OSError):
        table.add_msi("a", MsiMessage.for_vector(0x41), mode=Mode.PARKED)
    assert "a" not in table and len(table) == 0
    table.close()

