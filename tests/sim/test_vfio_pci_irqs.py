"""VFIO_DEVICE_SET_IRQS on the simulated vfio-pci: SEMANTICS 3 (validation, INTx, MSI, MSI-X, ERR, REQ) and 5.1.

The interrupts come from the edu device (register 0x60 raises, 0x64
acknowledges; MSI when its capability is enabled, INTx otherwise) and are
observed on real eventfds.  Each rule has a test naming it; descriptor counts
(``/proc/self/fd``) check that every eventfd reference the kernel took is
dropped again.
"""

from __future__ import annotations

import errno
import os
from typing import Iterator

import pytest

import pyvfio.sim
from pyvfio.uapi import vfio as uv
from test_vfio_pci_fixtures import (
    BOOL, ERR, EVENTFD, INTX, MASK, MSI, MSIX, NONE, REQ, TRIGGER, UNMASK, PciDev, expect, fd_count,
    kernel_fixture, new_eventfd, open_dev, take, wait,
)

EDU_RAISE, EDU_ACK, EDU_MSIX_RAISE = 0x60, 0x64, 0x68


@pytest.fixture
def k() -> Iterator[pyvfio.sim.Kernel]:
    yield from kernel_fixture()


@pytest.fixture
def edu(k: pyvfio.sim.Kernel) -> Iterator[PciDev]:
    d = open_dev(k)
    yield d
    d.close()


@pytest.fixture
def efd() -> Iterator[int]:
    fd = new_eventfd()
    yield fd
    os.close(fd)


def intx_on(d: PciDev, fd: int) -> None:
    d.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [fd])


# =====================================================================================================
# Generic validation (vfio_set_irqs_validate_and_prepare)
# =====================================================================================================
@pytest.mark.parametrize("index,flags,start,count,argsz", [
    (INTX, TRIGGER | NONE, 0, 1, 19),
    (5, TRIGGER | NONE, 0, 1, None),
    (0xFFFFFFFF, TRIGGER | NONE, 0, 1, None),
    (MSI, TRIGGER | NONE, 1, 0xFFFFFFFE, None),
    (INTX, TRIGGER | NONE | 0x40, 0, 1, None),
    (INTX, TRIGGER | NONE, 1, 0, None),
    (INTX, TRIGGER | NONE, 0, 2, None),
    (MSI, TRIGGER | NONE, 0, 2, None),
    (MSIX, TRIGGER | NONE, 0, 0, None),
    (ERR, TRIGGER | NONE, 0, 1, None),
    (INTX, TRIGGER, 0, 1, None),
    (INTX, TRIGGER | NONE | BOOL, 0, 1, None),
    (INTX, TRIGGER | BOOL | EVENTFD, 0, 1, None),
    (INTX, TRIGGER | EVENTFD, 0, 1, 20),
    (INTX, TRIGGER | BOOL, 0, 1, 20),
    (MSI, TRIGGER | EVENTFD, 0, 1, 23),
], ids=["argsz_lt_20", "index_5", "index_max", "count_overflow", "unknown_flag", "start_past_intx",
        "count_past_intx", "count_past_msi", "msix_absent", "err_signal_unset", "no_data_type", "two_data_types",
        "three_data_types", "eventfd_no_room", "bool_no_room", "eventfd_3_bytes"])
def test_set_irqs_validate_einval(edu: PciDev, index: int, flags: int, start: int, count: int,
                                  argsz: int | None) -> None:
    """SEMANTICS 3 SET_IRQS validation: argsz < 20, index >= 5, count >= U32_MAX - start, unknown flags,
    start/start+count beyond the index's count (0 for absent MSI-X), not exactly one DATA type, argsz too
    small for the data, DATA_NONE on an ERR index with no eventfd set (measured on 7.3.4) -> EINVAL."""
    data = [0] * count if flags & (EVENTFD | BOOL) and count < 16 else None
    expect(errno.EINVAL, edu.set_irqs, index, flags, start, count, data, argsz)


@pytest.mark.parametrize("flags", [NONE, NONE | MASK | UNMASK, NONE | MASK | TRIGGER, NONE | UNMASK | TRIGGER,
                                   NONE | MASK | UNMASK | TRIGGER],
                         ids=["no_action", "mask_unmask", "mask_trigger", "unmask_trigger", "all_actions"])
def test_set_irqs_not_one_action_enotty(edu: PciDev, flags: int) -> None:
    """SEMANTICS 3 SET_IRQS: anything but exactly one ACTION matches no handler -> ENOTTY."""
    expect(errno.ENOTTY, edu.set_irqs, INTX, flags, 0, 1)


def test_set_irqs_no_pin_einval(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 SET_IRQS: on a function without INTx the index has 0 vectors: even a disable -> EINVAL."""
    d = open_dev(k, "pci", irq_pin=0)
    expect(errno.EINVAL, d.set_irqs, INTX, TRIGGER | NONE, 0, 0)
    d.close()


def test_set_irqs_data_not_readable_efault(edu: PciDev) -> None:
    """vfio_pci_ioctl_set_irqs: argsz promises data the caller did not pass -> EFAULT (memdup_user)."""
    expect(errno.EFAULT, edu.set_irqs, INTX, TRIGGER | EVENTFD, 0, 1, [], 24)


# =====================================================================================================
# INTx
# =====================================================================================================
def test_intx_fires_and_stays_masked_until_unmask(edu: PciDev, efd: int) -> None:
    """SEMANTICS 5.1 / 3 INTx: the handler masks and signals once; nothing more until UNMASK; after the
    device deasserts, UNMASK re-arms and the next assertion signals again."""
    intx_on(edu, efd)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1
    edu.bar_w(EDU_RAISE, 2)  # line already asserted and masked
    assert take(efd) == 0
    edu.bar_w(EDU_ACK, 3)
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    assert take(efd) == 0
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1


def test_intx_unmask_while_asserted_resignals(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx UNMASK: if the line is still asserted, it stays masked and the eventfd is signalled again."""
    intx_on(edu, efd)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    assert take(efd) == 1
    edu.set_irqs(INTX, UNMASK | BOOL, 0, 1, [1])
    assert take(efd) == 1
    edu.set_irqs(INTX, UNMASK | BOOL, 0, 1, [0])  # BOOL 0: no action
    assert take(efd) == 0


def test_intx_already_asserted_fires_on_enable(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx: a level asserted before SET_IRQS is delivered as soon as the handler is installed."""
    edu.bar_w(EDU_RAISE, 1)
    intx_on(edu, efd)
    assert take(efd) == 1


def test_intx_mask_action(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx MASK: NONE or BOOL(1) masks; a masked line does not signal; BOOL(0) does nothing."""
    intx_on(edu, efd)
    edu.set_irqs(INTX, MASK | BOOL, 0, 1, [0])
    edu.set_irqs(INTX, MASK | NONE, 0, 1)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 0
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    assert take(efd) == 1  # still asserted: re-sent on unmask
    edu.set_irqs(INTX, MASK | BOOL, 0, 1, [1])
    edu.set_irqs(INTX, MASK | BOOL, 0, 1, [1])  # masking twice is fine


def test_intx_loopback(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx TRIGGER + NONE/BOOL(1): loopback signal; BOOL(0) does nothing."""
    intx_on(edu, efd)
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 1)
    assert take(efd) == 1
    edu.set_irqs(INTX, TRIGGER | BOOL, 0, 1, [1])
    assert take(efd) == 1
    edu.set_irqs(INTX, TRIGGER | BOOL, 0, 1, [0])
    assert take(efd) == 0


def test_intx_replace_and_free_trigger(edu: PciDev) -> None:
    """SEMANTICS 3 INTx: a second eventfd replaces the first (its reference dropped); fd -1 frees the trigger
    but INTx stays the active type (MSI then -> EINVAL); count 0 + NONE disables."""
    a, b = new_eventfd(), new_eventfd()
    base = fd_count()
    intx_on(edu, a)
    intx_on(edu, b)
    assert fd_count() == base + 1
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 1)
    assert (take(a), take(b)) == (0, 1)
    edu.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [-1])
    assert fd_count() == base
    expect(errno.EINVAL, edu.set_irqs, MSI, TRIGGER | EVENTFD, 0, 1, [a])
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 0)
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [a])
    edu.set_irqs(MSI, TRIGGER | NONE, 0, 0)
    assert fd_count() == base
    for _fd in (a, b):
        os.close(_fd)


def test_intx_enable_with_minus_one_enables_without_trigger(edu: PciDev, efd: int) -> None:
    """vfio_pci_set_intx_trigger ([M] checked): EVENTFD -1 while nothing is active still enables INTx, with no
    trigger; a later eventfd is installed as the trigger."""
    edu.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [-1])
    edu.bar_w(EDU_RAISE, 1)
    expect(errno.EINVAL, edu.set_irqs, MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    intx_on(edu, efd)
    edu.bar_w(EDU_ACK, 1)
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1


@pytest.mark.parametrize("flags,count,data", [
    (TRIGGER | NONE, 1, None), (TRIGGER | NONE, 0, None), (TRIGGER | BOOL, 1, [1]),
    (MASK | NONE, 1, None), (UNMASK | NONE, 1, None), (UNMASK | EVENTFD, 1, [-1]),
], ids=["loopback", "disable", "loopback_bool", "mask", "unmask", "unmask_eventfd"])
def test_intx_actions_without_intx_einval(edu: PciDev, flags: int, count: int, data: list[int] | None) -> None:
    """SEMANTICS 3 INTx: loopback, disable, MASK and UNMASK need INTx enabled -> EINVAL."""
    expect(errno.EINVAL, edu.set_irqs, INTX, flags, 0, count, data)


def test_intx_mask_eventfd_enotty(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx MASK + EVENTFD -> ENOTTY (not implemented by vfio-pci)."""
    intx_on(edu, efd)
    expect(errno.ENOTTY, edu.set_irqs, INTX, MASK | EVENTFD, 0, 1, [efd])


def test_intx_bad_eventfds(edu: PciDev) -> None:
    """eventfd_ctx_fdget: a closed fd -> EBADF, a descriptor that is not an eventfd -> EINVAL; nothing leaks."""
    base = fd_count()
    expect(errno.EBADF, edu.set_irqs, INTX, TRIGGER | EVENTFD, 0, 1, [9999])
    r, w = os.pipe()
    expect(errno.EINVAL, edu.set_irqs, INTX, TRIGGER | EVENTFD, 0, 1, [r])
    for _fd in (r, w):
        os.close(_fd)
    assert fd_count() == base
    efd = new_eventfd()
    intx_on(edu, efd)  # INTx never became active above
    os.close(efd)


def test_intx_while_msi_einval(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 INTx: another interrupt type active -> EINVAL."""
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    expect(errno.EINVAL, intx_on, edu, efd)


def test_intx_virtual_disable_masks(edu: PciDev, efd: int) -> None:
    """SEMANTICS 4.1/5.1: the virtual COMMAND.INTX_DISABLE masks INTx and suppresses signalling (even loopback);
    clearing it unmasks, re-sending a still-asserted line."""
    intx_on(edu, efd)
    edu.cfg_write(4, 2, edu.cfg(4, 2) | 0x400)
    edu.bar_w(EDU_RAISE, 1)
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 1)
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)  # does not override the user's INTX_DISABLE
    assert take(efd) == 0
    edu.cfg_write(4, 2, edu.cfg(4, 2) & ~0x400)
    assert take(efd) == 1


def test_intx_enabled_while_virtually_disabled_starts_masked(edu: PciDev, efd: int) -> None:
    """vfio_intx_enable: the initial mask state is the virtual INTX_DISABLE bit."""
    edu.cfg_write(4, 2, edu.cfg(4, 2) | 0x400)
    intx_on(edu, efd)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 0
    edu.cfg_write(4, 2, edu.cfg(4, 2) & ~0x400)
    assert take(efd) == 1


def test_intx_unmask_eventfd_is_resample_target(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3/5.1 INTx UNMASK + EVENTFD: a virqfd; each write to it unmasks (KVM's resamplefd on EOI),
    re-signalling if the line is still asserted; fd -1 removes it and drops the reference."""
    base = fd_count()
    unmask = new_eventfd()
    intx_on(edu, efd)
    edu.set_irqs(INTX, UNMASK | EVENTFD, 0, 1, [unmask])
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1
    os.eventfd_write(unmask, 1)  # "EOI" while the device still asserts
    assert wait(efd) == 1
    edu.bar_w(EDU_ACK, 1)
    os.eventfd_write(unmask, 1)  # EOI after the device deasserted: unmasked
    edu.bar_w(EDU_RAISE, 1)
    assert wait(efd) == 1
    expect(errno.EBUSY, edu.set_irqs, INTX, UNMASK | EVENTFD, 0, 1, [unmask])
    edu.set_irqs(INTX, UNMASK | EVENTFD, 0, 1, [-1])
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 0)
    os.close(unmask)
    assert fd_count() == base


def test_intx_unmask_eventfd_pending_on_install(edu: PciDev, efd: int) -> None:
    """vfio_virqfd_enable: an unmask eventfd that already counts an event is processed at once."""
    intx_on(edu, efd)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 1
    unmask = new_eventfd()
    os.eventfd_write(unmask, 1)
    edu.set_irqs(INTX, UNMASK | EVENTFD, 0, 1, [unmask])
    assert take(efd) == 1  # still asserted: unmask re-sent the interrupt
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 0)
    os.close(unmask)


def test_intx_unmask_eventfd_bad_fd(edu: PciDev, efd: int) -> None:
    """vfio_virqfd_enable: a closed descriptor -> EBADF, a non-eventfd -> EINVAL."""
    intx_on(edu, efd)
    expect(errno.EBADF, edu.set_irqs, INTX, UNMASK | EVENTFD, 0, 1, [9999])
    r, w = os.pipe()
    expect(errno.EINVAL, edu.set_irqs, INTX, UNMASK | EVENTFD, 0, 1, [w])
    for _fd in (r, w):
        os.close(_fd)


# =====================================================================================================
# MSI
# =====================================================================================================
def test_msi_fires_on_raise(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 MSI TRIGGER + EVENTFD: enables MSI; the edu raise sends an MSI, signalling the eventfd.
    Every raise is a new message (no auto-mask)."""
    edu.enable_bus_master()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    edu.bar_w(EDU_RAISE, 1)
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 2


def test_msi_needs_bus_master(edu: PciDev, efd: int) -> None:
    """PCI: an MSI is a memory write, so without COMMAND.MASTER the device sends nothing."""
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    edu.bar_w(EDU_RAISE, 1)
    assert take(efd) == 0


@pytest.mark.parametrize("action", [MASK, UNMASK], ids=["mask", "unmask"])
def test_msi_mask_unmask_enotty(edu: PciDev, efd: int, action: int) -> None:
    """SEMANTICS 3 / pitfall 6: MSI and MSI-X MASK/UNMASK -> ENOTTY."""
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    expect(errno.ENOTTY, edu.set_irqs, MSI, action | NONE, 0, 1)


def test_msi_loopback_and_disable(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 MSI: NONE/BOOL loopback signals vectors with a trigger; count 0 + NONE disables and releases."""
    base = fd_count()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    assert fd_count() == base + 1
    edu.set_irqs(MSI, TRIGGER | NONE, 0, 1)
    edu.set_irqs(MSI, TRIGGER | BOOL, 0, 1, [1])
    edu.set_irqs(MSI, TRIGGER | BOOL, 0, 1, [0])
    assert take(efd) == 2
    edu.set_irqs(MSI, TRIGGER | NONE, 0, 0)
    assert fd_count() == base
    expect(errno.EINVAL, edu.set_irqs, MSI, TRIGGER | NONE, 0, 1)  # no longer enabled


@pytest.mark.parametrize("flags,count", [(TRIGGER | NONE, 1), (TRIGGER | NONE, 0), (TRIGGER | BOOL, 1)],
                         ids=["loopback", "disable", "loopback_bool"])
def test_msi_not_enabled_einval(edu: PciDev, flags: int, count: int) -> None:
    """SEMANTICS 3 MSI: loopback or disable while MSI is not the active type -> EINVAL."""
    expect(errno.EINVAL, edu.set_irqs, MSI, flags, 0, count, [1] * count if flags & BOOL else None)


def test_msi_while_intx_einval(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 MSI: another type active -> EINVAL."""
    intx_on(edu, efd)
    expect(errno.EINVAL, edu.set_irqs, MSI, TRIGGER | EVENTFD, 0, 1, [efd])


def test_msi_enable_failure_rolls_back(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 MSI: if a vector's eventfd is bad, the vectors of the call are freed and MSI is disabled."""
    d = open_dev(k, "pci", msi=4)
    a = new_eventfd()
    base = fd_count()
    expect(errno.EBADF, d.set_irqs, MSI, TRIGGER | EVENTFD, 0, 2, [a, 9999])
    assert fd_count() == base
    d.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [a])  # irq_type is back to none
    d.set_irqs(INTX, TRIGGER | NONE, 0, 0)
    d.close()
    os.close(a)


def test_msi_multi_vector_per_vector_ops(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 MSI: per-vector set, fd -1 frees one vector, BOOL loopback per vector; vectors beyond what
    the enable allocated -> EINVAL (MSI cannot grow without disable/enable)."""
    d = open_dev(k, "pci", msi=4)
    efds = [new_eventfd() for _ in range(3)]
    d.set_irqs(MSI, TRIGGER | EVENTFD, 0, 2, efds[:2])
    d.set_irqs(MSI, TRIGGER | BOOL, 0, 2, [0, 1])
    assert [take(e) for e in efds[:2]] == [0, 1]
    d.set_irqs(MSI, TRIGGER | EVENTFD, 1, 1, [-1])
    d.set_irqs(MSI, TRIGGER | NONE, 0, 2)
    assert [take(e) for e in efds[:2]] == [1, 0]
    expect(errno.EINVAL, d.set_irqs, MSI, TRIGGER | EVENTFD, 2, 1, [efds[2]])
    d.set_irqs(MSI, TRIGGER | EVENTFD, 1, 1, [efds[2]])  # re-using an allocated vector is fine
    d.set_irqs(MSI, TRIGGER | NONE, 1, 1)
    assert take(efds[2]) == 1
    d.close()
    for e in efds:
        os.close(e)


def test_msi_fd_minus_two_frees_like_minus_one(k: pyvfio.sim.Kernel) -> None:
    """vfio_msi_set_vector_signal ([M] checked): any negative fd frees the vector."""
    d = open_dev(k, "pci", msi=2)
    a = new_eventfd()
    base = fd_count()
    d.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [a])
    d.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [-2])
    assert fd_count() == base
    d.close()
    os.close(a)


# =====================================================================================================
# MSI-X
# =====================================================================================================
def test_msix_dynamic_vectors_fire(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 MSI-X (6.5+ dynamic allocation): enable with vector 0, add vector 3 later without disabling;
    the device's MSI-X messages signal the right eventfd; a freed vector's message stays pending in the PBA
    and is delivered when the vector gets a trigger again."""
    d = open_dev(k, "edu", msix_vectors=4)
    d.enable_bus_master()
    e0, e3 = new_eventfd(), new_eventfd()
    d.set_irqs(MSIX, TRIGGER | EVENTFD, 0, 1, [e0])
    d.set_irqs(MSIX, TRIGGER | EVENTFD, 3, 1, [e3])
    d.bar_w(EDU_MSIX_RAISE, 3)
    d.bar_w(EDU_MSIX_RAISE, 0)
    assert (take(e0), take(e3)) == (1, 1)
    d.set_irqs(MSIX, TRIGGER | EVENTFD, 3, 1, [-1])
    d.bar_w(EDU_MSIX_RAISE, 3)
    assert take(e3) == 0
    d.set_irqs(MSIX, TRIGGER | EVENTFD, 3, 1, [e3])
    assert take(e3) == 1
    d.set_irqs(MSIX, TRIGGER | NONE, 0, 0)
    d.close()
    for _fd in (e0, e3):
        os.close(_fd)


def test_msix_while_msi_einval(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 MSI-X: another type active -> EINVAL."""
    d = open_dev(k, "edu", msix_vectors=2)
    a = new_eventfd()
    d.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [a])
    expect(errno.EINVAL, d.set_irqs, MSIX, TRIGGER | EVENTFD, 0, 1, [a])
    d.close()
    os.close(a)


def test_msix_mask_enotty(k: pyvfio.sim.Kernel) -> None:
    """SEMANTICS 3 / pitfall 6: MSI-X MASK -> ENOTTY."""
    d = open_dev(k, "edu", msix_vectors=2)
    expect(errno.ENOTTY, d.set_irqs, MSIX, MASK | NONE, 0, 1)
    d.close()


# =====================================================================================================
# ERR and REQ (vfio_pci_set_ctx_trigger_single)
# =====================================================================================================
def test_req_set_loopback_clear(edu: PciDev, efd: int) -> None:
    """SEMANTICS 3 REQ: EVENTFD sets; NONE count 1 / BOOL(1) signal; NONE count 0 releases; EVENTFD -1 clears."""
    base = fd_count()
    edu.set_irqs(REQ, TRIGGER | EVENTFD, 0, 1, [efd])
    assert fd_count() == base + 1
    edu.set_irqs(REQ, TRIGGER | NONE, 0, 1)
    edu.set_irqs(REQ, TRIGGER | BOOL, 0, 1, [1])
    edu.set_irqs(REQ, TRIGGER | BOOL, 0, 1, [0])
    assert take(efd) == 2
    edu.set_irqs(REQ, TRIGGER | NONE, 0, 0)
    assert fd_count() == base
    edu.set_irqs(REQ, TRIGGER | EVENTFD, 0, 1, [efd])
    edu.set_irqs(REQ, TRIGGER | EVENTFD, 0, 1, [-2])  # fd < -1: neither set nor cleared
    assert fd_count() == base + 1
    edu.set_irqs(REQ, TRIGGER | EVENTFD, 0, 1, [-1])
    assert fd_count() == base


@pytest.mark.parametrize("flags,start,count", [
    (TRIGGER | NONE, 1, 0), (TRIGGER | NONE, 0, 2), (TRIGGER | BOOL, 0, 0), (TRIGGER | EVENTFD, 0, 0),
    (TRIGGER | NONE, 0, 0), (TRIGGER | NONE, 0, 1),
], ids=["start_1", "count_2", "bool_count_0", "eventfd_count_0", "release_unset", "signal_unset"])
def test_req_bad_input_einval(edu: PciDev, flags: int, start: int, count: int) -> None:
    """SEMANTICS 3 ERR/REQ: start != 0 or count > 1, BOOL/EVENTFD with count 0, and DATA_NONE with no eventfd
    set ([M] checked: it falls through to EINVAL) -> EINVAL."""
    expect(errno.EINVAL, edu.set_irqs, REQ, flags, start, count, [0] * count if count else None)


@pytest.mark.parametrize("action", [MASK, UNMASK], ids=["mask", "unmask"])
def test_req_err_mask_enotty(k: pyvfio.sim.Kernel, action: int) -> None:
    """vfio_pci_set_irqs_ioctl: ERR and REQ support only TRIGGER -> ENOTTY (7.3.4 on the conventional edu)."""
    d = open_dev(k, "edu")
    expect(errno.ENOTTY, d.set_irqs, REQ, action | NONE, 0, 1)
    expect(errno.ENOTTY, d.set_irqs, ERR, action | NONE, 0, 1)
    d.close()


@pytest.mark.parametrize("express", [True, False], ids=["pcie", "conventional"])
def test_err_trigger(k: pyvfio.sim.Kernel, express: bool) -> None:
    """SEMANTICS 3 ERR: the ERR eventfd can be set, looped back and replaced -- on a PCIe function and, since
    7.3.4 dropped the PCIe check, on a conventional one like the edu (measured in the VM lane)."""
    a, b = new_eventfd(), new_eventfd()
    base = fd_count()
    d = open_dev(k, "edu", express=express)
    d.set_irqs(ERR, TRIGGER | EVENTFD, 0, 1, [a])
    d.set_irqs(ERR, TRIGGER | EVENTFD, 0, 1, [b])
    assert fd_count() == base + 3 + 1  # container, group, device + the model's ERR reference
    d.set_irqs(ERR, TRIGGER | NONE, 0, 1)
    assert (take(a), take(b)) == (0, 1)
    d.close()
    assert fd_count() == base  # close released the ERR trigger
    for _fd in (a, b):
        os.close(_fd)


# =====================================================================================================
# Leaks across everything
# =====================================================================================================
def test_close_with_everything_enabled_leaks_nothing(k: pyvfio.sim.Kernel) -> None:
    """vfio_pci_core_close_device: INTx trigger + unmask virqfd, REQ trigger: all references dropped on close."""
    base = fd_count()
    d = open_dev(k)
    t, u, r = new_eventfd(), new_eventfd(), new_eventfd()
    intx_on(d, t)
    d.set_irqs(INTX, UNMASK | EVENTFD, 0, 1, [u])
    d.set_irqs(REQ, TRIGGER | EVENTFD, 0, 1, [r])
    d.close()
    for e in (t, u, r):
        os.close(e)
    assert fd_count() == base
