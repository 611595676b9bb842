"""INTx, MSI and MSI-X of a VFIO device, driven through ``VFIO_DEVICE_SET_IRQS`` the way QEMU drives them.

Two levels:

* :class:`VfioIrqs` -- the ioctls themselves (``GET_IRQ_INFO``, ``SET_IRQS``
  in each data/action form), one method per form, errors naming what was
  asked.  The kernel's rules (SEMANTICS 3 and 5) are the kernel's: this class
  enforces nothing, so tests can see exactly what the kernel accepts.
* Controllers holding the VMM's policy on top (SEMANTICS 5.1-5.3):

  - :class:`IntxController` -- the auto-masked level interrupt: the VMM path
    (signal -> assert, EOI -> deassert + UNMASK) and the KVM path (irqfd with
    a resamplefd that vfio-pci uses as its UNMASK eventfd).
  - :class:`MsiController` -- all vectors enabled in one call, retrying with
    fewer if the kernel offers fewer.
  - :class:`MsixController` -- vectors enabled as the guest unmasks them;
    growth by disable + re-enable when the kernel cannot resize (NORESIZE),
    one-vector calls when it can; per-vector masking emulated with a second
    eventfd per vector and a pending-bit array (the emulated PBA), since MSI-X
    MASK/UNMASK through SET_IRQS are ``ENOTTY``.

Each vector has up to two eventfds, named as QEMU names them: ``interrupt``
(read by the VMM's handler) and ``kvm_interrupt`` (bound to a KVM irqfd, owned
by the :class:`~pyvfio.irq.routing.RoutingTable`).  Which one the device
signals is decided by what SET_IRQS was given, and that is how a masked MSI-X
vector is diverted from the guest to the VMM without touching KVM.

The device is anything with ``.kernel`` (the syscall surface) and ``.fd`` (an
open VFIO device descriptor): the object layer's ``Device``, or a test's
raw descriptor wrapper.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
from typing import Any, Callable, Optional, Protocol, Sequence

from ..device import IrqInfo
from ..errors import VfioError
from ..uapi import vfio as uv
from ..uapi.struct import alloc_flex, flex_array
from .eventfd import EventFd, FdHandlers
from .kvm import MsiMessage
from .routing import RoutingTable, VectorRoute

__all__ = ["DeviceLike", "IrqInfo", "VfioIrqs", "IntxController", "MsiController", "MsixController"]

log = logging.getLogger("pyvfio.irq")

INTX = uv.VFIO_PCI_INTX_IRQ_INDEX
MSI = uv.VFIO_PCI_MSI_IRQ_INDEX
MSIX = uv.VFIO_PCI_MSIX_IRQ_INDEX
_INDEX_NAMES = {INTX: "INTx", MSI: "MSI", MSIX: "MSI-X", uv.VFIO_PCI_ERR_IRQ_INDEX: "ERR",
                uv.VFIO_PCI_REQ_IRQ_INDEX: "REQ"}


class DeviceLike(Protocol):
    """What the controllers need from a device: the kernel surface and the device descriptor."""

    @property
    def kernel(self) -> Any: ...

    @property
    def fd(self) -> int: ...


class VfioIrqs:
    """``GET_IRQ_INFO`` / ``SET_IRQS`` for one device: each data/action form as a method.

    Errors are :class:`VfioError` with the kernel's errno, the ioctl name and
    what was asked (index, range, form).
    """

    def __init__(self, device: DeviceLike) -> None:
        self.device = device
        self.calls = 0  # SET_IRQS issued (benchmarks and tests count them)

    def irq_info(self, index: int) -> IrqInfo:
        info = uv.vfio_irq_info(argsz=ctypes.sizeof(uv.vfio_irq_info), index=index)
        self.device.kernel.ioctl(self.device.fd, uv.VFIO_DEVICE_GET_IRQ_INFO, info)
        return IrqInfo(index, int(info.flags), int(info.count))

    def set_irqs(self, index: int, flags: int, start: int, count: int, data: bytes = b"") -> int:
        """One raw ``VFIO_DEVICE_SET_IRQS``; returns the ioctl's result (a positive one is meaningful for MSI)."""
        irqs = alloc_flex(uv.vfio_irq_set, len(data), flags=flags, index=index, start=start, count=count)
        if data:
            ctypes.memmove(ctypes.addressof(flex_array(irqs)), data, len(data))
        self.calls += 1
        try:
            return int(self.device.kernel.ioctl(self.device.fd, uv.VFIO_DEVICE_SET_IRQS, irqs))
        except VfioError as e:
            raise VfioError(e.errno or 0, e.ioctl, _describe(index, flags, start, count, e.reason)) from None
        except OSError as e:
            raise VfioError(e.errno or 0, "VFIO_DEVICE_SET_IRQS", _describe(index, flags, start, count, "")) from None

    def set_eventfds(self, index: int, start: int, fds: Sequence[int]) -> int:
        """TRIGGER + EVENTFD: wire vectors ``start..`` to ``fds`` (-1 frees or skips one); enables the index."""
        data = (ctypes.c_int32 * len(fds))(*fds)
        return self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_TRIGGER,
                             start, len(fds), bytes(data))

    def disable(self, index: int) -> None:
        """TRIGGER + NONE with count 0: disable the index (every vector's eventfd is released)."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0)

    def trigger(self, index: int, start: int = 0, count: int = 1) -> None:
        """TRIGGER + NONE: loopback, the kernel signals the wired eventfds as if the device had interrupted."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_TRIGGER, start, count)

    def trigger_bool(self, index: int, start: int, which: Sequence[bool]) -> None:
        """TRIGGER + BOOL: loopback for the vectors whose flag is set."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_BOOL | uv.VFIO_IRQ_SET_ACTION_TRIGGER, start, len(which),
                      bytes(1 if w else 0 for w in which))

    def mask(self, index: int = INTX) -> None:
        """MASK + NONE (INTx only: MSI/MSI-X masking is ENOTTY)."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_MASK, 0, 1)

    def unmask(self, index: int = INTX) -> None:
        """UNMASK + NONE; on INTx still asserted by the device it re-signals instead of unmasking."""
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_NONE | uv.VFIO_IRQ_SET_ACTION_UNMASK, 0, 1)

    def set_unmask_eventfd(self, fd: int, index: int = INTX) -> None:
        """UNMASK + EVENTFD: every write to ``fd`` unmasks (the KVM resamplefd target); ``-1`` removes it."""
        data = bytes(ctypes.c_int32(fd))
        self.set_irqs(index, uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, data)


def _describe(index: int, flags: int, start: int, count: int, reason: str) -> str:
    form = "|".join(str(m.name) for m in uv.VfioIrqSetFlag if flags & m) or "no flags"
    unknown = flags & ~(uv.VFIO_IRQ_SET_DATA_TYPE_MASK | uv.VFIO_IRQ_SET_ACTION_TYPE_MASK)
    if unknown:
        form += f"|{unknown:#x}"
    text = f"{_INDEX_NAMES.get(index, f'index {index}')} {form} start {start} count {count}"
    return f"{text}: {reason}" if reason else text


# ---------------------------------------------------------------------------------------------
# INTx


class IntxController:
    """INTx as QEMU drives it (``vfio_intx_*``, SEMANTICS 5.1).

    VMM path: the ``interrupt`` eventfd's handler marks the line pending and
    calls ``set_level(True)`` (for a KVM guest, ``KVM_IRQ_LINE``); the VMM
    calls :meth:`eoi` when it sees the guest acknowledge, which lowers the line
    and UNMASKs.  vfio-pci auto-masks after each interrupt, so nothing more
    arrives until then.

    KVM path (:meth:`enable_kvm`): the same ``interrupt`` eventfd becomes a
    resampling irqfd on the line's GSI, and a new ``unmask`` eventfd is both
    KVM's resamplefd and vfio-pci's UNMASK eventfd, so the guest's EOI unmasks
    the device without user space.
    """

    KEY = ("intx", 0)

    def __init__(self, irqs: VfioIrqs, handlers: FdHandlers, *,
                 set_level: Optional[Callable[[bool], None]] = None) -> None:
        self.irqs = irqs
        self.handlers = handlers
        self.set_level = set_level
        self.interrupt: Optional[EventFd] = None
        self.unmask_fd: Optional[EventFd] = None
        self.router: Optional[RoutingTable] = None
        self.pending = False
        self.interrupts = 0  # taken by the VMM handler

    @property
    def enabled(self) -> bool:
        return self.interrupt is not None

    @property
    def kvm(self) -> bool:
        return self.router is not None

    def enable(self) -> None:
        """TRIGGER with a new ``interrupt`` eventfd and install the VMM handler."""
        if self.interrupt is not None:
            raise RuntimeError("INTx is already enabled")
        efd = EventFd()
        try:
            self.irqs.set_eventfds(INTX, 0, [efd.fd])
        except BaseException:
            efd.close()
            raise
        self.interrupt = efd
        self.handlers.set_handler(efd.fd, self._interrupt)

    def _interrupt(self, count: int) -> None:
        self.interrupts += 1
        self.pending = True
        if self.set_level is not None:
            self.set_level(True)

    def eoi(self) -> None:
        """The guest acknowledged (QEMU detects it by trapping BAR access): lower the line and UNMASK."""
        if self.pending:
            self.pending = False
            if self.set_level is not None:
                self.set_level(False)
            self.irqs.unmask()

    def enable_kvm(self, router: RoutingTable, gsi: int) -> None:
        """Move INTx to a resampling KVM irqfd on ``gsi`` (QEMU ``vfio_intx_enable_kvm``, same order)."""
        if self.interrupt is None or self.router is not None:
            raise RuntimeError("enable_kvm needs INTx enabled on the VMM path")
        self.handlers.remove_handler(self.interrupt.fd)  # 1. stop the VMM consuming; the line is masked next
        self.irqs.mask()
        self.pending = False  # 2. deassert
        if self.set_level is not None:
            self.set_level(False)
        unmask = EventFd()  # 3.
        try:
            router.add_intx(self.KEY, gsi, self.interrupt, resample=unmask)  # 4. KVM_IRQFD with resamplefd
            try:
                self.irqs.set_unmask_eventfd(unmask.fd)  # 5. vfio-pci unmasks on each resamplefd write
            except BaseException:
                router.remove(self.KEY)
                raise
        except BaseException:
            unmask.close()
            self.handlers.set_handler(self.interrupt.fd, self._interrupt)
            self.irqs.unmask()
            raise
        self.unmask_fd = unmask
        self.router = router
        self.irqs.unmask()  # 6.

    def disable_kvm(self) -> None:
        """Back to the VMM path (QEMU ``vfio_intx_disable_kvm``), then UNMASK in case an event was missed."""
        if self.router is None or self.interrupt is None:
            return
        self.irqs.mask()
        self.pending = False
        if self.set_level is not None:
            self.set_level(False)
        router, self.router = self.router, None
        router.remove(self.KEY)
        # Closing the unmask eventfd detaches the kernel's virqfd on Linux (EPOLLHUP), but only when this
        # was the file's last reference; removing it explicitly works whoever else holds the file.
        self.irqs.set_unmask_eventfd(-1)
        if self.unmask_fd is not None:
            self.unmask_fd.close()
            self.unmask_fd = None
        self.handlers.set_handler(self.interrupt.fd, self._interrupt)
        self.irqs.unmask()

    def disable(self) -> None:
        """Disable INTx at the device and release everything (KVM path first)."""
        if self.interrupt is None:
            return
        self.disable_kvm()
        self.handlers.remove_handler(self.interrupt.fd)
        try:
            self.irqs.disable(INTX)
        finally:
            self.interrupt.close()
            self.interrupt = None
            if self.pending and self.set_level is not None:
                self.set_level(False)
            self.pending = False

    def __repr__(self) -> str:
        return f"IntxController(enabled={self.enabled}, kvm={self.kvm}, pending={self.pending})"


# ---------------------------------------------------------------------------------------------
# MSI and MSI-X vectors


class _Vector:
    """One MSI/MSI-X vector on the VMM side (QEMU's ``VFIOMSIVector``)."""

    __slots__ = ("nr", "interrupt", "msg", "use")

    def __init__(self, nr: int, msg: MsiMessage) -> None:
        self.nr = nr
        self.interrupt = EventFd()
        self.msg = msg
        self.use = True


Deliver = Callable[[int, MsiMessage], None]


class _VectorsBase:
    """What MSI and MSI-X share: per-vector ``interrupt`` eventfds and optional KVM routes."""

    index = MSI

    def __init__(self, irqs: VfioIrqs, handlers: FdHandlers, router: Optional[RoutingTable] = None, *,
                 deliver: Optional[Deliver] = None) -> None:
        self.irqs = irqs
        self.handlers = handlers
        self.router = router
        self.deliver_fn = deliver
        self.vectors: dict[int, _Vector] = {}
        self.nr_vectors = 0  # how many vectors the kernel has been asked to enable
        self.delivered: list[int] = []  # vectors the VMM delivered (when no deliver callback is given)

    def key(self, nr: int) -> tuple[str, int]:
        return ("msix" if self.index == MSIX else "msi", nr)

    def kvm_route(self, nr: int) -> Optional[VectorRoute]:
        """The vector's KVM route (its ``kvm_interrupt`` eventfd and GSI), if it has one."""
        if self.router is None:
            return None
        k = self.key(nr)
        return self.router[k] if k in self.router else None

    def _new_vector(self, nr: int, msg: MsiMessage) -> _Vector:
        vec = _Vector(nr, msg)
        try:
            if self.router is not None and self.router.vm is not None:
                self.router.add_msi(self.key(nr), msg)  # kvm_interrupt eventfd, route and irqfd
        except BaseException:
            vec.interrupt.close()
            raise
        self.vectors[nr] = vec
        self.handlers.set_handler(vec.interrupt.fd, functools.partial(self._interrupt, vec))
        return vec

    def _drop_vector(self, vec: _Vector) -> None:
        self.handlers.remove_handler(vec.interrupt.fd)
        if self.router is not None and self.key(vec.nr) in self.router:
            self.router.remove(self.key(vec.nr))
        vec.interrupt.close()
        self.vectors.pop(vec.nr, None)

    def _interrupt(self, vec: _Vector, count: int) -> None:
        self.deliver(vec.nr)

    def deliver(self, nr: int) -> None:
        """Deliver vector ``nr`` from user space: the callback, else ``KVM_SIGNAL_MSI``, else record it."""
        vec = self.vectors[nr]
        if self.deliver_fn is not None:
            self.deliver_fn(nr, vec.msg)
        elif self.router is not None and self.router.vm is not None:
            self.router.vm.signal_msi(vec.msg)
            self.delivered.append(nr)
        else:
            self.delivered.append(nr)

    def _fd_for(self, vec: Optional[_Vector], masked: bool = False) -> int:
        """The fd SET_IRQS should get for a vector (QEMU ``vfio_enable_vectors``' rule)."""
        if vec is None or not vec.use:
            return -1
        route = self.kvm_route(vec.nr)
        if route is None or masked:
            return vec.interrupt.fd
        return route.eventfd.fd


class MsiController(_VectorsBase):
    """MSI as QEMU drives it (``vfio_msi_enable``, SEMANTICS 5.2): every vector in one SET_IRQS.

    With a router, each vector gets a KVM route and the device signals the
    route's ``kvm_interrupt`` eventfd; MSI mask/pending bits belong to the
    device, so there is no user-space diversion.
    """

    index = MSI

    def enable(self, messages: Sequence[MsiMessage]) -> int:
        """Enable ``len(messages)`` vectors; returns how many the kernel took (fewer when it offers fewer)."""
        if self.vectors:
            raise RuntimeError("MSI is already enabled")
        nr = len(messages)
        while True:
            batch = _batch(self.router)
            try:
                with batch:
                    for i in range(nr):
                        self._new_vector(i, messages[i])
                self.nr_vectors = nr
                ret = self.irqs.set_eventfds(MSI, 0, [self._fd_for(self.vectors[i]) for i in range(nr)])
            except BaseException:
                self._teardown()
                raise
            if ret > 0 and ret < nr:  # older kernels offer fewer vectors with a positive return: retry
                log.info("MSI: the kernel offers %d of %d vectors, retrying", ret, nr)
                self._teardown(disable=False)
                nr = ret
                continue
            return nr

    def update(self, nr: int, msg: MsiMessage) -> None:
        """The guest rewrote a vector's address/data while enabled (QEMU ``vfio_update_msi``)."""
        vec = self.vectors[nr]
        vec.msg = msg
        if self.kvm_route(nr) is not None:
            assert self.router is not None
            self.router.update_msi(self.key(nr), msg)

    def disable(self) -> None:
        """DATA_NONE count 0, then drop routes and eventfds."""
        if not self.vectors:
            return
        try:
            self.irqs.disable(MSI)
        finally:
            self._teardown(disable=False)

    def _teardown(self, disable: bool = True) -> None:
        if disable and self.nr_vectors:
            try:
                self.irqs.disable(MSI)
            except OSError:
                pass
        batch = _batch(self.router)
        with batch:
            for vec in list(self.vectors.values()):
                self._drop_vector(vec)
        self.nr_vectors = 0


class MsixController(_VectorsBase):
    """MSI-X as QEMU drives it (``vfio_msix_*``, SEMANTICS 5.3), including per-vector mask emulation.

    The guest-visible table state is :attr:`masked` (one vector-control mask
    bit per entry, all set after reset) and the emulated PBA :attr:`pending`.
    :meth:`mask`/:meth:`unmask` are what a guest write to an entry's vector
    control becomes; :meth:`set_message` a write to its address/data.

    * Unmasking an entry *uses* the vector: it gets its ``interrupt``
      eventfd (and a KVM route when a router is given) and the kernel is told
      to signal it -- growing the enabled range by disable + re-enable of
      everything when the kernel cannot resize (``noresize``), or with a
      one-vector call when it can.  A pending bit is then cleared and the
      interrupt delivered.
    * Masking an entry with a KVM route switches the vector's trigger to the
      ``interrupt`` eventfd (the route stays), so a firing reaches the VMM's
      handler, which finds the entry masked and sets its PBA bit instead of
      delivering.
    * ``noresize`` defaults to the index's ``VFIO_IRQ_INFO_NORESIZE`` flag.
    """

    index = MSIX

    def __init__(self, irqs: VfioIrqs, handlers: FdHandlers, router: Optional[RoutingTable] = None, *,
                 deliver: Optional[Deliver] = None, noresize: Optional[bool] = None) -> None:
        super().__init__(irqs, handlers, router, deliver=deliver)
        info = irqs.irq_info(MSIX)
        if info.count == 0:
            raise ValueError("the device has no MSI-X capability (VFIO_PCI_MSIX_IRQ_INDEX count is 0)")
        self.entries = info.count
        self.noresize = info.noresize if noresize is None else noresize
        self.masked = [True] * self.entries
        self.messages: list[Optional[MsiMessage]] = [None] * self.entries
        self.pending = [False] * self.entries
        self.enabled = False

    # -- the emulated PBA
    @property
    def pba_overlay(self) -> bool:
        """Whether QEMU would have its PBA overlay enabled: iff some bit is pending."""
        return any(self.pending)

    def pba(self) -> bytes:
        """The emulated Pending Bit Array as the guest reads it (64-bit words, little endian)."""
        words = (self.entries + 63) // 64
        value = sum(1 << i for i, p in enumerate(self.pending) if p)
        return value.to_bytes(words * 8, "little")

    # -- enable / disable
    def enable(self) -> None:
        """The guest set MSI-X Enable: put the device in MSI-X mode with no usable vector.

        A SET_IRQS of vector 0 with fd -1 allocates the index and wires
        nothing, matching a guest whose table is still all masked (QEMU
        ``vfio_enable_msix_no_vec``).  Vectors already unmasked are used.
        """
        if self.enabled:
            return
        self.irqs.set_eventfds(MSIX, 0, [-1])
        self.enabled = True
        self.nr_vectors = 0
        batch = _batch(self.router)
        with batch:
            for nr in range(self.entries):
                if not self.masked[nr] and self.messages[nr] is not None:
                    self._use(nr)

    def disable(self) -> None:
        """Release and drop every used vector, DISABLE the index, clear the PBA (QEMU ``vfio_msix_disable``)."""
        if not self.enabled:
            return
        try:
            self.irqs.disable(MSIX)
        finally:
            batch = _batch(self.router)
            with batch:
                for vec in list(self.vectors.values()):
                    self._drop_vector(vec)
            self.nr_vectors = 0
            self.pending = [False] * self.entries
            self.enabled = False

    # -- guest writes to the table
    def set_message(self, nr: int, msg: MsiMessage) -> None:
        """The guest wrote entry ``nr``'s address/data."""
        self._check(nr)
        self.messages[nr] = msg
        vec = self.vectors.get(nr)
        if vec is not None and vec.msg != msg:
            vec.msg = msg
            if self.kvm_route(nr) is not None:
                assert self.router is not None
                self.router.update_msi(self.key(nr), msg)

    def unmask(self, nr: int) -> None:
        """The guest cleared entry ``nr``'s mask bit: use the vector, then deliver a pending interrupt."""
        self._check(nr)
        if not self.masked[nr]:
            return
        self.masked[nr] = False
        if self.enabled:
            self._use(nr)
            if self.pending[nr]:  # the MSI-X core delivers what the PBA held
                self.pending[nr] = False
                self.deliver(nr)

    def mask(self, nr: int) -> None:
        """The guest set entry ``nr``'s mask bit (QEMU ``vfio_msix_vector_release``)."""
        self._check(nr)
        if self.masked[nr]:
            return
        self.masked[nr] = True
        vec = self.vectors.get(nr)
        if self.enabled and vec is not None and self.kvm_route(nr) is not None:
            self.irqs.set_eventfds(MSIX, nr, [vec.interrupt.fd])  # divert from KVM to the VMM; keep the route

    def _check(self, nr: int) -> None:
        if not 0 <= nr < self.entries:
            raise IndexError(f"MSI-X entry {nr} outside 0..{self.entries - 1}")

    def _use(self, nr: int) -> None:
        """QEMU ``vfio_msix_vector_do_use`` for an unmasked entry."""
        msg = self.messages[nr]
        if msg is None:
            raise ValueError(f"MSI-X entry {nr} has no message: set_message() before unmasking")
        vec = self.vectors.get(nr)
        if vec is None:
            vec = self._new_vector(nr, msg)
        vec.use = True
        resizing = nr >= self.nr_vectors
        if resizing:
            self.nr_vectors = nr + 1
        if self.noresize and resizing:
            # the kernel cannot add vectors to an enabled index: disable, then enable all in one call
            self.irqs.disable(MSIX)
            self.irqs.set_eventfds(MSIX, 0, [self._fd_for(self.vectors.get(i), self.masked[i])
                                             for i in range(self.nr_vectors)])
        else:
            self.irqs.set_eventfds(MSIX, nr, [self._fd_for(vec, self.masked[nr])])

    def _interrupt(self, vec: _Vector, count: int) -> None:
        """QEMU ``vfio_msi_interrupt``: a masked entry's firing sets its PBA bit instead of being delivered."""
        if self.masked[vec.nr]:
            self.pending[vec.nr] = True
            return
        self.deliver(vec.nr)

    def release_vector(self, nr: int) -> None:
        """Free one vector at the device (SET_IRQS fd -1) and drop its eventfds; the index stays enabled."""
        vec = self.vectors.get(nr)
        if vec is None:
            return
        self.irqs.set_eventfds(MSIX, nr, [-1])
        self._drop_vector(vec)

    def __repr__(self) -> str:
        used = sorted(self.vectors)
        return (f"MsixController(entries={self.entries}, enabled={self.enabled}, noresize={self.noresize}, "
                f"nr_vectors={self.nr_vectors}, used={used}, pending={[i for i, p in enumerate(self.pending) if p]})")


def _batch(router: Optional[RoutingTable]) -> "contextlib.AbstractContextManager[None]":
    """One ``KVM_SET_GSI_ROUTING`` for a group of route changes (nothing to batch without a router)."""
    return router.batch() if router is not None else contextlib.nullcontext()
