"""VFIO_DEVICE_SET_IRQS rules for INTx, MSI and REQ on QEMU's edu device, on whichever kernel the fixtures give.

One test per rule of SEMANTICS 3 (``SET_IRQS``) and 5.1/5.2, written against
the syscall surface through :class:`pyvfio.irq.vfio_irqs.VfioIrqs` (which adds
nothing but the ioctl), so the file runs unchanged on the simulated kernel
(the host run) and on a real Linux in the VM lane (``python3 -m tests.vm``).
The edu device has INTx (pin A), one MSI vector and no MSI-X; MSI-X rules are
in ``tests/test_irq_msix.py`` (simulated kernel only: QEMU 7.2's edu has no
MSI-X).  Interrupts come from the device itself: edu's register 0x60 raises,
0x64 acknowledges, and its INTx line stays asserted while any status bit is
set.  An MSI is a memory write, so the MSI tests set bus master first.

Also a small raw opener (:func:`open_edu`) shared by the other irq test files.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any, Iterator

import pytest

from conftest import EduDevice, real_kernel_requested
from edu_driver import EDU_IRQ_ACK, EDU_IRQ_RAISE, Device
from pyvfio.irq.eventfd import EventFd, FdHandlers
from pyvfio.irq.kvm import MsiMessage
from pyvfio.irq.vfio_irqs import INTX, MSI, MSIX, IntxController, MsiController, VfioIrqs
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import alloc_flex

REQ = uv.VFIO_PCI_REQ_IRQ_INDEX
ERR = uv.VFIO_PCI_ERR_IRQ_INDEX
SIGNAL_WAIT = 5.0  # generous: the VM lane runs under TCG
# How long "nothing arrives" is watched: the simulated kernel signals synchronously (its virqfds from a
# thread within microseconds); a real kernel under TCG needs longer.
QUIET_WAIT = 0.2 if real_kernel_requested() else 0.02


@contextlib.contextmanager
def open_edu(kernel: Any, edu: EduDevice) -> Iterator[Device]:
    """Container + group + device (type1v2) with raw ioctls; closed in reverse order."""
    container = kernel.open("/dev/vfio/vfio")
    group = -1
    dev_fd = -1
    try:
        group = kernel.open(f"/dev/vfio/{edu.group}")
        kernel.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        kernel.ioctl(container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        dev_fd = kernel.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
        dev = Device(kernel, dev_fd)
        dev.ack_irq()  # the real edu keeps its status across opens
        yield dev
    finally:
        for fd in (dev_fd, group, container):
            if fd >= 0:
                kernel.close(fd)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def dev(kernel: Any, edu: EduDevice) -> Iterator[Device]:
    with open_edu(kernel, edu) as d:
        yield d


@pytest.fixture
def irqs(dev: Device) -> Iterator[VfioIrqs]:
    """SET_IRQS on edu; every index the test left enabled is disabled afterwards."""
    v = VfioIrqs(dev)
    yield v
    for index in (INTX, MSI):
        with contextlib.suppress(OSError):
            v.disable(index)
    dev.ack_irq()


@pytest.fixture
def efd() -> Iterator[EventFd]:
    with EventFd() as e:
        yield e


@pytest.fixture
def efd2() -> Iterator[EventFd]:
    with EventFd() as e:
        yield e


def errno_of(fn: Any, *args: Any) -> int:
    with pytest.raises(OSError) as e:
        fn(*args)
    return int(e.value.errno or 0)


def raise_irq(dev: Device, bits: int = 0x2) -> None:
    dev.write32(EDU_IRQ_RAISE, bits)


def ack(dev: Device, bits: int = 0x2) -> None:
    dev.write32(EDU_IRQ_ACK, bits)


# -- GET_IRQ_INFO ----------------------------------------------------------------------------------

def test_irq_info_of_each_index(irqs: VfioIrqs) -> None:
    intx, msi, msix, req = (irqs.irq_info(i) for i in (INTX, MSI, MSIX, REQ))
    assert (intx.count, intx.eventfd, intx.maskable, intx.automasked, intx.noresize) == (1, True, True, True, False)
    assert (msi.count, msi.eventfd, msi.maskable, msi.noresize) == (1, True, False, True)
    assert msix.count == 0  # edu has no MSI-X capability
    assert (req.count, req.eventfd) == (1, True)
    assert errno_of(irqs.irq_info, uv.VFIO_PCI_NUM_IRQS) == errno.EINVAL


def test_err_index_on_a_conventional_pci_device(irqs: VfioIrqs, efd: EventFd) -> None:
    """edu is not PCI Express.  Kernels before the 2025 s390 ISM change offer ERR only on PCIe functions
    (GET_IRQ_INFO EINVAL, SET_IRQS EINVAL: count 0); the 7.3 kernel offers it on every function (count 1).
    Either way the two ioctls agree."""
    try:
        info = irqs.irq_info(ERR)
    except OSError as e:
        assert e.errno == errno.EINVAL
        assert errno_of(irqs.set_eventfds, ERR, 0, [efd.fd]) == errno.EINVAL
        return
    assert (info.count, info.eventfd) == (1, True)
    irqs.set_eventfds(ERR, 0, [efd.fd])
    irqs.trigger(ERR)
    assert efd.wait(SIGNAL_WAIT) == 1
    irqs.set_eventfds(ERR, 0, [-1])


# -- generic validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [
    uv.VFIO_IRQ_SET_ACTION_TRIGGER,  # no data type
    uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_DATA_BOOL | uv.VFIO_IRQ_SET_ACTION_TRIGGER,  # two data types
    uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER | (1 << 6),  # unknown flag bit
], ids=["no-data-type", "two-data-types", "unknown-bit"])
def test_malformed_flags_are_einval(irqs: VfioIrqs, flags: int) -> None:
    assert errno_of(irqs.set_irqs, INTX, flags, 0, 1) == errno.EINVAL


def test_argsz_too_small_for_the_data_is_einval(dev: Device) -> None:
    irq_set = alloc_flex(uv.vfio_irq_set, 0, index=MSI, start=0, count=1,
                         flags=uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_TRIGGER)
    assert irq_set.argsz == 20  # the header only: no room for the one s32 the call announces
    assert errno_of(dev.kernel.ioctl, dev.fd, uv.VFIO_DEVICE_SET_IRQS, irq_set) == errno.EINVAL


def test_msix_on_a_device_without_msix_is_einval(irqs: VfioIrqs) -> None:
    assert errno_of(irqs.set_eventfds, MSIX, 0, [-1]) == errno.EINVAL  # start 0 >= count 0
    assert errno_of(irqs.disable, MSIX) == errno.EINVAL


# -- INTx ------------------------------------------------------------------------------------------

def test_intx_fires_once_and_stays_masked_until_unmask(dev: Device, irqs: VfioIrqs, efd: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    raise_irq(dev)
    assert efd.wait(SIGNAL_WAIT) == 1
    ack(dev)
    raise_irq(dev)  # a new interrupt while auto-masked: not signalled
    assert efd.wait(QUIET_WAIT) == 0
    irqs.unmask()  # the line is still asserted: no unmask, the interrupt is signalled again at once
    assert efd.wait(SIGNAL_WAIT) == 1
    ack(dev)
    irqs.unmask()  # quiet line: really unmasked now
    assert efd.wait(QUIET_WAIT) == 0
    raise_irq(dev)
    assert efd.wait(SIGNAL_WAIT) == 1


def test_intx_mask_holds_the_interrupt_until_unmask(dev: Device, irqs: VfioIrqs, efd: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.mask()
    raise_irq(dev)
    assert efd.wait(QUIET_WAIT) == 0
    irqs.unmask()
    assert efd.wait(SIGNAL_WAIT) == 1  # held, not lost


def test_intx_mask_and_unmask_with_bool(dev: Device, irqs: VfioIrqs, efd: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    mask_bool = uv.VFIO_IRQ_SET_DATA_BOOL | uv.VFIO_IRQ_SET_ACTION_MASK
    unmask_bool = uv.VFIO_IRQ_SET_DATA_BOOL | uv.VFIO_IRQ_SET_ACTION_UNMASK
    irqs.set_irqs(INTX, mask_bool, 0, 1, b"\x00")  # false: nothing happens
    raise_irq(dev)
    assert efd.wait(SIGNAL_WAIT) == 1
    ack(dev)
    irqs.set_irqs(INTX, unmask_bool, 0, 1, b"\x01")
    irqs.set_irqs(INTX, mask_bool, 0, 1, b"\x01")
    raise_irq(dev)
    assert efd.wait(QUIET_WAIT) == 0
    irqs.set_irqs(INTX, unmask_bool, 0, 1, b"\x01")
    assert efd.wait(SIGNAL_WAIT) == 1


def test_intx_mask_by_eventfd_is_enotty(irqs: VfioIrqs, efd: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    data = bytes(ctypes.c_int32(efd.fd))
    flags = uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_MASK
    assert errno_of(irqs.set_irqs, INTX, flags, 0, 1, data) == errno.ENOTTY


def test_intx_range_other_than_0_1_is_einval(irqs: VfioIrqs, efd: EventFd) -> None:
    assert errno_of(irqs.set_eventfds, INTX, 1, [efd.fd]) == errno.EINVAL
    assert errno_of(irqs.set_eventfds, INTX, 0, [efd.fd, efd.fd]) == errno.EINVAL
    irqs.set_eventfds(INTX, 0, [efd.fd])
    assert errno_of(irqs.trigger_bool, INTX, 1, [True]) == errno.EINVAL
    assert errno_of(irqs.set_irqs, INTX, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_UNMASK, 0, 2) \
        == errno.EINVAL


def test_intx_mask_unmask_without_intx_is_einval(irqs: VfioIrqs) -> None:
    assert errno_of(irqs.mask) == errno.EINVAL
    assert errno_of(irqs.unmask) == errno.EINVAL


def test_intx_fd_minus_one_frees_the_trigger_but_intx_stays_active(dev: Device, irqs: VfioIrqs, efd: EventFd,
                                                                   efd2: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.set_eventfds(INTX, 0, [-1])
    raise_irq(dev)
    assert efd.wait(QUIET_WAIT) == 0  # no trigger to signal
    assert errno_of(irqs.set_eventfds, MSI, 0, [efd2.fd]) == errno.EINVAL  # INTx is still the active type
    ack(dev)
    irqs.disable(INTX)
    irqs.set_eventfds(MSI, 0, [efd2.fd])  # now it is free


def test_intx_replacing_the_eventfd(dev: Device, irqs: VfioIrqs, efd: EventFd, efd2: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.set_eventfds(INTX, 0, [efd2.fd])
    raise_irq(dev)
    assert efd2.wait(SIGNAL_WAIT) == 1
    assert efd.count() == 0


def test_intx_loopback_signals_the_trigger(irqs: VfioIrqs, efd: EventFd) -> None:
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.trigger(INTX)
    assert efd.wait(SIGNAL_WAIT) == 1
    irqs.trigger_bool(INTX, 0, [False])
    assert efd.wait(QUIET_WAIT) == 0
    irqs.trigger_bool(INTX, 0, [True])
    assert efd.wait(SIGNAL_WAIT) == 1


def test_intx_count_zero_disables_and_a_second_disable_is_einval(irqs: VfioIrqs, efd: EventFd) -> None:
    assert errno_of(irqs.disable, INTX) == errno.EINVAL  # nothing enabled
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.disable(INTX)
    assert errno_of(irqs.disable, INTX) == errno.EINVAL
    assert errno_of(irqs.trigger, INTX) == errno.EINVAL  # loopback needs INTx enabled


def test_intx_unmask_eventfd_unmasks_on_each_write(dev: Device, irqs: VfioIrqs, efd: EventFd,
                                                   efd2: EventFd) -> None:
    """UNMASK + EVENTFD installs a virqfd: KVM's resamplefd writes it on guest EOI."""
    irqs.set_eventfds(INTX, 0, [efd.fd])
    irqs.set_unmask_eventfd(efd2.fd)
    raise_irq(dev)
    assert efd.wait(SIGNAL_WAIT) == 1  # and auto-masked
    ack(dev)
    efd2.signal()  # what KVM does at EOI
    raise_irq(dev)
    assert efd.wait(SIGNAL_WAIT) == 1  # unmasked by the write (or re-signalled if the raise came first)
    ack(dev)
    irqs.set_unmask_eventfd(-1)  # removed: writes no longer unmask
    efd2.signal()
    raise_irq(dev)
    assert efd.wait(QUIET_WAIT) == 0
    assert efd2.count() == 1  # nobody consumed it
    irqs.unmask()
    assert efd.wait(SIGNAL_WAIT) == 1


def test_intx_while_msi_is_enabled_is_einval(dev: Device, irqs: VfioIrqs, efd: EventFd, efd2: EventFd) -> None:
    irqs.set_eventfds(MSI, 0, [efd.fd])
    assert errno_of(irqs.set_eventfds, INTX, 0, [efd2.fd]) == errno.EINVAL


# -- MSI -------------------------------------------------------------------------------------------

def test_msi_enable_and_device_interrupt(dev: Device, irqs: VfioIrqs, efd: EventFd) -> None:
    dev.enable_bus_master()
    irqs.set_eventfds(MSI, 0, [efd.fd])
    raise_irq(dev, 0x4)
    assert efd.wait(SIGNAL_WAIT) == 1
    ack(dev, 0x4)
    raise_irq(dev, 0x4)  # MSI is not auto-masked: every interrupt is signalled
    assert efd.wait(SIGNAL_WAIT) == 1


def test_msi_beyond_the_vector_count_is_einval(irqs: VfioIrqs, efd: EventFd) -> None:
    assert errno_of(irqs.set_eventfds, MSI, 0, [efd.fd, efd.fd]) == errno.EINVAL
    assert errno_of(irqs.set_eventfds, MSI, 1, [efd.fd]) == errno.EINVAL


def test_msi_fd_minus_one_frees_one_vector_and_keeps_the_index(dev: Device, irqs: VfioIrqs, efd: EventFd,
                                                               efd2: EventFd) -> None:
    dev.enable_bus_master()
    irqs.set_eventfds(MSI, 0, [efd.fd])
    irqs.set_eventfds(MSI, 0, [-1])
    raise_irq(dev, 0x4)
    assert efd.wait(QUIET_WAIT) == 0
    ack(dev, 0x4)
    assert errno_of(irqs.set_eventfds, INTX, 0, [efd2.fd]) == errno.EINVAL  # MSI is still the active type
    irqs.set_eventfds(MSI, 0, [efd2.fd])  # the vector is still allocated: wiring it again works
    raise_irq(dev, 0x4)
    assert efd2.wait(SIGNAL_WAIT) == 1
    assert efd.count() == 0


def test_msi_replacing_the_eventfd(dev: Device, irqs: VfioIrqs, efd: EventFd, efd2: EventFd) -> None:
    dev.enable_bus_master()
    irqs.set_eventfds(MSI, 0, [efd.fd])
    irqs.set_eventfds(MSI, 0, [efd2.fd])
    raise_irq(dev, 0x4)
    assert efd2.wait(SIGNAL_WAIT) == 1
    assert efd.count() == 0


def test_msi_count_zero_disables_and_a_second_disable_is_einval(irqs: VfioIrqs, efd: EventFd) -> None:
    assert errno_of(irqs.disable, MSI) == errno.EINVAL  # nothing enabled
    irqs.set_eventfds(MSI, 0, [efd.fd])
    irqs.disable(MSI)
    assert errno_of(irqs.disable, MSI) == errno.EINVAL
    irqs.set_eventfds(INTX, 0, [efd.fd])  # the device is free for INTx again


def test_msi_loopback_signals_only_wired_vectors(irqs: VfioIrqs, efd: EventFd) -> None:
    assert errno_of(irqs.trigger, MSI) == errno.EINVAL  # not enabled
    irqs.set_eventfds(MSI, 0, [efd.fd])
    irqs.trigger(MSI)
    assert efd.wait(SIGNAL_WAIT) == 1
    irqs.trigger_bool(MSI, 0, [False])
    assert efd.wait(QUIET_WAIT) == 0
    irqs.set_eventfds(MSI, 0, [-1])
    irqs.trigger(MSI)  # enabled but unwired: nothing to signal, and no error
    assert efd.wait(QUIET_WAIT) == 0


@pytest.mark.parametrize("action", [uv.VFIO_IRQ_SET_ACTION_MASK, uv.VFIO_IRQ_SET_ACTION_UNMASK],
                         ids=["mask", "unmask"])
def test_msi_mask_and_unmask_are_enotty(irqs: VfioIrqs, efd: EventFd, action: int) -> None:
    irqs.set_eventfds(MSI, 0, [efd.fd])
    assert errno_of(irqs.set_irqs, MSI, uv.VFIO_IRQ_SET_DATA_NONE | action, 0, 1) == errno.ENOTTY


def test_msi_with_a_bad_descriptor_fails_and_rolls_back(dev: Device, irqs: VfioIrqs, efd: EventFd) -> None:
    r, w = os.pipe()
    os.close(w)
    try:
        assert errno_of(irqs.set_eventfds, MSI, 0, [r]) == errno.EINVAL  # open, but not an eventfd
    finally:
        os.close(r)
    assert errno_of(irqs.set_eventfds, MSI, 0, [r]) == errno.EBADF  # closed now
    irqs.set_eventfds(INTX, 0, [efd.fd])  # the failed enables left no MSI behind


# -- REQ -------------------------------------------------------------------------------------------

def test_req_eventfd_set_loopback_release(irqs: VfioIrqs, efd: EventFd) -> None:
    none = uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER
    assert errno_of(irqs.set_irqs, REQ, none, 0, 1) == errno.EINVAL  # nothing set: nothing to signal
    irqs.set_eventfds(REQ, 0, [efd.fd])
    irqs.trigger(REQ)
    assert efd.wait(SIGNAL_WAIT) == 1
    assert errno_of(irqs.set_irqs, REQ, uv.VFIO_IRQ_SET_DATA_BOOL | uv.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0) \
        == errno.EINVAL
    irqs.set_irqs(REQ, none, 0, 0)  # count 0 releases it
    assert errno_of(irqs.set_irqs, REQ, none, 0, 1) == errno.EINVAL


# -- the controllers, on the same device -------------------------------------------------------------

def test_intx_controller_vmm_path_asserts_until_eoi(dev: Device, irqs: VfioIrqs) -> None:
    before = open_fds()
    handlers = FdHandlers()
    levels: list[bool] = []
    intx = IntxController(irqs, handlers, set_level=levels.append)
    intx.enable()
    try:
        for _ in range(3):
            raise_irq(dev)
            assert handlers.dispatch(SIGNAL_WAIT) == 1
            assert intx.pending and levels[-1] is True
            ack(dev)  # the guest's driver services the device ...
            intx.eoi()  # ... and the VMM sees the EOI: deassert + UNMASK
            assert not intx.pending and levels[-1] is False
        assert intx.interrupts == 3
    finally:
        intx.disable()
    assert open_fds() == before


def test_msi_controller_delivers_from_the_vmm(dev: Device, irqs: VfioIrqs) -> None:
    before = open_fds()
    handlers = FdHandlers()
    got: list[tuple[int, MsiMessage]] = []
    msi = MsiController(irqs, handlers, deliver=lambda nr, msg: got.append((nr, msg)))
    dev.enable_bus_master()
    assert msi.enable([MsiMessage.for_vector(0x41)]) == 1
    try:
        raise_irq(dev, 0x4)
        assert handlers.dispatch(SIGNAL_WAIT) == 1
        assert got == [(0, MsiMessage.for_vector(0x41))]
    finally:
        msi.disable()
    assert len(handlers) == 0 and open_fds() == before
