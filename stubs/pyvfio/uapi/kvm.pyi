"""Generated from pyvfio.uapi.kvm by tools/gen_stubs.py: do not edit."""

import ctypes
import enum

from pyvfio.uapi.ioctl import IoctlDef
from pyvfio.uapi.struct import Struct, Union

KVM_NR_INTERRUPTS: int
class kvm_pic_state(Struct):
    last_irr: int
    irr: int
    imr: int
    isr: int
    priority_add: int
    irq_base: int
    read_reg_select: int
    poll: int
    special_mask: int
    init_state: int
    auto_eoi: int
    rotate_on_auto_eoi: int
    special_fully_nested_mode: int
    init4: int
    elcr: int
    elcr_mask: int
    def __init__(self, last_irr: int = ..., irr: int = ..., imr: int = ..., isr: int = ..., priority_add: int = ..., irq_base: int = ..., read_reg_select: int = ..., poll: int = ..., special_mask: int = ..., init_state: int = ..., auto_eoi: int = ..., rotate_on_auto_eoi: int = ..., special_fully_nested_mode: int = ..., init4: int = ..., elcr: int = ..., elcr_mask: int = ...) -> None: ...

KVM_IOAPIC_NUM_PINS: int
class _kvm_ioapic_redirtbl_fields(Struct):
    vector: int
    delivery_mode: int
    dest_mode: int
    delivery_status: int
    polarity: int
    remote_irr: int
    trig_mode: int
    mask: int
    reserve: int
    reserved: ctypes.Array[ctypes.c_ubyte]
    dest_id: int
    def __init__(self, vector: int = ..., delivery_mode: int = ..., dest_mode: int = ..., delivery_status: int = ..., polarity: int = ..., remote_irr: int = ..., trig_mode: int = ..., mask: int = ..., reserve: int = ..., reserved: ctypes.Array[ctypes.c_ubyte] = ..., dest_id: int = ...) -> None: ...

class _kvm_ioapic_redirtbl_entry(Union):
    bits: int
    fields: _kvm_ioapic_redirtbl_fields
    def __init__(self, bits: int = ..., fields: _kvm_ioapic_redirtbl_fields = ...) -> None: ...

class kvm_ioapic_state(Struct):
    base_address: int
    ioregsel: int
    id: int
    irr: int
    pad: int
    redirtbl: ctypes.Array[_kvm_ioapic_redirtbl_entry]
    def __init__(self, base_address: int = ..., ioregsel: int = ..., id: int = ..., irr: int = ..., pad: int = ..., redirtbl: ctypes.Array[_kvm_ioapic_redirtbl_entry] = ...) -> None: ...

KVM_IRQCHIP_PIC_MASTER: int
KVM_IRQCHIP_PIC_SLAVE: int
KVM_IRQCHIP_IOAPIC: int
KVM_NR_IRQCHIPS: int
class KvmIrqchipId(enum.IntEnum):
    PIC_MASTER = 0
    PIC_SLAVE = 1
    IOAPIC = 2

KVM_APIC_REG_SIZE: int
class kvm_lapic_state(Struct):
    regs: bytes
    def __init__(self, regs: bytes = ...) -> None: ...

KVM_API_VERSION: int
class _kvm_irq_level_u(Union):
    irq: int
    status: int
    def __init__(self, irq: int = ..., status: int = ...) -> None: ...

class kvm_irq_level(Struct):
    _u: _kvm_irq_level_u
    irq: int
    status: int
    level: int
    def __init__(self, level: int = ...) -> None: ...

class _kvm_irqchip_chip(Union):
    dummy: bytes
    pic: kvm_pic_state
    ioapic: kvm_ioapic_state
    def __init__(self, dummy: bytes = ..., pic: kvm_pic_state = ..., ioapic: kvm_ioapic_state = ...) -> None: ...

class kvm_irqchip(Struct):
    chip_id: int
    pad: int
    chip: _kvm_irqchip_chip
    def __init__(self, chip_id: int = ..., pad: int = ..., chip: _kvm_irqchip_chip = ...) -> None: ...

KVMIO: int
KVM_GET_API_VERSION: int
KVM_CREATE_VM: int
KVM_CHECK_EXTENSION: int
KVM_GET_VCPU_MMAP_SIZE: int
KVM_CAP_IRQCHIP: int
KVM_CAP_NR_VCPUS: int
KVM_CAP_IRQ_ROUTING: int
KVM_CAP_IRQ_INJECT_STATUS: int
KVM_CAP_IRQFD: int
KVM_CAP_IOEVENTFD: int
KVM_CAP_MAX_VCPUS: int
KVM_CAP_SIGNAL_MSI: int
KVM_CAP_IRQFD_RESAMPLE: int
KVM_CAP_CHECK_EXTENSION_VM: int
KVM_CAP_SPLIT_IRQCHIP: int
KVM_CAP_MAX_VCPU_ID: int
KVM_CAP_MSI_DEVID: int
class KvmCap(enum.IntEnum):
    IRQCHIP = 0
    NR_VCPUS = 9
    IRQ_ROUTING = 25
    IRQ_INJECT_STATUS = 26
    IRQFD = 32
    IOEVENTFD = 36
    MAX_VCPUS = 66
    SIGNAL_MSI = 77
    IRQFD_RESAMPLE = 82
    CHECK_EXTENSION_VM = 105
    SPLIT_IRQCHIP = 121
    MAX_VCPU_ID = 128
    MSI_DEVID = 131

class kvm_irq_routing_irqchip(Struct):
    irqchip: int
    pin: int
    def __init__(self, irqchip: int = ..., pin: int = ...) -> None: ...

class _kvm_irq_routing_msi_u(Union):
    pad: int
    devid: int
    def __init__(self, pad: int = ..., devid: int = ...) -> None: ...

class kvm_irq_routing_msi(Struct):
    address_lo: int
    address_hi: int
    data: int
    _u: _kvm_irq_routing_msi_u
    pad: int
    devid: int
    def __init__(self, address_lo: int = ..., address_hi: int = ..., data: int = ...) -> None: ...

class kvm_irq_routing_s390_adapter(Struct):
    ind_addr: int
    summary_addr: int
    ind_offset: int
    summary_offset: int
    adapter_id: int
    def __init__(self, ind_addr: int = ..., summary_addr: int = ..., ind_offset: int = ..., summary_offset: int = ..., adapter_id: int = ...) -> None: ...

class kvm_irq_routing_hv_sint(Struct):
    vcpu: int
    sint: int
    def __init__(self, vcpu: int = ..., sint: int = ...) -> None: ...

class kvm_irq_routing_xen_evtchn(Struct):
    port: int
    vcpu: int
    priority: int
    def __init__(self, port: int = ..., vcpu: int = ..., priority: int = ...) -> None: ...

KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL: int
KVM_IRQ_ROUTING_IRQCHIP: int
KVM_IRQ_ROUTING_MSI: int
KVM_IRQ_ROUTING_S390_ADAPTER: int
KVM_IRQ_ROUTING_HV_SINT: int
KVM_IRQ_ROUTING_XEN_EVTCHN: int
class KvmIrqRoutingType(enum.IntEnum):
    IRQCHIP = 1
    MSI = 2
    S390_ADAPTER = 3
    HV_SINT = 4
    XEN_EVTCHN = 5

class _kvm_irq_routing_entry_u(Union):
    irqchip: kvm_irq_routing_irqchip
    msi: kvm_irq_routing_msi
    adapter: kvm_irq_routing_s390_adapter
    hv_sint: kvm_irq_routing_hv_sint
    xen_evtchn: kvm_irq_routing_xen_evtchn
    pad: ctypes.Array[ctypes.c_uint]
    def __init__(self, irqchip: kvm_irq_routing_irqchip = ..., msi: kvm_irq_routing_msi = ..., adapter: kvm_irq_routing_s390_adapter = ..., hv_sint: kvm_irq_routing_hv_sint = ..., xen_evtchn: kvm_irq_routing_xen_evtchn = ..., pad: ctypes.Array[ctypes.c_uint] = ...) -> None: ...

class kvm_irq_routing_entry(Struct):
    gsi: int
    type: int
    flags: int
    pad: int
    u: _kvm_irq_routing_entry_u
    def __init__(self, gsi: int = ..., type: int = ..., flags: int = ..., pad: int = ..., u: _kvm_irq_routing_entry_u = ...) -> None: ...

class kvm_irq_routing(Struct):
    nr: int
    flags: int
    entries: ctypes.Array[kvm_irq_routing_entry]
    def __init__(self, nr: int = ..., flags: int = ..., entries: ctypes.Array[kvm_irq_routing_entry] = ...) -> None: ...

KVM_IRQFD_FLAG_DEASSIGN: int
KVM_IRQFD_FLAG_RESAMPLE: int
class KvmIrqfdFlag(enum.IntFlag):
    DEASSIGN = 1
    RESAMPLE = 2

class kvm_irqfd(Struct):
    fd: int
    gsi: int
    flags: int
    resamplefd: int
    pad: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, fd: int = ..., gsi: int = ..., flags: int = ..., resamplefd: int = ..., pad: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

KVM_MSI_VALID_DEVID: int
class kvm_msi(Struct):
    address_lo: int
    address_hi: int
    data: int
    flags: int
    devid: int
    pad: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, address_lo: int = ..., address_hi: int = ..., data: int = ..., flags: int = ..., devid: int = ..., pad: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

KVM_CREATE_VCPU: int
KVM_CREATE_IRQCHIP: int
KVM_IRQ_LINE: int
KVM_GET_IRQCHIP: int
KVM_SET_IRQCHIP: int
KVM_IRQ_LINE_STATUS: int
KVM_SET_GSI_ROUTING: int
KVM_IRQFD: int
KVM_GET_LAPIC: int
KVM_SET_LAPIC: int
KVM_SIGNAL_MSI: int

IOCTLS: tuple[IoctlDef, ...]
STRUCTS: tuple[type[Struct] | type[Union], ...]
