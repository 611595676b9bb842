"""ctypes mirror of the parts of ``linux/kvm.h`` (and x86 ``asm/kvm.h``) that interrupt routing needs.

pyvfio does not run guests.  What it needs from KVM is the path a device
interrupt takes into a guest once VFIO has turned it into an eventfd signal:
a GSI routing table (GSI -> MSI message or interrupt-controller pin), irqfds
binding an eventfd to a GSI, the in-kernel interrupt controllers (PIC, IOAPIC,
one LAPIC per vCPU) and the calls that read their state back.  This module
mirrors exactly that subset, under the kernel's names and in the headers'
order: first what ``linux/kvm.h`` pulls in from the x86 ``asm/kvm.h``, then
``linux/kvm.h`` itself.  Layouts are checked byte for byte against both the
system's headers and the Linux 7.3 headers by ``tests/test_kvm_abi.py``.

How the KVM ioctl interface differs from VFIO's
-----------------------------------------------
* **Sized request numbers.**  Unlike VFIO and iommufd, KVM encodes direction
  and argument size in its numbers (``_IOW(KVMIO, 0x76, struct kvm_irqfd)``),
  so a struct that changes size is a different ioctl.  There is no ``argsz``.
* **Three descriptor kinds.**  ``/dev/kvm`` (the *system* fd) answers
  ``KVM_GET_API_VERSION``, ``KVM_CHECK_EXTENSION`` and ``KVM_CREATE_VM``; the
  *VM* fd returned by ``KVM_CREATE_VM`` owns interrupt controllers, routes and
  irqfds and creates vCPUs; a *vCPU* fd owns its LAPIC.  :data:`IOCTLS`
  records the kind for each command.
* **Capabilities.**  ``KVM_CHECK_EXTENSION`` with a ``KVM_CAP_*`` number
  returns 0 when absent and a positive value (sometimes a limit) when present.

Mirroring conventions are those of :mod:`pyvfio.uapi.vfio`: fixed-width
aliases from :mod:`pyvfio.uapi.struct`; flexible arrays as zero-length arrays
sized with ``alloc_flex``; anonymous unions as private helper classes listed
in ``_anonymous_``; a *named* member of an anonymous type (``u`` of a routing
entry, ``chip`` of ``kvm_irqchip``) as a private helper class under the
member's own name.  ``char`` arrays stay ``c_char`` arrays as in C: read
their raw bytes with ``struct_bytes`` or ``bytes(obj)``, never through the
attribute (ctypes stops a ``c_char`` array at its first NUL).
"""

from __future__ import annotations

import ctypes
import enum

from .ioctl import IoctlDef, _IO, _IOR, _IOW, _IOWR
from .struct import Struct, Union, c_char, s32, u8, u32, u64

_IntFlag = enum.IntFlag
_IntEnum = enum.IntEnum


# ===========================================================================
# x86 asm/kvm.h: the in-kernel interrupt controllers
# ===========================================================================

# Which optional parts of linux/kvm.h exist on x86 (the header tests them with #ifdef).
__KVM_HAVE_PIT = 1
__KVM_HAVE_IOAPIC = 1

KVM_NR_INTERRUPTS = 256


class kvm_pic_state(Struct):
    """One 8259 PIC as ``KVM_GET_IRQCHIP``/``KVM_SET_IRQCHIP`` see it (chip 0 master, 1 slave).

    ``irr`` holds the pins currently requesting service, ``imr`` the masked
    ones, ``isr`` those being serviced (set when a CPU acknowledges, cleared
    by EOI); ``irq_base`` is the vector of pin 0 after initialisation, and
    ``elcr`` marks level-triggered pins.  The rest is the programming state of
    the legacy chip.
    """

    _fields_ = [
        ("last_irr", u8),
        ("irr", u8),
        ("imr", u8),
        ("isr", u8),
        ("priority_add", u8),
        ("irq_base", u8),
        ("read_reg_select", u8),
        ("poll", u8),
        ("special_mask", u8),
        ("init_state", u8),
        ("auto_eoi", u8),
        ("rotate_on_auto_eoi", u8),
        ("special_fully_nested_mode", u8),
        ("init4", u8),
        ("elcr", u8),
        ("elcr_mask", u8),
    ]


KVM_IOAPIC_NUM_PINS = 24


class _kvm_ioapic_redirtbl_fields(Struct):
    """The decoded view of one IOAPIC redirection entry (bit fields of the low byte pair, then the destination).

    ``delivery_mode`` 0 is fixed, ``dest_mode`` 0 physical; ``trig_mode`` 1 is
    level.  ``remote_irr`` is set while a level interrupt delivered from this
    pin awaits its EOI; ``mask`` stops delivery (the pin's request stays in
    the IOAPIC's ``irr``).
    """

    _fields_ = [
        ("vector", u8),
        ("delivery_mode", u8, 3),
        ("dest_mode", u8, 1),
        ("delivery_status", u8, 1),
        ("polarity", u8, 1),
        ("remote_irr", u8, 1),
        ("trig_mode", u8, 1),
        ("mask", u8, 1),
        ("reserve", u8, 7),
        ("reserved", u8 * 4),
        ("dest_id", u8),
    ]


class _kvm_ioapic_redirtbl_entry(Union):
    """One redirection-table entry: the raw 64 bits or the decoded ``fields``."""

    _fields_ = [
        ("bits", u64),
        ("fields", _kvm_ioapic_redirtbl_fields),
    ]


class kvm_ioapic_state(Struct):
    """The IOAPIC as ``KVM_GET_IRQCHIP``/``KVM_SET_IRQCHIP`` (chip 2) see it.

    ``irr`` has one bit per pin whose line is asserted (level) or whose edge
    has not been delivered yet; ``redirtbl`` says where each pin goes.
    """

    _fields_ = [
        ("base_address", u64),
        ("ioregsel", u32),
        ("id", u32),
        ("irr", u32),
        ("pad", u32),
        ("redirtbl", _kvm_ioapic_redirtbl_entry * KVM_IOAPIC_NUM_PINS),
    ]


KVM_IRQCHIP_PIC_MASTER = 0
KVM_IRQCHIP_PIC_SLAVE = 1
KVM_IRQCHIP_IOAPIC = 2
KVM_NR_IRQCHIPS = 3


class KvmIrqchipId(_IntEnum):
    """``kvm_irqchip.chip_id`` and ``kvm_irq_routing_irqchip.irqchip`` (``KVM_IRQCHIP_*``)."""

    PIC_MASTER = KVM_IRQCHIP_PIC_MASTER
    PIC_SLAVE = KVM_IRQCHIP_PIC_SLAVE
    IOAPIC = KVM_IRQCHIP_IOAPIC


KVM_APIC_REG_SIZE = 0x400


class kvm_lapic_state(Struct):
    """A vCPU's local APIC register page, argument of ``KVM_GET_LAPIC``/``KVM_SET_LAPIC``.

    The 1 KiB image of the xAPIC MMIO page: every 32-bit register at a 16-byte
    stride (ID 0x20, TPR 0x80, SVR 0xF0, ISR 0x100, TMR 0x180, IRR 0x200...).
    The 256-bit ISR/TMR/IRR arrays are eight such registers each, vector ``v``
    in register ``v // 32``, bit ``v % 32``.
    """

    _fields_ = [
        ("regs", c_char * KVM_APIC_REG_SIZE),
    ]


# ===========================================================================
# linux/kvm.h
# ===========================================================================

KVM_API_VERSION = 12


class _kvm_irq_level_u(Union):
    _fields_ = [
        ("irq", u32),
        ("status", s32),
    ]


class kvm_irq_level(Struct):
    """Argument of ``KVM_IRQ_LINE``/``KVM_IRQ_LINE_STATUS`` (VM fd): drive GSI ``irq`` to ``level``.

    ``KVM_IRQ_LINE_STATUS`` writes the result back over the same word as
    ``status``: positive when delivered, 0 when coalesced (already pending),
    negative when masked.
    """

    _anonymous_ = ("_u",)
    _fields_ = [
        ("_u", _kvm_irq_level_u),
        ("level", u32),
    ]


class _kvm_irqchip_chip(Union):
    _fields_ = [
        ("dummy", c_char * 512),
        ("pic", kvm_pic_state),
        ("ioapic", kvm_ioapic_state),
    ]


class kvm_irqchip(Struct):
    """Argument of ``KVM_GET_IRQCHIP``/``KVM_SET_IRQCHIP`` (VM fd): one in-kernel chip's state.

    The caller sets ``chip_id`` (``KVM_IRQCHIP_*``); ``chip`` then holds the
    PIC or IOAPIC state.  No in-kernel irqchip -> ``ENXIO``; an unknown chip
    id -> ``EINVAL``.
    """

    _fields_ = [
        ("chip_id", u32),
        ("pad", u32),
        ("chip", _kvm_irqchip_chip),
    ]


KVMIO = 0xAE

# -- system fd (/dev/kvm) ---------------------------------------------------------------------

# KVM_GET_API_VERSION -- system fd, no argument.  Returns KVM_API_VERSION (12) on every
#   kernel since 2.6.22; anything else means an interface pyvfio does not speak.
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)
# KVM_CREATE_VM -- system fd, machine type by value (0 on x86).  Returns a new VM fd.
KVM_CREATE_VM = _IO(KVMIO, 0x01)
# KVM_CHECK_EXTENSION -- system fd (or VM fd with KVM_CAP_CHECK_EXTENSION_VM), KVM_CAP_* by
#   value.  0: not supported; > 0: supported (for some caps, a limit).
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)
# KVM_GET_VCPU_MMAP_SIZE -- system fd, no argument: bytes to mmap from a vCPU fd (kvm_run).
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)

# Capabilities for KVM_CHECK_EXTENSION (only those interrupt routing asks about).
KVM_CAP_IRQCHIP = 0
KVM_CAP_NR_VCPUS = 9
KVM_CAP_IRQ_ROUTING = 25
KVM_CAP_IRQ_INJECT_STATUS = 26
KVM_CAP_IRQFD = 32
KVM_CAP_IOEVENTFD = 36
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_SIGNAL_MSI = 77
KVM_CAP_IRQFD_RESAMPLE = 82
KVM_CAP_CHECK_EXTENSION_VM = 105
KVM_CAP_SPLIT_IRQCHIP = 121
KVM_CAP_MAX_VCPU_ID = 128
KVM_CAP_MSI_DEVID = 131


class KvmCap(_IntEnum):
    """The ``KVM_CAP_*`` numbers this mirror knows."""

    IRQCHIP = KVM_CAP_IRQCHIP
    NR_VCPUS = KVM_CAP_NR_VCPUS
    IRQ_ROUTING = KVM_CAP_IRQ_ROUTING
    IRQ_INJECT_STATUS = KVM_CAP_IRQ_INJECT_STATUS
    IRQFD = KVM_CAP_IRQFD
    IOEVENTFD = KVM_CAP_IOEVENTFD
    MAX_VCPUS = KVM_CAP_MAX_VCPUS
    SIGNAL_MSI = KVM_CAP_SIGNAL_MSI
    IRQFD_RESAMPLE = KVM_CAP_IRQFD_RESAMPLE
    CHECK_EXTENSION_VM = KVM_CAP_CHECK_EXTENSION_VM
    SPLIT_IRQCHIP = KVM_CAP_SPLIT_IRQCHIP
    MAX_VCPU_ID = KVM_CAP_MAX_VCPU_ID
    MSI_DEVID = KVM_CAP_MSI_DEVID


# -- GSI routing --------------------------------------------------------------------------------

class kvm_irq_routing_irqchip(Struct):
    """A route to pin ``pin`` of in-kernel chip ``irqchip`` (``KVM_IRQCHIP_*``): how INTx reaches a guest."""

    _fields_ = [
        ("irqchip", u32),
        ("pin", u32),
    ]


class _kvm_irq_routing_msi_u(Union):
    _fields_ = [
        ("pad", u32),
        ("devid", u32),
    ]


class kvm_irq_routing_msi(Struct):
    """A route that delivers the MSI message ``address_hi:address_lo`` / ``data``.

    On x86 the address selects the destination APIC (0xFEE00000 | dest << 12)
    and the data the vector and delivery mode.  ``devid`` is used only with
    ``KVM_MSI_VALID_DEVID`` in the entry's flags (ARM ITS).
    """

    _anonymous_ = ("_u",)
    _fields_ = [
        ("address_lo", u32),
        ("address_hi", u32),
        ("data", u32),
        ("_u", _kvm_irq_routing_msi_u),
    ]


class kvm_irq_routing_s390_adapter(Struct):
    """An s390 adapter-interrupt route (mirrored for the union's layout; unused on x86)."""

    _fields_ = [
        ("ind_addr", u64),
        ("summary_addr", u64),
        ("ind_offset", u64),
        ("summary_offset", u32),
        ("adapter_id", u32),
    ]


class kvm_irq_routing_hv_sint(Struct):
    """A Hyper-V synthetic interrupt route (mirrored for the union's layout)."""

    _fields_ = [
        ("vcpu", u32),
        ("sint", u32),
    ]


class kvm_irq_routing_xen_evtchn(Struct):
    """A Xen event-channel route (mirrored for the union's layout)."""

    _fields_ = [
        ("port", u32),
        ("vcpu", u32),
        ("priority", u32),
    ]


KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL = 0xFFFFFFFF  # ((__u32)(-1))

# gsi routing entry types
KVM_IRQ_ROUTING_IRQCHIP = 1
KVM_IRQ_ROUTING_MSI = 2
KVM_IRQ_ROUTING_S390_ADAPTER = 3
KVM_IRQ_ROUTING_HV_SINT = 4
KVM_IRQ_ROUTING_XEN_EVTCHN = 5


class KvmIrqRoutingType(_IntEnum):
    """``kvm_irq_routing_entry.type`` (``KVM_IRQ_ROUTING_*``)."""

    IRQCHIP = KVM_IRQ_ROUTING_IRQCHIP
    MSI = KVM_IRQ_ROUTING_MSI
    S390_ADAPTER = KVM_IRQ_ROUTING_S390_ADAPTER
    HV_SINT = KVM_IRQ_ROUTING_HV_SINT
    XEN_EVTCHN = KVM_IRQ_ROUTING_XEN_EVTCHN


class _kvm_irq_routing_entry_u(Union):
    _fields_ = [
        ("irqchip", kvm_irq_routing_irqchip),
        ("msi", kvm_irq_routing_msi),
        ("adapter", kvm_irq_routing_s390_adapter),
        ("hv_sint", kvm_irq_routing_hv_sint),
        ("xen_evtchn", kvm_irq_routing_xen_evtchn),
        ("pad", u32 * 8),
    ]


class kvm_irq_routing_entry(Struct):
    """One GSI route: ``gsi`` goes to what ``type`` selects in ``u``.

    A GSI may have one irqchip entry per chip (the default table sends GSIs
    0-15 to both a PIC pin and the IOAPIC pin of the same number) but only
    one entry of any other type.  ``flags`` must be 0 except
    ``KVM_MSI_VALID_DEVID`` on MSI routes where the VM supports it.
    """

    _fields_ = [
        ("gsi", u32),
        ("type", u32),
        ("flags", u32),
        ("pad", u32),
        ("u", _kvm_irq_routing_entry_u),
    ]


class kvm_irq_routing(Struct):
    """Argument of ``KVM_SET_GSI_ROUTING`` (VM fd): the *whole* routing table, ``nr`` entries.

    The call replaces every route at once (there is no add or remove), so a
    VMM keeps its own copy and resubmits it; irqfds follow their GSI to the
    new route.  Needs an in-kernel irqchip; ``nr`` above the kernel's limit
    (4096), non-zero ``flags``, a GSI at or above the limit, a second
    non-irqchip entry for a GSI, a bad pin or unknown type -> ``EINVAL``.
    """

    _fields_ = [
        ("nr", u32),
        ("flags", u32),
        ("entries", kvm_irq_routing_entry * 0),
    ]


# -- irqfd -------------------------------------------------------------------------------------

KVM_IRQFD_FLAG_DEASSIGN = 1 << 0
# Available with KVM_CAP_IRQFD_RESAMPLE: resamplefd is valid and the irqfd works in
# resampling (level-triggered) mode.
KVM_IRQFD_FLAG_RESAMPLE = 1 << 1


class KvmIrqfdFlag(_IntFlag):
    """``kvm_irqfd.flags`` (``KVM_IRQFD_FLAG_*``)."""

    DEASSIGN = KVM_IRQFD_FLAG_DEASSIGN
    RESAMPLE = KVM_IRQFD_FLAG_RESAMPLE


class kvm_irqfd(Struct):
    """Argument of ``KVM_IRQFD`` (VM fd): bind eventfd ``fd`` to ``gsi``, or unbind it.

    Assigned, every signal of ``fd`` raises ``gsi`` as an edge (assert then
    deassert).  If the eventfd already counts events when it is assigned, KVM
    injects once from a work queue, so the effect is asynchronous.  With
    ``KVM_IRQFD_FLAG_RESAMPLE`` the GSI is instead held asserted after a
    signal until the guest EOIs it; then KVM deasserts it and signals
    ``resamplefd`` (how a level-triggered INTx is emulated).  With
    ``KVM_IRQFD_FLAG_DEASSIGN`` the binding of ``fd`` to ``gsi`` is removed;
    removing one that does not exist succeeds.  An eventfd may back only one
    irqfd per VM (``EBUSY``); a descriptor that is not an eventfd ->
    ``EINVAL``, not open -> ``EBADF``; unknown flags or no in-kernel irqchip
    (resampling needs the full irqchip, not the split one) -> ``EINVAL``.
    """

    _fields_ = [
        ("fd", u32),
        ("gsi", u32),
        ("flags", u32),
        ("resamplefd", u32),
        ("pad", u8 * 16),
    ]


KVM_MSI_VALID_DEVID = 1 << 0


class kvm_msi(Struct):
    """Argument of ``KVM_SIGNAL_MSI`` (VM fd): deliver one MSI message now, without a route.

    Returns > 0 when delivered to that many vCPUs, 0 when the guest blocked
    it (no matching or enabled destination), < 0 on error.  Unknown
    ``flags`` -> ``EINVAL``.
    """

    _fields_ = [
        ("address_lo", u32),
        ("address_hi", u32),
        ("data", u32),
        ("flags", u32),
        ("devid", u32),
        ("pad", u8 * 12),
    ]


# -- VM fd -------------------------------------------------------------------------------------

# KVM_CREATE_VCPU -- VM fd, vCPU id by value.  Returns the vCPU fd.  An id already used -> EEXIST.
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)

# KVM_CREATE_IRQCHIP -- VM fd, no argument.  Creates the PICs, the IOAPIC and (for vCPUs made
#   afterwards) in-kernel LAPICs, and installs the default GSI routes.  Twice -> EEXIST; after
#   a vCPU exists -> EINVAL.
KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60)
# KVM_IRQ_LINE -- VM fd, struct kvm_irq_level: drive a GSI's line.
KVM_IRQ_LINE = _IOW(KVMIO, 0x61, kvm_irq_level)
# KVM_GET_IRQCHIP -- VM fd, struct kvm_irqchip (chip_id in, state out).
KVM_GET_IRQCHIP = _IOWR(KVMIO, 0x62, kvm_irqchip)
# KVM_SET_IRQCHIP -- VM fd, struct kvm_irqchip.  (_IOR in the header, a historical mistake that
#   became ABI: the argument is really an input.)
KVM_SET_IRQCHIP = _IOR(KVMIO, 0x63, kvm_irqchip)
# KVM_IRQ_LINE_STATUS -- VM fd, struct kvm_irq_level: KVM_IRQ_LINE that reports delivery.
KVM_IRQ_LINE_STATUS = _IOWR(KVMIO, 0x67, kvm_irq_level)
# KVM_SET_GSI_ROUTING -- VM fd, struct kvm_irq_routing + entries[].
KVM_SET_GSI_ROUTING = _IOW(KVMIO, 0x6A, kvm_irq_routing)
# KVM_IRQFD -- VM fd, struct kvm_irqfd.
KVM_IRQFD = _IOW(KVMIO, 0x76, kvm_irqfd)

# KVM_GET_LAPIC / KVM_SET_LAPIC -- vCPU fd, struct kvm_lapic_state.  Without an in-kernel
#   LAPIC -> EINVAL.
KVM_GET_LAPIC = _IOR(KVMIO, 0x8E, kvm_lapic_state)
KVM_SET_LAPIC = _IOW(KVMIO, 0x8F, kvm_lapic_state)

# KVM_SIGNAL_MSI -- VM fd, struct kvm_msi (available with KVM_CAP_SIGNAL_MSI).
KVM_SIGNAL_MSI = _IOW(KVMIO, 0xA5, kvm_msi)


IOCTLS: tuple[IoctlDef, ...] = (
    IoctlDef("KVM_GET_API_VERSION", KVM_GET_API_VERSION, "kvm system",
             "none (returns KVM_API_VERSION)", header="kvm.h"),
    IoctlDef("KVM_CREATE_VM", KVM_CREATE_VM, "kvm system",
             "machine type by value (returns a VM fd)", header="kvm.h"),
    IoctlDef("KVM_CHECK_EXTENSION", KVM_CHECK_EXTENSION, "kvm system",
             "KVM_CAP_* by value (also on a VM fd)", header="kvm.h"),
    IoctlDef("KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE, "kvm system",
             "none (returns a size)", header="kvm.h"),
    IoctlDef("KVM_CREATE_VCPU", KVM_CREATE_VCPU, "kvm vm",
             "vcpu id by value (returns a vCPU fd)", header="kvm.h"),
    IoctlDef("KVM_CREATE_IRQCHIP", KVM_CREATE_IRQCHIP, "kvm vm",
             "none", header="kvm.h"),
    IoctlDef("KVM_IRQ_LINE", KVM_IRQ_LINE, "kvm vm",
             "struct kvm_irq_level", header="kvm.h"),
    IoctlDef("KVM_GET_IRQCHIP", KVM_GET_IRQCHIP, "kvm vm",
             "struct kvm_irqchip", header="kvm.h"),
    IoctlDef("KVM_SET_IRQCHIP", KVM_SET_IRQCHIP, "kvm vm",
             "struct kvm_irqchip", header="kvm.h"),
    IoctlDef("KVM_IRQ_LINE_STATUS", KVM_IRQ_LINE_STATUS, "kvm vm",
             "struct kvm_irq_level", header="kvm.h"),
    IoctlDef("KVM_SET_GSI_ROUTING", KVM_SET_GSI_ROUTING, "kvm vm",
             "struct kvm_irq_routing + entries[]", header="kvm.h"),
    IoctlDef("KVM_IRQFD", KVM_IRQFD, "kvm vm",
             "struct kvm_irqfd", header="kvm.h"),
    IoctlDef("KVM_GET_LAPIC", KVM_GET_LAPIC, "kvm vcpu",
             "struct kvm_lapic_state", header="kvm.h"),
    IoctlDef("KVM_SET_LAPIC", KVM_SET_LAPIC, "kvm vcpu",
             "struct kvm_lapic_state", header="kvm.h"),
    IoctlDef("KVM_SIGNAL_MSI", KVM_SIGNAL_MSI, "kvm vm",
             "struct kvm_msi", header="kvm.h"),
)

#: Every mirrored top-level struct/union, in header order (private helpers of unnamed
#: types are reached through their members).
STRUCTS: tuple[type[ctypes.Structure | ctypes.Union], ...] = (
    kvm_pic_state,
    kvm_ioapic_state,
    kvm_lapic_state,
    kvm_irq_level,
    kvm_irqchip,
    kvm_irq_routing_irqchip,
    kvm_irq_routing_msi,
    kvm_irq_routing_s390_adapter,
    kvm_irq_routing_hv_sint,
    kvm_irq_routing_xen_evtchn,
    kvm_irq_routing_entry,
    kvm_irq_routing,
    kvm_irqfd,
    kvm_msi,
)
