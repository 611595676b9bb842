"""MSI-X through SET_IRQS on the simulated kernel: the kernel's rules, then QEMU's policy in MsixController.

QEMU 7.2's edu has no MSI-X, so these run on the simulated kernel only: its
edu with ``msix_vectors`` (register 0x68 raises vector n) and, for the large
table, the generic function with 2,048 entries.  The simulated vfio-pci
supports dynamic MSI-X allocation (no ``NORESIZE``) as Linux 6.5+ does on
capable hosts; the non-resizing behaviour of older kernels is selected by
clearing the model's ``has_dyn_msix``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from edu_driver import Device
from pyvfio.irq.eventfd import EventFdVectors, FdHandlers
from pyvfio.irq.kvm import MsiMessage
from pyvfio.irq.vfio_irqs import INTX, MSIX, MsixController, VfioIrqs
from pyvfio.uapi import vfio as uv
from test_real_kernel_irqs import open_edu

EDU_MSIX_RAISE = 0x68
NVEC = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def sim_device(kind: str = "edu", *, dynamic: bool = True, **options: Any) -> Iterator[tuple[Any, Device]]:
    from pyvfio.sim import Kernel

    k = Kernel()
    sdev = k.add_device(kind, **options)
    sdev.ops.has_dyn_msix = dynamic
    with open_edu(k, EduDevice(sdev.address, int(sdev.group_id), sdev.cdev)) as dev:
        dev.enable_bus_master()
        yield sdev, dev


class Edu:
    """The simulated edu with MSI-X, its SET_IRQS and eventfds for every vector."""

    def __init__(self, sdev: Any, dev: Device) -> None:
        self.sdev, self.dev = sdev, dev
        self.irqs = VfioIrqs(dev)
        self.efds = EventFdVectors(NVEC)

    def raise_vector(self, n: int) -> None:
        self.dev.write32(EDU_MSIX_RAISE, n)

    def fired(self) -> dict[int, int]:
        return self.efds.poll()


@pytest.fixture(params=[True, False], ids=["dynamic", "noresize"])
def edu(request: pytest.FixtureRequest) -> Iterator[Edu]:
    before = open_fds()
    with sim_device("edu", dynamic=request.param, msix_vectors=NVEC) as (sdev, dev):
        e = Edu(sdev, dev)
        try:
            yield e
        finally:
            with contextlib.suppress(OSError):
                e.irqs.disable(MSIX)
            e.efds.close()
    assert open_fds() == before, "descriptors leaked"


def errno_of(fn: Any, *args: Any) -> int:
    with pytest.raises(OSError) as e:
        fn(*args)
    return int(e.value.errno or 0)


# -- the kernel's rules -------------------------------------------------------------------------------

def test_irq_info_reports_the_table_and_resizability(edu: Edu) -> None:
    info = edu.irqs.irq_info(MSIX)
    assert info.count == NVEC and info.eventfd and not info.maskable
    assert info.noresize == (not edu.sdev.ops.has_dyn_msix)


def test_enable_with_fd_minus_one_puts_the_device_in_msix_mode_with_no_vector(edu: Edu) -> None:
    edu.irqs.set_eventfds(MSIX, 0, [-1])
    assert edu.sdev.ops.pci.msix_enabled()
    edu.raise_vector(0)
    assert edu.fired() == {}
    assert errno_of(edu.irqs.set_eventfds, INTX, 0, [edu.efds[0].fd]) == errno.EINVAL  # MSI-X is the active type


def test_all_vectors_in_one_call(edu: Edu) -> None:
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds())
    for n in range(NVEC):
        edu.raise_vector(n)
    assert edu.fired() == {n: 1 for n in range(NVEC)}


def test_growth_beyond_the_enabled_range(edu: Edu) -> None:
    """Dynamic MSI-X: a vector above the enabled range is added alone.  Without it: EINVAL until re-enabled."""
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 2))
    if edu.sdev.ops.has_dyn_msix:
        edu.irqs.set_eventfds(MSIX, 5, [edu.efds[5].fd])
    else:
        assert errno_of(edu.irqs.set_eventfds, MSIX, 5, [edu.efds[5].fd]) == errno.EINVAL
        edu.irqs.disable(MSIX)  # what QEMU does: disable, then enable everything up to the new vector
        edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 2) + [-1, -1, -1, edu.efds[5].fd])
    for n in (0, 1, 5):
        edu.raise_vector(n)
    assert edu.fired() == {0: 1, 1: 1, 5: 1}


def test_fd_minus_one_frees_one_vector_and_the_rest_keep_working(edu: Edu) -> None:
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 4))
    edu.irqs.set_eventfds(MSIX, 2, [-1])
    for n in range(4):
        edu.raise_vector(n)
    assert edu.fired() == {0: 1, 1: 1, 3: 1}
    edu.irqs.set_eventfds(MSIX, 2, [edu.efds[2].fd])  # still allocated: wiring it again works on both kinds
    # free_irq left the vector masked at the device, whose PBA held the raise: unmasking sends it now
    assert edu.fired() == {2: 1}
    edu.raise_vector(2)
    assert edu.fired() == {2: 1}


def test_count_zero_disables_the_index(edu: Edu) -> None:
    assert errno_of(edu.irqs.disable, MSIX) == errno.EINVAL  # not enabled
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 2))
    edu.irqs.disable(MSIX)
    assert not edu.sdev.ops.pci.msix_enabled()
    edu.raise_vector(0)
    assert edu.fired() == {}
    assert errno_of(edu.irqs.disable, MSIX) == errno.EINVAL
    edu.irqs.set_eventfds(INTX, 0, [edu.efds[0].fd])  # the device is free for INTx again
    edu.irqs.disable(INTX)


def test_beyond_the_table_is_einval(edu: Edu) -> None:
    assert errno_of(edu.irqs.set_eventfds, MSIX, NVEC - 1, edu.efds.fds(0, 2)) == errno.EINVAL
    assert errno_of(edu.irqs.set_eventfds, MSIX, NVEC, [-1]) == errno.EINVAL


def test_a_failing_block_rolls_back_its_own_vectors(edu: Edu) -> None:
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 4))
    r, w = os.pipe()
    try:
        assert errno_of(edu.irqs.set_eventfds, MSIX, 1, [edu.efds[1].fd, r]) == errno.EINVAL  # r: not an eventfd
    finally:
        os.close(r)
        os.close(w)
    for n in range(4):
        edu.raise_vector(n)
    assert edu.fired() == {0: 1, 3: 1}  # this call's vectors (1, 2) were freed; the others kept theirs


@pytest.mark.parametrize("action", [uv.VFIO_IRQ_SET_ACTION_MASK, uv.VFIO_IRQ_SET_ACTION_UNMASK],
                         ids=["mask", "unmask"])
def test_mask_and_unmask_are_enotty(edu: Edu, action: int) -> None:
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 1))
    assert errno_of(edu.irqs.set_irqs, MSIX, uv.VFIO_IRQ_SET_DATA_NONE | action, 0, 1) == errno.ENOTTY


def test_loopback_bool_picks_vectors(edu: Edu) -> None:
    edu.irqs.set_eventfds(MSIX, 0, edu.efds.fds(0, 4))
    edu.irqs.trigger_bool(MSIX, 0, [True, False, True, False])
    assert edu.fired() == {0: 1, 2: 1}
    edu.irqs.trigger(MSIX, 1, 3)
    assert edu.fired() == {1: 1, 2: 1, 3: 1}


def test_set_irqs_errors_name_the_request(edu: Edu) -> None:
    with pytest.raises(OSError) as e:
        edu.irqs.set_eventfds(MSIX, NVEC, [-1])
    assert "VFIO_DEVICE_SET_IRQS" in str(e.value) and "MSI-X" in str(e.value) and f"start {NVEC}" in str(e.value)


# -- QEMU's policy: MsixController ----------------------------------------------------------------------

def controller(edu: Edu, **kw: Any) -> tuple[MsixController, FdHandlers, list[int]]:
    handlers = FdHandlers()
    delivered: list[int] = []
    c = MsixController(edu.irqs, handlers, deliver=lambda nr, msg: delivered.append(nr), **kw)
    for n in range(NVEC):
        c.set_message(n, MsiMessage.for_vector(0x40 + n))
    return c, handlers, delivered


def test_controller_enable_uses_no_vector_until_unmasked(edu: Edu) -> None:
    c, handlers, delivered = controller(edu)
    assert c.noresize == (not edu.sdev.ops.has_dyn_msix) and c.entries == NVEC
    c.enable()
    assert edu.sdev.ops.pci.msix_enabled() and c.nr_vectors == 0 and not c.vectors
    edu.raise_vector(0)
    assert handlers.dispatch() == 0
    c.disable()


def test_controller_growth_costs(edu: Edu) -> None:
    """Unmasking vector 3 first: NORESIZE needs disable + one enable of 0..3; dynamic needs one call."""
    c, handlers, delivered = controller(edu)
    c.enable()
    calls = edu.irqs.calls
    c.unmask(3)
    assert edu.irqs.calls - calls == (2 if c.noresize else 1)
    assert c.nr_vectors == 4 and sorted(c.vectors) == [3]
    c.unmask(1)  # inside the enabled range: one call either way
    assert edu.irqs.calls - calls == (3 if c.noresize else 2)
    c.unmask(6)  # growth again: the earlier vectors survive the re-enable
    for n in (1, 3, 6):
        edu.raise_vector(n)
    assert handlers.dispatch() == 3 and sorted(delivered) == [1, 3, 6]
    c.disable()


def test_controller_masked_vector_sets_the_pba_and_unmask_delivers(edu: Edu) -> None:
    c, handlers, delivered = controller(edu)
    c.enable()
    c.unmask(2)
    c.mask(2)
    assert not c.pba_overlay and c.pba() == bytes(8)
    edu.raise_vector(2)
    assert handlers.dispatch() == 1
    assert delivered == [] and c.pending[2] and c.pba_overlay
    assert c.pba() == (1 << 2).to_bytes(8, "little")
    c.unmask(2)  # the MSI-X core delivers what the PBA held
    assert delivered == [2] and not c.pending[2] and not c.pba_overlay
    edu.raise_vector(2)
    assert handlers.dispatch() == 1 and delivered == [2, 2]
    c.disable()


def test_controller_unmask_before_enable_and_message_changes(edu: Edu) -> None:
    c, handlers, delivered = controller(edu)
    c.unmask(1)  # the guest unmasked before setting MSI-X Enable
    assert not c.vectors
    c.enable()
    assert sorted(c.vectors) == [1]
    c.set_message(1, MsiMessage.for_vector(0x99))
    assert c.vectors[1].msg == MsiMessage.for_vector(0x99)
    with pytest.raises(IndexError):
        c.unmask(NVEC)
    c.disable()
    assert not c.enabled and not c.vectors


def test_controller_release_vector(edu: Edu) -> None:
    c, handlers, delivered = controller(edu)
    c.enable()
    c.unmask(0)
    c.unmask(1)
    c.release_vector(0)
    edu.raise_vector(0)
    edu.raise_vector(1)
    assert handlers.dispatch() == 1 and delivered == [1]
    c.disable()
    assert len(handlers) == 0


def test_controller_needs_a_message_and_an_msix_capability() -> None:
    with sim_device("edu") as (sdev, dev):
        with pytest.raises(ValueError, match="no MSI-X"):
            MsixController(VfioIrqs(dev), FdHandlers())
    with sim_device("edu", msix_vectors=2) as (sdev, dev):
        c = MsixController(VfioIrqs(dev), FdHandlers())
        c.enable()
        with pytest.raises(ValueError, match="no message"):
            c.unmask(0)
        c.disable()


def test_2048_vectors_enable_signal_disable() -> None:
    bars = [{"index": 0, "size": 0x1000}, {"index": 2, "size": 0x10000}]
    with sim_device("pci", bars=bars, msix=2048, msix_bar=2, msix_table_offset=0, msix_pba_offset=0x8000) \
            as (sdev, dev), EventFdVectors(2048) as efds:
        irqs = VfioIrqs(dev)
        assert irqs.irq_info(MSIX).count == 2048
        irqs.set_eventfds(MSIX, 0, efds.fds())
        for n in (0, 1023, 2047):
            sdev.ops.pci.raise_irq("msix", n)
        assert efds.poll() == {0: 1, 1023: 1, 2047: 1}
        irqs.disable(MSIX)
        sdev.ops.pci.raise_irq("msix", 5)
        assert efds.poll() == {}



