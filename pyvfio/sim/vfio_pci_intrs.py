"""vfio-pci interrupt handling (``drivers/vfio/pci/vfio_pci_intrs.c``): the state machine behind SET_IRQS.

A vfio-pci device has one active interrupt type at a time (``irq_type``:
INTx, MSI, MSI-X or none) plus two independent single-eventfd indexes (ERR,
REQ).  Each active vector has a context holding the user's *trigger*
eventfd, which the kernel signals from its interrupt handler:

- INTx is level-triggered and shared, so the handler masks the line at the
  device (COMMAND.INTX_DISABLE) before signalling and it stays masked until
  the user UNMASKs -- by ioctl, or by writing an *unmask* eventfd registered
  as a virqfd (what KVM's resamplefd does on guest EOI).  An UNMASK while the
  device still asserts the line does not unmask and signals again at once.
- MSI/MSI-X handlers just signal the vector's eventfd.

Eventfds come from the caller as descriptor numbers; :func:`eventfd_ctx_fdget`
takes a reference (a dup the model owns) which is closed whenever the kernel
would drop its ``eventfd_ctx``: replaced, freed with ``fd = -1``, on disable
and on the device's last close.  ``raise_irq`` from a simulated device arrives
in :func:`vfio_pci_irq_from_device`, the model of the host interrupt.
"""

from __future__ import annotations

import os
import select
import threading
from typing import TYPE_CHECKING, Callable, Optional

from ..uapi import vfio as uv
from .errno import EBUSY, EINVAL, ENODEV, ENOTTY, KernelError
from .file import Task, eventfd_signal
from ..uapi.pci_regs import (
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_32,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_FLAGS_QSIZE,
    PCI_MSI_MASK_32,
    PCI_MSI_MASK_64,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_STATUS,
    PCI_STATUS_INTERRUPT,
)

if TYPE_CHECKING:
    from .vfio_pci_core import VfioPciCoreDevice

IRQ_NONE = uv.VFIO_PCI_NUM_IRQS  # vdev->irq_type when no INTx/MSI/MSI-X is active
MSI_ADDRESS = 0xFEE00000  # what the host programs into the device: the x86 MSI window


# -- eventfd references --------------------------------------------------------------------------

def eventfd_ctx_fdget(task: Task, fd: int) -> int:
    """``eventfd_ctx_fdget``: a model-owned reference to the caller's eventfd ``fd``.

    EBADF for a descriptor that is not open, EINVAL for one that is not an
    eventfd (the kernel checks the file's ops).
    """
    raw = task.fget_raw(fd)
    try:
        target = os.readlink(f"/proc/self/fd/{raw}")
    except OSError:
        target = ""
    if target != "anon_inode:[eventfd]":
        os.close(raw)
        raise KernelError(EINVAL, f"fd {fd} is not an eventfd ({target or 'unknown file'})")
    return raw


def eventfd_ctx_put(ref: Optional[int]) -> None:
    """Drop a reference taken by :func:`eventfd_ctx_fdget`."""
    if ref is not None:
        os.close(ref)


# -- virqfd: an eventfd the kernel watches (drivers/vfio/virqfd.c) -------------------------------

class Virqfd:
    """An eventfd whose every write runs ``handler`` (then ``thread`` if the handler asks for it).

    vfio uses it for the INTx unmask eventfd (the resamplefd target) and for
    ioeventfds.  The model watches all of them from one background thread,
    :data:`VIRQFD_POLLER`; handlers run under the device's ``igate`` lock.
    """

    def __init__(self, lock: "threading.RLock", fd: int, handler: Optional[Callable[[], int]],
                 thread: Optional[Callable[[], None]]) -> None:
        self.lock = lock
        self.fd = fd
        self.handler = handler
        self.thread = thread
        self.active = True

    def fire(self) -> None:
        """The eventfd was written: run the handler (from the watcher thread)."""
        while not self.lock.acquire(timeout=0.005):
            if not self.active:
                return
        try:
            if self.active:
                self.run()
        finally:
            self.lock.release()

    def run(self) -> None:
        if (self.handler is None or self.handler()) and self.thread is not None:
            self.thread()


class _VirqfdPoller:
    """One daemon thread polling every registered virqfd; it exists only while some are registered.

    Unregistering waits until the thread has let go of the descriptor, so
    the model can close it at once (descriptor counts stay exact for leak
    checks) and the thread never reads a closed or reused number.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entries: dict[int, Virqfd] = {}
        self._wake = -1
        self._thread: Optional[threading.Thread] = None
        self._stop = False
        self._gen = 0
        self._seen = 0

    def register(self, v: Virqfd) -> None:
        with self._cond:
            self._entries[v.fd] = v
            if self._thread is None:
                self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                self._stop = False
                self._thread = threading.Thread(target=self._run, name="pyvfio-virqfd", daemon=True)
                self._thread.start()
            else:
                os.eventfd_write(self._wake, 1)

    def unregister(self, v: Virqfd) -> None:
        v.active = False
        with self._cond:
            self._entries.pop(v.fd, None)
            if self._thread is None:
                return
            if threading.current_thread() is self._thread:
                return  # called from a handler: the loop re-reads the set next round
            self._gen += 1
            gen = self._gen
            if not self._entries:
                self._stop = True
            os.eventfd_write(self._wake, 1)
            self._cond.wait_for(lambda: self._seen >= gen or self._thread is None, timeout=5)
            if self._stop:
                self._cond.wait_for(lambda: self._thread is None, timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._seen = self._gen
                if self._stop:
                    os.close(self._wake)
                    self._wake = -1
                    self._thread = None
                    self._cond.notify_all()
                    return
                self._cond.notify_all()
                fds = list(self._entries)
                wake = self._wake
            poller = select.poll()
            poller.register(wake, select.POLLIN)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == wake:
                    try:
                        os.eventfd_read(wake)
                    except BlockingIOError:
                        pass
                    continue
                with self._cond:
                    v = self._entries.get(fd)
                if v is None or not v.active:
                    continue
                try:
                    os.eventfd_read(fd)
                except OSError:
                    continue
                v.fire()


VIRQFD_POLLER = _VirqfdPoller()


def vfio_virqfd_enable(core: "VfioPciCoreDevice", task: Task, fd: int, handler: Optional[Callable[[], int]],
                       thread: Optional[Callable[[], None]], current: Optional[Virqfd]) -> Virqfd:
    """Watch eventfd ``fd``; EBUSY if the slot already holds one (the kernel refuses to stack them)."""
    ref = eventfd_ctx_fdget(task, fd)
    if current is not None:
        os.close(ref)
        raise KernelError(EBUSY, "a virqfd is already installed for this interrupt")
    v = Virqfd(core.igate, ref, handler, thread)
    # An eventfd that already counts events is processed at once, as the kernel polls it on setup.
    ready, _, _ = select.select([ref], [], [], 0)
    if ready:
        os.eventfd_read(ref)
        v.run()
    VIRQFD_POLLER.register(v)
    return v


def vfio_virqfd_disable(v: Optional[Virqfd]) -> None:
    """Stop watching and drop the eventfd reference."""
    if v is None:
        return
    VIRQFD_POLLER.unregister(v)
    os.close(v.fd)


# -- per-vector context ----------------------------------------------------------------------------

class IrqCtx:
    """``struct vfio_pci_irq_ctx``: one vector's trigger eventfd, INTx mask state and unmask virqfd."""

    def __init__(self, trigger: Optional[int]) -> None:
        self.trigger = trigger
        self.masked = False
        self.unmask: Optional[Virqfd] = None
        self.mask: Optional[Virqfd] = None


def is_intx(core: "VfioPciCoreDevice") -> bool:
    return core.irq_type == uv.VFIO_PCI_INTX_IRQ_INDEX


def is_irq_none(core: "VfioPciCoreDevice") -> bool:
    return core.irq_type not in (uv.VFIO_PCI_INTX_IRQ_INDEX, uv.VFIO_PCI_MSI_IRQ_INDEX, uv.VFIO_PCI_MSIX_IRQ_INDEX)


# -- the PCI core helpers the interrupt code uses (drivers/pci/pci.c) ----------------------------

def pci_intx(core: "VfioPciCoreDevice", enable: bool) -> None:
    """Set or clear COMMAND.INTX_DISABLE in the device itself."""
    cmd = core.pci_read_config(PCI_COMMAND, 2)
    new = cmd & ~PCI_COMMAND_INTX_DISABLE if enable else cmd | PCI_COMMAND_INTX_DISABLE
    if new != cmd:
        core.pci_write_config(PCI_COMMAND, 2, new)


def _pci_check_and_set_intx_mask(core: "VfioPciCoreDevice", mask: bool) -> bool:
    """Mask only if the device is asserting the line, unmask only if it is not (PCI 2.3 DisINTx)."""
    pending = bool(core.pci_read_config(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT)
    if mask != pending:
        return False
    pci_intx(core, not mask)
    return True


def pci_check_and_mask_intx(core: "VfioPciCoreDevice") -> bool:
    return _pci_check_and_set_intx_mask(core, True)


def pci_check_and_unmask_intx(core: "VfioPciCoreDevice") -> bool:
    return _pci_check_and_set_intx_mask(core, False)


# -- INTx ------------------------------------------------------------------------------------------

def vfio_send_intx_eventfd(core: "VfioPciCoreDevice") -> None:
    """Signal the INTx trigger unless the user masked INTx through COMMAND.INTX_DISABLE."""
    if is_intx(core) and not core.virq_disabled:
        ctx = core.irq_ctx.get(0)
        if ctx is not None and ctx.trigger is not None:
            eventfd_signal(ctx.trigger)


def vfio_pci_intx_mask(core: "VfioPciCoreDevice") -> bool:
    """Mask INTx (ioctl, config INTX_DISABLE); True when the mask state changed."""
    if not is_intx(core):
        if core.pci_2_3:
            pci_intx(core, False)  # the physical bit follows the virtual one
        return False
    ctx = core.irq_ctx[0]
    if ctx.masked:
        return False
    pci_intx(core, False)
    ctx.masked = True
    return True


def vfio_pci_intx_unmask_handler(core: "VfioPciCoreDevice") -> int:
    """Unmask unless the line is still asserted; returns 1 when the user must be signalled again."""
    if not is_intx(core):
        if core.pci_2_3:
            pci_intx(core, True)
        return 0
    ctx = core.irq_ctx[0]
    ret = 0
    if ctx.masked and not core.virq_disabled:
        if not pci_check_and_unmask_intx(core):
            ret = 1  # still pending: rather than unmask and take it again, re-send it to the user
        ctx.masked = ret > 0
    return ret


def vfio_pci_intx_unmask(core: "VfioPciCoreDevice") -> None:
    if vfio_pci_intx_unmask_handler(core) > 0:
        vfio_send_intx_eventfd(core)


def vfio_intx_handler(core: "VfioPciCoreDevice") -> None:
    """The host INTx handler: mask at the device while it asserts, then signal (auto-masked INTx)."""
    ctx = core.irq_ctx.get(0)
    if ctx is None:
        return
    if not ctx.masked and pci_check_and_mask_intx(core):
        ctx.masked = True
        vfio_send_intx_eventfd(core)


def vfio_intx_enable(core: "VfioPciCoreDevice", trigger: Optional[int]) -> None:
    if not is_irq_none(core):
        raise KernelError(EINVAL, "another interrupt type is active")
    if not core.pci.irq_pin:
        raise KernelError(ENODEV, "the device has no INTx line")
    ctx = IrqCtx(trigger)
    ctx.masked = core.virq_disabled  # initial state follows the virtual INTx-disable bit
    core.irq_ctx[0] = ctx
    core.irq_type = uv.VFIO_PCI_INTX_IRQ_INDEX
    pci_intx(core, not ctx.masked)
    if not ctx.masked and core.pci_read_config(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT:
        vfio_intx_handler(core)  # a level already asserted fires as soon as request_irq enables the line


def vfio_intx_set_signal(core: "VfioPciCoreDevice", trigger: Optional[int]) -> None:
    ctx = core.irq_ctx[0]
    old, ctx.trigger = ctx.trigger, trigger
    eventfd_ctx_put(old)


def vfio_intx_disable(core: "VfioPciCoreDevice") -> None:
    ctx = core.irq_ctx.pop(0, None)
    if ctx is not None:
        vfio_virqfd_disable(ctx.unmask)
        vfio_virqfd_disable(ctx.mask)
        eventfd_ctx_put(ctx.trigger)
    core.irq_type = IRQ_NONE


# -- MSI / MSI-X -----------------------------------------------------------------------------------

def vfio_msihandler(core: "VfioPciCoreDevice", vector: int) -> None:
    ctx = core.irq_ctx.get(vector)
    if ctx is not None and ctx.trigger is not None:
        eventfd_signal(ctx.trigger)


def _msi_mask_reg(core: "VfioPciCoreDevice") -> int:
    pci = core.pci
    return pci.msi_cap + (PCI_MSI_MASK_64 if pci.msi_64bit else PCI_MSI_MASK_32)


def _msi_vector_mask(core: "VfioPciCoreDevice", vector: int, masked: bool) -> None:
    """The host's irq chip masks a vector it does not use (per-vector MSI mask or MSI-X entry)."""
    pci = core.pci
    if core.irq_type == uv.VFIO_PCI_MSIX_IRQ_INDEX:
        pci.msix_set_entry(vector, MSI_ADDRESS, 0x4000 + vector, masked)
    elif pci.msi_maskable:
        reg = _msi_mask_reg(core)
        bits = core.pci_read_config(reg, 4)
        bits = bits | (1 << vector) if masked else bits & ~(1 << vector)
        core.pci_write_config(reg, 4, bits)


def vfio_msi_enable(core: "VfioPciCoreDevice", nvec: int, msix: bool) -> None:
    """``pci_alloc_irq_vectors``: put the device in MSI or MSI-X mode with ``nvec`` vectors, all masked."""
    if not is_irq_none(core):
        raise KernelError(EINVAL, "another interrupt type is active")
    pci = core.pci
    if msix:
        flags = core.pci_read_config(pci.msix_cap + PCI_MSIX_FLAGS, 2)
        core.pci_write_config(pci.msix_cap + PCI_MSIX_FLAGS, 2, flags | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)
        for v in range(pci.msix_vectors):
            pci.msix_set_entry(v, MSI_ADDRESS, 0x4000 + v, True)
        core.pci_write_config(pci.msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE)
    else:
        cap = pci.msi_cap
        core.pci_write_config(cap + PCI_MSI_ADDRESS_LO, 4, MSI_ADDRESS)
        if pci.msi_64bit:
            core.pci_write_config(cap + PCI_MSI_ADDRESS_HI, 4, 0)
        core.pci_write_config(cap + (PCI_MSI_DATA_64 if pci.msi_64bit else PCI_MSI_DATA_32), 2, 0x4000)
        if pci.msi_maskable:
            core.pci_write_config(_msi_mask_reg(core), 4, (1 << pci.msi_vectors) - 1)
        mme = (nvec - 1).bit_length()  # log2 of the power of two holding nvec
        flags = core.pci_read_config(cap + PCI_MSI_FLAGS, 2) & ~PCI_MSI_FLAGS_QSIZE
        core.pci_write_config(cap + PCI_MSI_FLAGS, 2, flags | (mme << 4) | PCI_MSI_FLAGS_ENABLE)
        core.msi_qmax = (nvec * 2 - 1).bit_length() - 1
    pci_intx(core, False)  # entering MSI mode disables INTx at the device (pci_intx_for_msi)
    core.irq_type = uv.VFIO_PCI_MSIX_IRQ_INDEX if msix else uv.VFIO_PCI_MSI_IRQ_INDEX
    core.msi_nvec = nvec


def vfio_msi_alloc_irq(core: "VfioPciCoreDevice", vector: int, msix: bool) -> None:
    """A host IRQ for ``vector``: allocated at enable, or on demand for dynamic MSI-X."""
    if vector < core.msi_nvec:
        return
    if msix and core.has_dyn_msix:
        core.msi_nvec = vector + 1
        return
    raise KernelError(EINVAL, f"vector {vector} was not allocated when {'MSI-X' if msix else 'MSI'} "
                              f"was enabled with {core.msi_nvec}")


def vfio_msi_set_vector_signal(core: "VfioPciCoreDevice", task: Optional[Task], vector: int, fd: int,
                               msix: bool) -> None:
    ctx = core.irq_ctx.pop(vector, None)
    if ctx is not None:
        _msi_vector_mask(core, vector, True)  # free_irq masks the vector; it stays allocated
        eventfd_ctx_put(ctx.trigger)
    if fd < 0:
        return
    if ctx is None:
        vfio_msi_alloc_irq(core, vector, msix)
    assert task is not None
    trigger = eventfd_ctx_fdget(task, fd)
    core.irq_ctx[vector] = IrqCtx(trigger)
    _msi_vector_mask(core, vector, False)  # request_irq starts the irq: the vector is unmasked


def vfio_msi_set_block(core: "VfioPciCoreDevice", task: Task, start: int, count: int,
                       fds: Optional[list[int]], msix: bool) -> None:
    """Set vectors start..start+count-1; on a failure every vector this call touched is freed."""
    j = start
    try:
        for i in range(count):
            j = start + i
            vfio_msi_set_vector_signal(core, task, j, fds[i] if fds is not None else -1, msix)
    except KernelError:
        for i in range(start, j + 1):
            vfio_msi_set_vector_signal(core, None, i, -1, msix)
        raise


def vfio_msi_disable(core: "VfioPciCoreDevice", msix: bool) -> None:
    for vector in list(core.irq_ctx):
        ctx = core.irq_ctx[vector]
        vfio_virqfd_disable(ctx.unmask)
        vfio_virqfd_disable(ctx.mask)
        vfio_msi_set_vector_signal(core, None, vector, -1, msix)
    pci = core.pci
    if msix:
        flags = core.pci_read_config(pci.msix_cap + PCI_MSIX_FLAGS, 2)
        core.pci_write_config(pci.msix_cap + PCI_MSIX_FLAGS, 2,
                              flags & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL))
    else:
        flags = core.pci_read_config(pci.msi_cap + PCI_MSI_FLAGS, 2)
        core.pci_write_config(pci.msi_cap + PCI_MSI_FLAGS, 2, flags & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE))
    pci_intx(core, True)  # leaving MSI mode gives the device its INTx back
    if core.nointx:
        pci_intx(core, False)
    core.msi_nvec = 0
    core.irq_type = IRQ_NONE


def vfio_pci_irq_from_device(core: "VfioPciCoreDevice", kind: str, vector: int) -> None:
    """The device's interrupt reached the host: run the handler vfio-pci registered for it, if any."""
    if kind == "intx":
        if is_intx(core):
            vfio_intx_handler(core)
    elif kind == "msi":
        if core.irq_type == uv.VFIO_PCI_MSI_IRQ_INDEX:
            vfio_msihandler(core, vector)
    elif kind == "msix":
        if core.irq_type == uv.VFIO_PCI_MSIX_IRQ_INDEX:
            vfio_msihandler(core, vector)


# -- the SET_IRQS actions --------------------------------------------------------------------------

def _data_bool(data: bytes, i: int = 0) -> bool:
    return data[i] != 0


def _data_fd(data: bytes, i: int = 0) -> int:
    return int.from_bytes(data[4 * i: 4 * i + 4], "little", signed=True)


def vfio_pci_set_intx_unmask(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                             flags: int, data: bytes) -> int:
    if not is_intx(core) or start != 0 or count != 1:
        raise KernelError(EINVAL, "INTx UNMASK needs INTx enabled, start 0 and count 1")
    if flags & uv.VFIO_IRQ_SET_DATA_NONE:
        vfio_pci_intx_unmask(core)
    elif flags & uv.VFIO_IRQ_SET_DATA_BOOL:
        if _data_bool(data):
            vfio_pci_intx_unmask(core)
    elif flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
        ctx = core.irq_ctx[0]
        fd = _data_fd(data)
        if fd >= 0:
            ctx.unmask = vfio_virqfd_enable(core, task, fd, lambda: vfio_pci_intx_unmask_handler(core),
                                            lambda: vfio_send_intx_eventfd(core), ctx.unmask)
        else:
            vfio_virqfd_disable(ctx.unmask)
            ctx.unmask = None
    return 0


def vfio_pci_set_intx_mask(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                           flags: int, data: bytes) -> int:
    if not is_intx(core) or start != 0 or count != 1:
        raise KernelError(EINVAL, "INTx MASK needs INTx enabled, start 0 and count 1")
    if flags & uv.VFIO_IRQ_SET_DATA_NONE:
        vfio_pci_intx_mask(core)
    elif flags & uv.VFIO_IRQ_SET_DATA_BOOL:
        if _data_bool(data):
            vfio_pci_intx_mask(core)
    elif flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
        raise KernelError(ENOTTY, "masking INTx through an eventfd is not implemented by vfio-pci")
    return 0


def vfio_pci_set_intx_trigger(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                              flags: int, data: bytes) -> int:
    if is_intx(core) and not count and flags & uv.VFIO_IRQ_SET_DATA_NONE:
        vfio_intx_disable(core)
        return 0
    if not (is_intx(core) or is_irq_none(core)) or start != 0 or count != 1:
        raise KernelError(EINVAL, "INTx TRIGGER needs start 0, count 1 and no MSI/MSI-X active")
    if flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
        fd = _data_fd(data)
        trigger = eventfd_ctx_fdget(task, fd) if fd >= 0 else None
        try:
            if is_intx(core):
                vfio_intx_set_signal(core, trigger)
            else:
                vfio_intx_enable(core, trigger)
        except KernelError:
            eventfd_ctx_put(trigger)
            raise
        return 0
    if not is_intx(core):
        raise KernelError(EINVAL, "INTx is not enabled: nothing to trigger")
    if flags & uv.VFIO_IRQ_SET_DATA_NONE or (flags & uv.VFIO_IRQ_SET_DATA_BOOL and _data_bool(data)):
        vfio_send_intx_eventfd(core)  # loopback
    return 0


def vfio_pci_set_msi_trigger(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                             flags: int, data: bytes) -> int:
    msix = index == uv.VFIO_PCI_MSIX_IRQ_INDEX
    if core.irq_type == index and not count and flags & uv.VFIO_IRQ_SET_DATA_NONE:
        vfio_msi_disable(core, msix)
        return 0
    if not (core.irq_type == index or is_irq_none(core)):
        raise KernelError(EINVAL, "another interrupt type is active")
    if flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
        fds = [_data_fd(data, i) for i in range(count)]
        if core.irq_type == index:
            vfio_msi_set_block(core, task, start, count, fds, msix)
            return 0
        vfio_msi_enable(core, start + count, msix)
        try:
            vfio_msi_set_block(core, task, start, count, fds, msix)
        except KernelError:
            vfio_msi_disable(core, msix)
            raise
        return 0
    if core.irq_type != index:
        raise KernelError(EINVAL, f"{'MSI-X' if msix else 'MSI'} is not enabled: nothing to trigger")
    for i in range(start, start + count):
        ctx = core.irq_ctx.get(i)
        if ctx is None or ctx.trigger is None:
            continue
        if flags & uv.VFIO_IRQ_SET_DATA_NONE or (flags & uv.VFIO_IRQ_SET_DATA_BOOL and _data_bool(data, i - start)):
            eventfd_signal(ctx.trigger)  # loopback
    return 0


def vfio_pci_set_ctx_trigger_single(core: "VfioPciCoreDevice", task: Task, attr: str, count: int,
                                    flags: int, data: bytes) -> int:
    """ERR and REQ: one optional eventfd, set/cleared/looped back."""
    current: Optional[int] = getattr(core, attr)
    if flags & uv.VFIO_IRQ_SET_DATA_NONE:
        if current is not None:
            if count:
                eventfd_signal(current)
            else:
                eventfd_ctx_put(current)
                setattr(core, attr, None)
            return 0
    elif flags & uv.VFIO_IRQ_SET_DATA_BOOL:
        if not count:
            raise KernelError(EINVAL, "DATA_BOOL with count 0")
        if _data_bool(data) and current is not None:
            eventfd_signal(current)
        return 0
    elif flags & uv.VFIO_IRQ_SET_DATA_EVENTFD:
        if not count:
            raise KernelError(EINVAL, "DATA_EVENTFD with count 0")
        fd = _data_fd(data)
        if fd == -1:
            eventfd_ctx_put(current)
            setattr(core, attr, None)
        elif fd >= 0:
            new = eventfd_ctx_fdget(task, fd)
            eventfd_ctx_put(current)
            setattr(core, attr, new)
        return 0
    raise KernelError(EINVAL, "no eventfd is set: DATA_NONE has nothing to signal or release")


def vfio_pci_set_err_trigger(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                             flags: int, data: bytes) -> int:
    if index != uv.VFIO_PCI_ERR_IRQ_INDEX or start != 0 or count > 1:
        raise KernelError(EINVAL, "ERR takes start 0 and count 0 or 1")
    return vfio_pci_set_ctx_trigger_single(core, task, "err_trigger", count, flags, data)


def vfio_pci_set_req_trigger(core: "VfioPciCoreDevice", task: Task, index: int, start: int, count: int,
                             flags: int, data: bytes) -> int:
    if index != uv.VFIO_PCI_REQ_IRQ_INDEX or start != 0 or count > 1:
        raise KernelError(EINVAL, "REQ takes start 0 and count 0 or 1")
    return vfio_pci_set_ctx_trigger_single(core, task, "req_trigger", count, flags, data)


SetIrqsFn = Callable[["VfioPciCoreDevice", Task, int, int, int, int, bytes], int]


def vfio_pci_set_irqs_ioctl(core: "VfioPciCoreDevice", task: Task, flags: int, index: int, start: int,
                            count: int, data: bytes) -> int:
    """Route one validated SET_IRQS to its handler; an action the index lacks is ENOTTY."""
    action = flags & uv.VFIO_IRQ_SET_ACTION_TYPE_MASK
    func: Optional[SetIrqsFn] = None
    if index == uv.VFIO_PCI_INTX_IRQ_INDEX:
        func = {uv.VFIO_IRQ_SET_ACTION_MASK: vfio_pci_set_intx_mask,
                uv.VFIO_IRQ_SET_ACTION_UNMASK: vfio_pci_set_intx_unmask,
                uv.VFIO_IRQ_SET_ACTION_TRIGGER: vfio_pci_set_intx_trigger}.get(action)
    elif index in (uv.VFIO_PCI_MSI_IRQ_INDEX, uv.VFIO_PCI_MSIX_IRQ_INDEX):
        if action == uv.VFIO_IRQ_SET_ACTION_TRIGGER:
            func = vfio_pci_set_msi_trigger  # MSI/MSI-X MASK and UNMASK: not supported
    elif index == uv.VFIO_PCI_ERR_IRQ_INDEX:
        if action == uv.VFIO_IRQ_SET_ACTION_TRIGGER:  # any device since 7.3.4, not only PCI Express
            func = vfio_pci_set_err_trigger
    elif index == uv.VFIO_PCI_REQ_IRQ_INDEX:
        if action == uv.VFIO_IRQ_SET_ACTION_TRIGGER:
            func = vfio_pci_set_req_trigger
    if func is None:
        raise KernelError(ENOTTY, f"action {action:#x} is not supported on IRQ index {index}")
    return func(core, task, index, start, count, flags, data)


def vfio_pci_disable_irqs(core: "VfioPciCoreDevice") -> None:
    """What close does: TRIGGER|DATA_NONE with count 0 on the active type, then drop ERR/REQ."""
    if is_intx(core):
        vfio_intx_disable(core)
    elif core.irq_type in (uv.VFIO_PCI_MSI_IRQ_INDEX, uv.VFIO_PCI_MSIX_IRQ_INDEX):
        vfio_msi_disable(core, core.irq_type == uv.VFIO_PCI_MSIX_IRQ_INDEX)
