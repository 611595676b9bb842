"""A small KVM VM: in-kernel interrupt controllers, vCPUs that never run, GSI routes and irqfds.

This is the far end of a device interrupt's path into a guest.  pyvfio uses it
to prove on a real ``/dev/kvm`` what happens to an eventfd signal once KVM
owns it -- that an MSI routed through ``KVM_SET_GSI_ROUTING`` + ``KVM_IRQFD``
lands in a vCPU's LAPIC IRR, that a resampling irqfd holds an IOAPIC line --
without running a guest (the host this was written on, ``kvm_pvm``, cannot
run one, and none is needed: the interrupt controllers are state that
``KVM_GET_LAPIC``/``KVM_GET_IRQCHIP`` read back).

The objects own descriptors and close in reverse order: :class:`Kvm`
(``/dev/kvm``) -> :class:`KvmVm` -> :class:`KvmVcpu`.  Failures raise
:class:`KvmError` naming the KVM ioctl.  KVM is the real kernel only; the
simulated kernel has no ``/dev/kvm``, so tests skip with
:func:`kvm_unavailable`'s reason where it is missing.

Things to know, each measured on a 6.18 host (``tests/test_kvm.py``):

* A vCPU's LAPIC starts software-disabled (SVR bit 8 clear) and drops
  fixed interrupts; a guest enables it by writing SVR.  A vCPU that never
  runs needs :meth:`KvmVcpu.enable_lapic` (``KVM_SET_LAPIC``) first.
* ``KVM_SET_GSI_ROUTING`` replaces the whole table, including the default
  PIC/IOAPIC routes ``KVM_CREATE_IRQCHIP`` installed; keep them with
  :func:`default_irqchip_routes` if the VM still needs them.
* An irqfd assigned over an eventfd that already counts events injects once
  from a kernel work queue: poll for the result with a bounded wait
  (:meth:`KvmVcpu.wait_irr`).  The assign does not consume the counter; a
  live irqfd consumes each later signal, and deassigning an irqfd reads the
  counter to zero (``eventfd_ctx_remove_wait_queue``).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import Any, Optional, Sequence

from ..errors import VfioError
from ..kernel.linux import Linux
from ..pci.events import MsiMessage
from ..uapi import kvm as uk
from ..uapi.struct import alloc_flex, flex_array, struct_bytes

__all__ = [
    "KvmError", "Kvm", "KvmVm", "KvmVcpu", "Lapic", "MsiMessage", "kvm_unavailable",
    "msi_route", "irqchip_route", "default_irqchip_routes",
    "APIC_ID", "APIC_SPIV", "APIC_ISR", "APIC_TMR", "APIC_IRR", "APIC_SPIV_APIC_ENABLED",
]

KVM_PATH = "/dev/kvm"

# Local APIC register offsets in the kvm_lapic_state page (xAPIC MMIO layout).
APIC_ID = 0x20
APIC_TASKPRI = 0x80
APIC_SPIV = 0xF0
APIC_ISR = 0x100
APIC_TMR = 0x180
APIC_IRR = 0x200
APIC_SPIV_APIC_ENABLED = 1 << 8

# x86 MSI data bits (the address bits and the message type live in pyvfio.pci.events, shared with the
# config space that holds the messages): trigger mode << 15, level << 14.
MSI_DATA_TRIGGER_LEVEL = 1 << 15
MSI_DATA_LEVEL_ASSERT = 1 << 14

# GSIs 0-23 are the IOAPIC's pins in KVM's default table; QEMU allocates MSI routes above them.
FIRST_MSI_GSI = 24

_NAMES = {d.request: d.name for d in uk.IOCTLS}
_linux = Linux()


class KvmError(VfioError):
    """A KVM ioctl failed (a :class:`VfioError`, so ``except OSError`` and ``.errno`` work as usual)."""


def _ioctl(fd: int, request: int, arg: Any = 0, what: str = "") -> int:
    try:
        return _linux.ioctl(fd, request, arg)
    except OSError as e:
        raise KvmError(e.errno or 0, _NAMES.get(request, f"ioctl {request:#x}"), what) from None


def kvm_unavailable(path: str = KVM_PATH) -> Optional[str]:
    """Why KVM cannot serve the interrupt-routing tests here, or None when it can."""
    if not os.path.exists(path):
        return f"no {path} on this machine (KVM is not loaded, or this is a guest without nested virtualisation)"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot open {path}: {os.strerror(e.errno or 0)} (run as root or join the kvm group)"
    try:
        version = _ioctl(fd, uk.KVM_GET_API_VERSION)
        if version != uk.KVM_API_VERSION:
            return f"KVM API version {version}, pyvfio speaks {uk.KVM_API_VERSION}"
        for cap in (uk.KVM_CAP_IRQCHIP, uk.KVM_CAP_IRQ_ROUTING, uk.KVM_CAP_IRQFD):
            if _ioctl(fd, uk.KVM_CHECK_EXTENSION, cap) <= 0:
                return f"KVM lacks {uk.KvmCap(cap).name}"
    except OSError as e:
        return f"KVM does not answer: {e}"
    finally:
        os.close(fd)
    return None


# -- MSI messages and routing entries ----------------------------------------------------------

def msi_route(gsi: int, msg: MsiMessage) -> uk.kvm_irq_routing_entry:
    """A ``KVM_IRQ_ROUTING_MSI`` entry sending ``gsi`` to ``msg``."""
    e = uk.kvm_irq_routing_entry(gsi=gsi, type=uk.KVM_IRQ_ROUTING_MSI)
    e.u.msi.address_lo = msg.address & 0xFFFFFFFF
    e.u.msi.address_hi = msg.address >> 32
    e.u.msi.data = msg.data
    return e


def irqchip_route(gsi: int, chip: int, pin: int) -> uk.kvm_irq_routing_entry:
    """A ``KVM_IRQ_ROUTING_IRQCHIP`` entry sending ``gsi`` to pin ``pin`` of ``chip`` (``KVM_IRQCHIP_*``)."""
    e = uk.kvm_irq_routing_entry(gsi=gsi, type=uk.KVM_IRQ_ROUTING_IRQCHIP)
    e.u.irqchip.irqchip = chip
    e.u.irqchip.pin = pin
    return e


def default_irqchip_routes() -> list[uk.kvm_irq_routing_entry]:
    """The table ``KVM_CREATE_IRQCHIP`` installs on x86: GSI n -> IOAPIC pin n (0-23), and GSI 0-15 -> PIC pin n % 8."""
    routes = []
    for gsi in range(uk.KVM_IOAPIC_NUM_PINS):
        routes.append(irqchip_route(gsi, uk.KVM_IRQCHIP_IOAPIC, gsi))
        if gsi < 16:
            chip = uk.KVM_IRQCHIP_PIC_MASTER if gsi < 8 else uk.KVM_IRQCHIP_PIC_SLAVE
            routes.append(irqchip_route(gsi, chip, gsi % 8))
    return routes


# -- LAPIC image -------------------------------------------------------------------------------

class Lapic:
    """A copy of a vCPU's LAPIC register page (``kvm_lapic_state``) with named accessors."""

    def __init__(self, state: uk.kvm_lapic_state) -> None:
        self._page = bytearray(struct_bytes(state))

    def reg(self, offset: int) -> int:
        return int(struct.unpack_from("<I", self._page, offset)[0])

    def set_reg(self, offset: int, value: int) -> None:
        struct.pack_into("<I", self._page, offset, value & 0xFFFFFFFF)

    def _vectors(self, base: int) -> set[int]:
        out: set[int] = set()
        for i in range(8):
            word = self.reg(base + 0x10 * i)
            out.update(i * 32 + bit for bit in range(32) if word >> bit & 1)
        return out

    @property
    def irr(self) -> set[int]:
        """Vectors requested and not yet taken by the CPU (Interrupt Request Register)."""
        return self._vectors(APIC_IRR)

    @property
    def isr(self) -> set[int]:
        """Vectors in service (taken, not yet EOIed)."""
        return self._vectors(APIC_ISR)

    @property
    def tmr(self) -> set[int]:
        """Vectors accepted as level-triggered (their EOI is broadcast to the IOAPIC)."""
        return self._vectors(APIC_TMR)

    @property
    def apic_id(self) -> int:
        return self.reg(APIC_ID) >> 24

    @property
    def software_enabled(self) -> bool:
        return bool(self.reg(APIC_SPIV) & APIC_SPIV_APIC_ENABLED)

    def state(self) -> uk.kvm_lapic_state:
        return uk.kvm_lapic_state.from_buffer_copy(bytes(self._page))

    def __repr__(self) -> str:
        return (f"Lapic(id={self.apic_id}, enabled={self.software_enabled}, irr={sorted(self.irr)}, "
                f"isr={sorted(self.isr)}, tmr={sorted(self.tmr)})")


# -- objects -----------------------------------------------------------------------------------

class Kvm:
    """``/dev/kvm``: the system descriptor that makes VMs."""

    def __init__(self, path: str = KVM_PATH) -> None:
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise KvmError(e.errno or 0, "open", "is KVM loaded, and may this user open it?", path) from None
        version = _ioctl(self._fd, uk.KVM_GET_API_VERSION)
        if version != uk.KVM_API_VERSION:
            os.close(self._fd)
            raise KvmError(errno.EINVAL, "KVM_GET_API_VERSION", f"API {version}, expected {uk.KVM_API_VERSION}")

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("/dev/kvm is closed")
        return self._fd

    def api_version(self) -> int:
        return _ioctl(self.fd, uk.KVM_GET_API_VERSION)

    def check_extension(self, cap: int) -> int:
        """0 when ``cap`` (``KVM_CAP_*``) is absent, else its positive value."""
        return _ioctl(self.fd, uk.KVM_CHECK_EXTENSION, cap)

    def create_vm(self, *, irqchip: bool = True, vcpus: int = 0, enable_lapic: bool = True) -> "KvmVm":
        """A new VM; with ``irqchip`` it gets the in-kernel PIC/IOAPIC/LAPICs and ``vcpus`` vCPUs."""
        vm = KvmVm(_ioctl(self.fd, uk.KVM_CREATE_VM, 0))
        try:
            if irqchip:
                vm.create_irqchip()
            for _ in range(vcpus):
                vcpu = vm.create_vcpu()
                if enable_lapic and irqchip:
                    vcpu.enable_lapic()
        except BaseException:
            vm.close()
            raise
        return vm

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "Kvm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Kvm(fd={self._fd})" if self._fd >= 0 else "Kvm(closed)"


class KvmVcpu:
    """One vCPU.  pyvfio never runs it: it exists for its LAPIC, the target of MSIs."""

    def __init__(self, vm: "KvmVm", fd: int, vcpu_id: int) -> None:
        self.vm = vm
        self._fd = fd
        self.id = vcpu_id

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError(f"vCPU {self.id} is closed")
        return self._fd

    def get_lapic(self) -> Lapic:
        state = uk.kvm_lapic_state()
        _ioctl(self.fd, uk.KVM_GET_LAPIC, state, f"vCPU {self.id}")
        return Lapic(state)

    def set_lapic(self, lapic: Lapic) -> None:
        _ioctl(self.fd, uk.KVM_SET_LAPIC, lapic.state(), f"vCPU {self.id}")

    def enable_lapic(self, spurious_vector: int = 0xFF) -> None:
        """Software-enable the LAPIC (SVR bit 8), as a guest's APIC setup would; until then fixed MSIs are dropped."""
        lapic = self.get_lapic()
        lapic.set_reg(APIC_SPIV, APIC_SPIV_APIC_ENABLED | (spurious_vector & 0xFF))
        self.set_lapic(lapic)

    def irr(self) -> set[int]:
        return self.get_lapic().irr

    def clear_irr(self) -> None:
        """Empty the IRR with ``KVM_SET_LAPIC``.

        A vCPU that never runs never takes (and so never clears) a requested
        vector; clearing it by hand lets one test observe the same vector
        arrive again.  It is a test device, not something a VMM does.
        """
        lapic = self.get_lapic()
        for i in range(8):
            lapic.set_reg(APIC_IRR + 0x10 * i, 0)
        self.set_lapic(lapic)

    def wait_irr(self, vector: int, timeout: float = 1.0) -> bool:
        """Poll the IRR until ``vector`` shows up or ``timeout`` s pass.

        Needed because injection can run from a kernel work queue (an irqfd
        assigned over a signalled eventfd, or an MSI the atomic path could
        not deliver): one read right after the trigger may come too early.
        """
        deadline = time.monotonic() + timeout
        while True:
            if vector in self.irr():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0002)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __repr__(self) -> str:
        return f"KvmVcpu(id={self.id}, fd={self._fd})"


class KvmVm:
    """A VM descriptor: interrupt controllers, GSI routing, irqfds, and its vCPUs (closed with it)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.vcpus: list[KvmVcpu] = []
        self.has_irqchip = False

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("the VM is closed")
        return self._fd

    def check_extension(self, cap: int) -> int:
        """VM-level ``KVM_CHECK_EXTENSION`` (answers can differ from the system fd's)."""
        return _ioctl(self.fd, uk.KVM_CHECK_EXTENSION, cap)

    def create_irqchip(self) -> None:
        _ioctl(self.fd, uk.KVM_CREATE_IRQCHIP, 0, "must precede every vCPU, once per VM")
        self.has_irqchip = True

    def create_vcpu(self, vcpu_id: Optional[int] = None) -> KvmVcpu:
        vid = len(self.vcpus) if vcpu_id is None else vcpu_id
        vcpu = KvmVcpu(self, _ioctl(self.fd, uk.KVM_CREATE_VCPU, vid, f"vCPU id {vid}"), vid)
        self.vcpus.append(vcpu)
        return vcpu

    # -- routes and irqfds
    def set_gsi_routing(self, entries: Sequence[uk.kvm_irq_routing_entry]) -> None:
        """Replace the whole routing table with ``entries``."""
        table = alloc_flex(uk.kvm_irq_routing, len(entries), nr=len(entries))
        if entries:
            arr = flex_array(table)
            for i, e in enumerate(entries):
                arr[i] = e
        _ioctl(self.fd, uk.KVM_SET_GSI_ROUTING, table, f"{len(entries)} routes")

    def irqfd(self, fd: int, gsi: int, resamplefd: Optional[int] = None) -> None:
        """Bind eventfd ``fd`` to ``gsi`` (resampling, level-triggered mode with ``resamplefd``)."""
        arg = uk.kvm_irqfd(fd=fd, gsi=gsi)
        if resamplefd is not None:
            arg.flags = uk.KVM_IRQFD_FLAG_RESAMPLE
            arg.resamplefd = resamplefd
        _ioctl(self.fd, uk.KVM_IRQFD, arg, f"assign eventfd {fd} to GSI {gsi}")

    def irqfd_deassign(self, fd: int, gsi: int) -> None:
        """Unbind eventfd ``fd`` from ``gsi``; returns once KVM no longer listens (the counter is reset)."""
        arg = uk.kvm_irqfd(fd=fd, gsi=gsi, flags=uk.KVM_IRQFD_FLAG_DEASSIGN)
        _ioctl(self.fd, uk.KVM_IRQFD, arg, f"deassign eventfd {fd} from GSI {gsi}")

    def signal_msi(self, msg: MsiMessage) -> int:
        """Deliver ``msg`` now (``KVM_SIGNAL_MSI``): > 0 delivered, 0 blocked by the guest's APIC state."""
        arg = uk.kvm_msi(address_lo=msg.address & 0xFFFFFFFF, address_hi=msg.address >> 32, data=msg.data)
        return _ioctl(self.fd, uk.KVM_SIGNAL_MSI, arg, repr(msg))

    def irq_line(self, gsi: int, level: int) -> int:
        """Drive GSI ``gsi`` to ``level`` (``KVM_IRQ_LINE_STATUS``): > 0 delivered, 0 coalesced, < 0 masked."""
        arg = uk.kvm_irq_level(level=level)
        arg.irq = gsi
        _ioctl(self.fd, uk.KVM_IRQ_LINE_STATUS, arg, f"GSI {gsi} level {level}")
        return int(arg.status)

    # -- interrupt controller state
    def get_irqchip(self, chip_id: int) -> uk.kvm_irqchip:
        chip = uk.kvm_irqchip(chip_id=chip_id)
        _ioctl(self.fd, uk.KVM_GET_IRQCHIP, chip, f"chip {chip_id}")
        return chip

    def set_irqchip(self, chip: uk.kvm_irqchip) -> None:
        _ioctl(self.fd, uk.KVM_SET_IRQCHIP, chip, f"chip {chip.chip_id}")

    def ioapic(self) -> uk.kvm_ioapic_state:
        return self.get_irqchip(uk.KVM_IRQCHIP_IOAPIC).chip.ioapic

    def pic(self, slave: bool = False) -> uk.kvm_pic_state:
        return self.get_irqchip(uk.KVM_IRQCHIP_PIC_SLAVE if slave else uk.KVM_IRQCHIP_PIC_MASTER).chip.pic

    def program_ioapic_pin(self, pin: int, vector: int, *, level: bool = True, masked: bool = False,
                           dest_id: int = 0) -> None:
        """Write IOAPIC redirection entry ``pin`` as a guest's IOAPIC driver would (fixed, physical)."""
        if not 0 <= pin < uk.KVM_IOAPIC_NUM_PINS:
            raise ValueError(f"IOAPIC pin {pin} outside 0..{uk.KVM_IOAPIC_NUM_PINS - 1}")
        chip = self.get_irqchip(uk.KVM_IRQCHIP_IOAPIC)
        entry = chip.chip.ioapic.redirtbl[pin]
        entry.bits = 0
        entry.fields.vector = vector
        entry.fields.trig_mode = 1 if level else 0
        entry.fields.mask = 1 if masked else 0
        entry.fields.dest_id = dest_id
        self.set_irqchip(chip)

    def close(self) -> None:
        """Close the vCPUs, then the VM (KVM tears down every irqfd of the VM on the last close)."""
        for vcpu in reversed(self.vcpus):
            vcpu.close()
        self.vcpus.clear()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "KvmVm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._fd < 0:
            return "KvmVm(closed)"
        return f"KvmVm(fd={self._fd}, irqchip={self.has_irqchip}, vcpus={len(self.vcpus)})"

