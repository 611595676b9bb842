"""ctypes mirror of ``include/uapi/linux/vfio.h`` (Linux 7.3.4, x86_64).

Every struct, union, constant and ioctl of the header appears here under the
kernel's own name and in the header's order, so this file can be read side by
side with the C header.  The layouts are byte-exact against the compiled ABI
oracle (``abi-x86_64.txt``).  Nothing here has behaviour; the objects that use
these definitions live in higher layers.

How the VFIO ioctl interface works
----------------------------------
* **Three (plus one) kinds of descriptor.**  A *container* (``/dev/vfio/vfio``)
  owns an IOMMU context; a *group* (``/dev/vfio/$GROUP``) is attached to a
  container and hands out *device* descriptors.  Since Linux 6.6 a device can
  also be opened directly as a character device (``/dev/vfio/devices/vfioN``,
  "cdev") and bound to an iommufd instead of a container.  Migration adds a
  fourth kind: the *data fd* returned by a migration state change.  Request
  numbers are reused across kinds (``VFIO_BASE + 12`` is a device's hot-reset
  query and a container's IOMMU info), so the descriptor decides the meaning;
  :data:`IOCTLS` records the kind for each command.
* **Plain ``_IO`` numbers.**  Every command is ``_IO(';', 100 + n)``: no
  direction or size is encoded, even where the kernel-doc shows ``_IOR`` /
  ``_IOW`` / ``_IOWR``.  The argument size travels inside the argument.
* **The argsz protocol.**  Argument structs begin with ``__u32 argsz``, which
  the caller sets to the number of bytes it passes (normally
  ``ctypes.sizeof(obj)``, or what :func:`~pyvfio.uapi.struct.alloc_flex`
  allocated).  The kernel checks ``argsz`` against the minimum size it needs
  (``EINVAL`` if smaller), ignores what it does not know, and never writes
  beyond ``argsz``.  That is how structs grow without new ioctl numbers.
  Unknown ``flags`` bits are refused with ``EINVAL``; an unknown command gives
  ``ENOTTY`` (or ``EINVAL`` on a container with no IOMMU driver yet).
* **Capability chains.**  The INFO ioctls (device, region, type1 IOMMU) can
  return more than the fixed struct: a chain of capabilities, each starting
  with :class:`vfio_info_cap_header`.  If the buffer is too small the call
  still succeeds, sets the ``*_CAPS`` flag, leaves ``cap_offset`` at 0 and
  raises ``argsz`` to the size needed; the caller re-allocates and asks
  again.  ``cap_offset`` and each ``next`` are byte offsets from the start of
  the whole info buffer; ``next == 0`` ends the chain.

Mirroring conventions
---------------------
* Field types use the aliases of :mod:`pyvfio.uapi.struct` (``u32`` for
  ``__u32`` and so on) because a ``__u32`` spelt inside a class body would be
  mangled by Python.
* A flexible array member (``type name[];``) is a zero-length array and is
  always the last field; ``alloc_flex``/``flex_array`` size and view it.
* An anonymous union is a private helper class placed under a private field
  name and listed in ``_anonymous_``, so its members are reachable directly on
  the outer struct at the C offset (``dev.devid``), exactly as in C.
* Function-like macros are small functions with the macro's name.
* Flag families are also :class:`enum.IntFlag` classes (``Vfio...Flag``) and
  id/index families :class:`enum.IntEnum` classes, for display only; the
  module-level ints stay the primary names.  The tagged C enum keeps its tag
  as class name (:class:`vfio_device_mig_state`).  To keep ``import`` cheap
  these display classes are built on first use (see ``_LazyEnum`` below);
  ``from pyvfio.uapi.vfio import VfioDmaMapFlag`` works as usual.
"""

from __future__ import annotations

import ctypes
import enum
import typing
from typing import Any

from .ioctl import IoctlDef, _IO
from .struct import Struct, Union, aligned_u64, s32, u8, u16, u32, u64

# Display enums: every flag family also as an ``enum.IntFlag`` (and every id
# family as an ``enum.IntEnum``) so values print by name.
_IntFlag = enum.IntFlag
_IntEnum = enum.IntEnum


# ===========================================================================
# API version and extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU ids)
# ===========================================================================

VFIO_API_VERSION = 0

VFIO_TYPE1_IOMMU = 1
VFIO_SPAPR_TCE_IOMMU = 2
VFIO_TYPE1v2_IOMMU = 3
# Not an IOMMU type but a property: the IOMMU enforces cache-coherent DMA
# (e.g. strips PCIe No-Snoop).  Can change as groups come and go.
VFIO_DMA_CC_IOMMU = 4
# POWER Enhanced Error Handling is available (VFIO_EEH_PE_OP).
VFIO_EEH = 5
# Was VFIO_TYPE1_NESTING_IOMMU; nesting type1 was removed and the number is
# kept reserved so it is never reused.
__VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6
VFIO_SPAPR_TCE_v2_IOMMU = 7
# No translation and no isolation: only VFIO_CHECK_EXTENSION works on such a
# container, it needs CAP_SYS_RAWIO and it taints the kernel.
VFIO_NOIOMMU_IOMMU = 8
# VFIO_DMA_UNMAP_FLAG_ALL is understood.
VFIO_UNMAP_ALL = 9
# VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR are understood.  Reported
# as 0 while any mediated (emulated-IOMMU) group is in the container, so it can
# change as groups are added or removed.
VFIO_UPDATE_VADDR = 10


class VfioExtension(_IntEnum):
    """Values for ``VFIO_CHECK_EXTENSION`` (and, for the IOMMU types, ``VFIO_SET_IOMMU``)."""

    TYPE1_IOMMU = VFIO_TYPE1_IOMMU
    SPAPR_TCE_IOMMU = VFIO_SPAPR_TCE_IOMMU
    TYPE1v2_IOMMU = VFIO_TYPE1v2_IOMMU
    DMA_CC_IOMMU = VFIO_DMA_CC_IOMMU
    EEH = VFIO_EEH
    RESERVED_TYPE1_NESTING_IOMMU = 6  # __VFIO_RESERVED_TYPE1_NESTING_IOMMU
    SPAPR_TCE_v2_IOMMU = VFIO_SPAPR_TCE_v2_IOMMU
    NOIOMMU_IOMMU = VFIO_NOIOMMU_IOMMU
    UNMAP_ALL = VFIO_UNMAP_ALL
    UPDATE_VADDR = VFIO_UPDATE_VADDR


# The ioctl "type" byte (the character ';') and the first command number.
# Every command is _IO(VFIO_TYPE, VFIO_BASE + n): argsz, not the request
# number, carries the argument size.
VFIO_TYPE = ord(";")
VFIO_BASE = 100


class vfio_info_cap_header(Struct):
    """Header that starts every capability in an INFO ioctl's capability chain.

    ``id`` is scoped to the ioctl that returned it (device, region or type1
    IOMMU info), ``version`` to the id.  ``next`` is the byte offset of the
    following capability from the start of the info buffer (not from this
    header); 0 ends the chain.  The capability's payload follows the header.
    If the caller's ``argsz`` was too small for the chain, the ioctl still
    succeeds but reports ``cap_offset == 0`` and the required ``argsz``.
    """

    _fields_ = [
        ("id", u16),
        ("version", u16),
        ("next", u32),
    ]


# ===========================================================================
# Container fd ioctls (/dev/vfio/vfio)
# ===========================================================================

# VFIO_GET_API_VERSION -- container fd, no argument.
#   Returns VFIO_API_VERSION (0), so userspace can refuse an incompatible API.
#   Always available.
VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0)

# VFIO_CHECK_EXTENSION -- container fd, __u32 extension id passed by value.
#   Returns 0 if unsupported (not an error) and a positive number if supported.
#   Before VFIO_SET_IOMMU the registered IOMMU drivers are polled; afterwards
#   only the chosen driver answers.  Always available.
VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1)

# VFIO_SET_IOMMU -- container fd, __s32 IOMMU type passed by value.
#   Picks the IOMMU backend (check it first with VFIO_CHECK_EXTENSION); the
#   container must already hold a group.  The type decides which container
#   ioctls exist afterwards.  No group or a backend already set -> EINVAL; no
#   driver accepts the type -> ENODEV.  There is no "unset": detaching the
#   last group releases the backend and every DMA mapping.
VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2)


# ===========================================================================
# Group fd ioctls (/dev/vfio/$GROUP)
# ===========================================================================


class vfio_group_status(Struct):
    """Argument of ``VFIO_GROUP_GET_STATUS`` (group fd).

    The caller sets ``argsz``; the kernel fills ``flags`` with
    ``VFIO_GROUP_FLAGS_*``: VIABLE when no device of the group is bound to a
    DMA-capable host driver (the group may be used), CONTAINER_SET when the
    group is attached to a container or iommufd.  ``argsz`` below 8 gives
    ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
    ]


VFIO_GROUP_FLAGS_VIABLE = 1 << 0
VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1

# VFIO_GROUP_GET_STATUS -- group fd, struct vfio_group_status.
VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3)


class VfioGroupFlag(_IntFlag):
    """``vfio_group_status.flags`` (``VFIO_GROUP_FLAGS_*``)."""

    VIABLE = VFIO_GROUP_FLAGS_VIABLE
    CONTAINER_SET = VFIO_GROUP_FLAGS_CONTAINER_SET


# VFIO_GROUP_SET_CONTAINER -- group fd, pointer to an __s32 holding a container
#   fd (or an iommufd, which gives the compat container).  A group belongs to
#   at most one container; a container may accept several groups.  Only after
#   this do the container's IOMMU ioctls and the group's device ioctls work.
#   Bad fd -> EBADF; already attached -> EINVAL; group not viable or mixing
#   no-IOMMU and real groups -> EPERM.
VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4)

# VFIO_GROUP_UNSET_CONTAINER -- group fd, no argument.
#   Undoes SET_CONTAINER.  All device fds of the group must be closed first
#   (else EBUSY); not attached -> EINVAL.  Removing the last group tears the
#   container's IOMMU state down, mappings included.
VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5)

# VFIO_GROUP_GET_DEVICE_FD -- group fd, pointer to a NUL-terminated device name
#   (as listed under the IOMMU group's sysfs "devices" directory).  Returns a
#   new device fd.  Name not in the group -> ENODEV; group without a container
#   that has an IOMMU backend (or an iommufd) -> EINVAL.
VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6)


# ===========================================================================
# Device fd ioctls
# ===========================================================================


class vfio_device_info(Struct):
    """Argument of ``VFIO_DEVICE_GET_INFO`` (device fd).

    Reports the bus type and abilities (``VFIO_DEVICE_FLAGS_*``), how many
    regions and IRQ indexes to query (``num_regions``/``num_irqs`` are the
    highest index + 1), and, with ``VFIO_DEVICE_FLAGS_CAPS``, a capability
    chain at ``cap_offset`` (ids ``VFIO_DEVICE_INFO_CAP_*``).  Follows the
    argsz/capability-chain retry protocol; ``argsz`` smaller than the fields
    up to ``num_irqs`` gives ``EINVAL``.  ``pad`` was added in 6.x; older
    kernels use a 20-byte struct, which is why ``argsz`` matters.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("num_regions", u32),
        ("num_irqs", u32),
        ("cap_offset", u32),
        ("pad", u32),
    ]


VFIO_DEVICE_FLAGS_RESET = 1 << 0  # VFIO_DEVICE_RESET works
VFIO_DEVICE_FLAGS_PCI = 1 << 1
VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2
VFIO_DEVICE_FLAGS_AMBA = 1 << 3
VFIO_DEVICE_FLAGS_CCW = 1 << 4
VFIO_DEVICE_FLAGS_AP = 1 << 5
VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6
VFIO_DEVICE_FLAGS_CAPS = 1 << 7  # a capability chain is reported
VFIO_DEVICE_FLAGS_CDX = 1 << 8

# VFIO_DEVICE_GET_INFO -- device fd, struct vfio_device_info (+ caps chain).
VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7)


class VfioDeviceFlag(_IntFlag):
    """``vfio_device_info.flags`` (``VFIO_DEVICE_FLAGS_*``)."""

    RESET = VFIO_DEVICE_FLAGS_RESET
    PCI = VFIO_DEVICE_FLAGS_PCI
    PLATFORM = VFIO_DEVICE_FLAGS_PLATFORM
    AMBA = VFIO_DEVICE_FLAGS_AMBA
    CCW = VFIO_DEVICE_FLAGS_CCW
    AP = VFIO_DEVICE_FLAGS_AP
    FSL_MC = VFIO_DEVICE_FLAGS_FSL_MC
    CAPS = VFIO_DEVICE_FLAGS_CAPS
    CDX = VFIO_DEVICE_FLAGS_CDX


# The "device_api" strings a mediated-device type advertises in sysfs; each
# matches one of the bus flags above.
VFIO_DEVICE_API_PCI_STRING = "vfio-pci"
VFIO_DEVICE_API_PLATFORM_STRING = "vfio-platform"
VFIO_DEVICE_API_AMBA_STRING = "vfio-amba"
VFIO_DEVICE_API_CCW_STRING = "vfio-ccw"
VFIO_DEVICE_API_AP_STRING = "vfio-ap"

# Device-info capability ids.  1-4 belong to s390 zPCI devices (payloads in
# linux/vfio_zdev.h, not mirrored here).
VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1
VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2
VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3
VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4

VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5


class vfio_device_info_cap_pci_atomic_comp(Struct):
    """Device-info capability ``VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP``.

    Tells which PCIe AtomicOp completion widths the path to the root bus
    supports (``VFIO_PCI_ATOMIC_COMP*`` bits in ``flags``), so a VMM can
    advertise matching capabilities to the guest.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("flags", u32),
        ("reserved", u32),
    ]


VFIO_PCI_ATOMIC_COMP32 = 1 << 0
VFIO_PCI_ATOMIC_COMP64 = 1 << 1
VFIO_PCI_ATOMIC_COMP128 = 1 << 2


class VfioDeviceInfoCap(_IntEnum):
    """Capability ids in ``VFIO_DEVICE_GET_INFO``'s chain (``VFIO_DEVICE_INFO_CAP_*``)."""

    ZPCI_BASE = VFIO_DEVICE_INFO_CAP_ZPCI_BASE
    ZPCI_GROUP = VFIO_DEVICE_INFO_CAP_ZPCI_GROUP
    ZPCI_UTIL = VFIO_DEVICE_INFO_CAP_ZPCI_UTIL
    ZPCI_PFIP = VFIO_DEVICE_INFO_CAP_ZPCI_PFIP
    PCI_ATOMIC_COMP = VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP


class VfioPciAtomicComp(_IntFlag):
    """``vfio_device_info_cap_pci_atomic_comp.flags`` (``VFIO_PCI_ATOMIC_COMP*``)."""

    COMP32 = VFIO_PCI_ATOMIC_COMP32
    COMP64 = VFIO_PCI_ATOMIC_COMP64
    COMP128 = VFIO_PCI_ATOMIC_COMP128


class vfio_region_info(Struct):
    """Argument of ``VFIO_DEVICE_GET_REGION_INFO`` (device fd).

    The caller sets ``argsz`` and ``index``; the kernel returns the region's
    ``size``, the ``offset`` at which it appears in the device fd (for
    pread/pwrite/mmap), access flags ``VFIO_REGION_INFO_FLAG_*`` and, with
    ``..._FLAG_CAPS``, a capability chain (``VFIO_REGION_INFO_CAP_*``).  A
    region of size 0 is unimplemented (e.g. an absent PCI BAR).  Region
    meaning is bus specific (see the ``VFIO_PCI_*_REGION_INDEX`` constants).
    An index at or beyond ``num_regions`` gives ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("index", u32),
        ("cap_offset", u32),
        ("size", aligned_u64),
        ("offset", aligned_u64),
    ]


VFIO_REGION_INFO_FLAG_READ = 1 << 0
VFIO_REGION_INFO_FLAG_WRITE = 1 << 1
VFIO_REGION_INFO_FLAG_MMAP = 1 << 2
VFIO_REGION_INFO_FLAG_CAPS = 1 << 3

# VFIO_DEVICE_GET_REGION_INFO -- device fd, struct vfio_region_info (+ caps).
VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8)


class VfioRegionInfoFlag(_IntFlag):
    """``vfio_region_info.flags`` (``VFIO_REGION_INFO_FLAG_*``)."""

    READ = VFIO_REGION_INFO_FLAG_READ
    WRITE = VFIO_REGION_INFO_FLAG_WRITE
    MMAP = VFIO_REGION_INFO_FLAG_MMAP
    CAPS = VFIO_REGION_INFO_FLAG_CAPS


VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1


class vfio_region_sparse_mmap_area(Struct):
    """One mmap-able window of a region, relative to the region's start."""

    _fields_ = [
        ("offset", aligned_u64),
        ("size", aligned_u64),
    ]


class vfio_region_info_cap_sparse_mmap(Struct):
    """Region capability ``VFIO_REGION_INFO_CAP_SPARSE_MMAP`` (version 1).

    When present, only the listed ``areas`` of an MMAP region may be mapped;
    mapping elsewhere can fail or misbehave (typically the MSI-X table is cut
    out).  Newer kernels report ``VFIO_REGION_INFO_CAP_MSIX_MAPPABLE``
    instead.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("nr_areas", u32),
        ("reserved", u32),
        ("areas", vfio_region_sparse_mmap_area * 0),
    ]


VFIO_REGION_INFO_CAP_TYPE = 2


class vfio_region_info_cap_type(Struct):
    """Region capability ``VFIO_REGION_INFO_CAP_TYPE`` (version 1).

    Names a device-specific region (index >= the bus's fixed regions) by
    ``type`` (``VFIO_REGION_TYPE_*``, global per bus driver) and ``subtype``
    (``VFIO_REGION_SUBTYPE_*``, meaningful per type), instead of giving
    fixed indexes a meaning.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("type", u32),
        ("subtype", u32),
    ]


# Region types.  A PCI vendor-specific type is VENDOR_TYPE | PCI vendor id.
# C's (1 << 31) is an int, i.e. INT_MIN: the mirror keeps that value (as the
# ABI oracle does).  The ``type`` field is __u32, so build the value to compare
# with as ``(VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor) & 0xFFFFFFFF``.
VFIO_REGION_TYPE_PCI_VENDOR_TYPE = -(1 << 31)
VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xFFFF
VFIO_REGION_TYPE_GFX = 1
VFIO_REGION_TYPE_CCW = 2
VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3

# Subtypes of PCI vendor 0x8086 (Intel IGD).
VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1
VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2
VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3

# Subtype of PCI vendor 0x10de (NVIDIA): GPU RAM over NVLink2.  No longer provided.
VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1

# Subtype of PCI vendor 0x1014 (IBM): NPU address-translation shootdown
# register.  No longer provided.
VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1

# Subtype of VFIO_REGION_TYPE_GFX.
VFIO_REGION_SUBTYPE_GFX_EDID = 1


class vfio_region_gfx_edid(Struct):
    """Layout of a ``VFIO_REGION_SUBTYPE_GFX_EDID`` region (virtual monitor EDID).

    Lets a VMM give a mediated GPU's virtual display an EDID blob.
    ``edid_offset``, ``edid_max_size``, ``max_xres`` and ``max_yres`` are
    read-only (0 resolution means unlimited); ``edid_size`` and ``link_state``
    (``VFIO_DEVICE_GFX_LINK_STATE_*``) are writable.  To change the EDID:
    take the link down, write the blob and its size, bring the link up.
    """

    _fields_ = [
        ("edid_offset", u32),
        ("edid_max_size", u32),
        ("edid_size", u32),
        ("max_xres", u32),
        ("max_yres", u32),
        ("link_state", u32),
    ]


VFIO_DEVICE_GFX_LINK_STATE_UP = 1
VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2

# Subtypes of VFIO_REGION_TYPE_CCW (s390 channel I/O).
VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1
VFIO_REGION_SUBTYPE_CCW_SCHIB = 2
VFIO_REGION_SUBTYPE_CCW_CRW = 3

# Subtype of VFIO_REGION_TYPE_MIGRATION_DEPRECATED (v1 migration region).
VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1


class vfio_device_migration_info(Struct):
    """Header of the deprecated v1 migration region (region-based migration).

    Kept for ABI completeness only: v1 migration was removed from the kernel
    in favour of ``VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`` (v2).  ``device_state``
    holds ``VFIO_DEVICE_STATE_V1_*`` bits; see :func:`VFIO_DEVICE_STATE_VALID`.
    """

    _fields_ = [
        ("device_state", u32),
        ("reserved", u32),
        ("pending_bytes", aligned_u64),
        ("data_offset", aligned_u64),
        ("data_size", aligned_u64),
    ]


VFIO_DEVICE_STATE_V1_STOP = 0
VFIO_DEVICE_STATE_V1_RUNNING = 1 << 0
VFIO_DEVICE_STATE_V1_SAVING = 1 << 1
VFIO_DEVICE_STATE_V1_RESUMING = 1 << 2
VFIO_DEVICE_STATE_MASK = (
    VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING
)


def VFIO_DEVICE_STATE_VALID(state: int) -> bool:
    """v1 state check: RESUMING may not be combined with any other state bit."""
    if state & VFIO_DEVICE_STATE_V1_RESUMING:
        return (state & VFIO_DEVICE_STATE_MASK) == VFIO_DEVICE_STATE_V1_RESUMING
    return True


def VFIO_DEVICE_STATE_IS_ERROR(state: int) -> bool:
    """v1 error encoding: SAVING and RESUMING together (and not RUNNING) means error."""
    return (state & VFIO_DEVICE_STATE_MASK) == (
        VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING
    )


def VFIO_DEVICE_STATE_SET_ERROR(state: int) -> int:
    """Return ``state`` with its v1 state bits replaced by the error encoding."""
    return (
        (state & ~VFIO_DEVICE_STATE_MASK)
        | VFIO_DEVICE_STATE_V1_SAVING
        | VFIO_DEVICE_STATE_V1_RESUMING
    )


class VfioDeviceStateV1(_IntFlag):
    """``vfio_device_migration_info.device_state`` bits of the deprecated v1 protocol."""

    STOP = VFIO_DEVICE_STATE_V1_STOP
    RUNNING = VFIO_DEVICE_STATE_V1_RUNNING
    SAVING = VFIO_DEVICE_STATE_V1_SAVING
    RESUMING = VFIO_DEVICE_STATE_V1_RESUMING


# Region capability without payload: the MSI-X table/PBA of this BAR may be
# mmapped (so neighbouring registers in the same page are reachable), but
# MSI-X is still configured through VFIO_DEVICE_SET_IRQS.
VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3

VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4


class vfio_region_info_cap_nvlink2_ssatgt(Struct):
    """Region capability ``VFIO_REGION_INFO_CAP_NVLINK2_SSATGT`` (deprecated, no longer sent).

    Gave the system-bus address where an NVLink2-attached GPU's RAM is mapped.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("tgt", aligned_u64),
    ]


VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5


class vfio_region_info_cap_nvlink2_lnkspd(Struct):
    """Region capability ``VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD`` (deprecated, no longer sent).

    Gave an NVLink2 bridge's fixed link speed from the device tree.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("link_speed", u32),
        ("__pad", u32),
    ]


class VfioRegionInfoCap(_IntEnum):
    """Capability ids in ``VFIO_DEVICE_GET_REGION_INFO``'s chain (``VFIO_REGION_INFO_CAP_*``)."""

    SPARSE_MMAP = VFIO_REGION_INFO_CAP_SPARSE_MMAP
    TYPE = VFIO_REGION_INFO_CAP_TYPE
    MSIX_MAPPABLE = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE
    NVLINK2_SSATGT = VFIO_REGION_INFO_CAP_NVLINK2_SSATGT
    NVLINK2_LNKSPD = VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD


class vfio_irq_info(Struct):
    """Argument of ``VFIO_DEVICE_GET_IRQ_INFO`` (device fd).

    The caller sets ``argsz`` and ``index``; the kernel returns ``count`` (how
    many interrupts the index holds, 0 if unimplemented) and flags:

    * EVENTFD -- can signal through an eventfd;
    * MASKABLE -- MASK/UNMASK actions are supported;
    * AUTOMASKED -- the line masks itself after firing and must be unmasked
      (level-triggered, e.g. INTx);
    * NORESIZE -- vectors are enabled as one set: growing it means disabling
      the whole index first (MSI, and MSI-X without dynamic allocation).

    An index at or beyond ``num_irqs`` gives ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("index", u32),
        ("count", u32),
    ]


VFIO_IRQ_INFO_EVENTFD = 1 << 0
VFIO_IRQ_INFO_MASKABLE = 1 << 1
VFIO_IRQ_INFO_AUTOMASKED = 1 << 2
VFIO_IRQ_INFO_NORESIZE = 1 << 3

# VFIO_DEVICE_GET_IRQ_INFO -- device fd, struct vfio_irq_info.
VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9)


class VfioIrqInfoFlag(_IntFlag):
    """``vfio_irq_info.flags`` (``VFIO_IRQ_INFO_*``)."""

    EVENTFD = VFIO_IRQ_INFO_EVENTFD
    MASKABLE = VFIO_IRQ_INFO_MASKABLE
    AUTOMASKED = VFIO_IRQ_INFO_AUTOMASKED
    NORESIZE = VFIO_IRQ_INFO_NORESIZE


class vfio_irq_set(Struct):
    """Argument of ``VFIO_DEVICE_SET_IRQS`` (device fd): signal, mask, unmask interrupts.

    ``flags`` holds exactly one DATA type and exactly one ACTION.  The call
    applies to sub-indexes ``start .. start+count-1`` of ``index``; ``data[]``
    carries one entry per sub-index: nothing for DATA_NONE, a ``__u8`` for
    DATA_BOOL (act only where non-zero), an ``__s32`` eventfd for
    DATA_EVENTFD (-1 removes or skips).  ACTION_TRIGGER with eventfds wires
    kernel->user signalling and enables the index; DATA_NONE with
    ``count == 0`` disables it; NONE/BOOL on a wired trigger fires it as a
    loopback test.  ACTION_MASK/UNMASK are user->kernel (an UNMASK eventfd
    acts as an irqfd resampler).  Bad index/range, not exactly one type or
    action, or ``argsz`` too small for ``data`` -> ``EINVAL``; an action the
    index does not support (e.g. masking MSI) -> ``ENOTTY``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("index", u32),
        ("start", u32),
        ("count", u32),
        ("data", u8 * 0),
    ]


VFIO_IRQ_SET_DATA_NONE = 1 << 0
VFIO_IRQ_SET_DATA_BOOL = 1 << 1
VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2
VFIO_IRQ_SET_ACTION_MASK = 1 << 3
VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4
VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5

# VFIO_DEVICE_SET_IRQS -- device fd, struct vfio_irq_set + data[].
VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10)

VFIO_IRQ_SET_DATA_TYPE_MASK = (
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD
)
VFIO_IRQ_SET_ACTION_TYPE_MASK = (
    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER
)


class VfioIrqSetFlag(_IntFlag):
    """``vfio_irq_set.flags`` (``VFIO_IRQ_SET_*``): one DATA_* bit plus one ACTION_* bit."""

    DATA_NONE = VFIO_IRQ_SET_DATA_NONE
    DATA_BOOL = VFIO_IRQ_SET_DATA_BOOL
    DATA_EVENTFD = VFIO_IRQ_SET_DATA_EVENTFD
    ACTION_MASK = VFIO_IRQ_SET_ACTION_MASK
    ACTION_UNMASK = VFIO_IRQ_SET_ACTION_UNMASK
    ACTION_TRIGGER = VFIO_IRQ_SET_ACTION_TRIGGER


# VFIO_DEVICE_RESET -- device fd, no argument.
#   Resets the device (function-level where possible).  Only when
#   vfio_device_info.flags has VFIO_DEVICE_FLAGS_RESET; otherwise EINVAL.
#   Interrupt setup and config state are lost on the device side, so users
#   disable interrupts before and restore them after.
VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11)


# Fixed region / IRQ indexes of vfio-pci.  Unimplemented regions report size
# 0 and unimplemented IRQ indexes count 0.  VGA covers the legacy I/O ports
# 0x3b0-0x3bb, 0x3c0-0x3df and MMIO 0xa0000-0xbffff at their own offsets
# within the region.  The number 9 is fixed ABI: indexes >= 9 are
# device-specific regions described by VFIO_REGION_INFO_CAP_TYPE.
VFIO_PCI_BAR0_REGION_INDEX = 0
VFIO_PCI_BAR1_REGION_INDEX = 1
VFIO_PCI_BAR2_REGION_INDEX = 2
VFIO_PCI_BAR3_REGION_INDEX = 3
VFIO_PCI_BAR4_REGION_INDEX = 4
VFIO_PCI_BAR5_REGION_INDEX = 5
VFIO_PCI_ROM_REGION_INDEX = 6
VFIO_PCI_CONFIG_REGION_INDEX = 7
VFIO_PCI_VGA_REGION_INDEX = 8
VFIO_PCI_NUM_REGIONS = 9

VFIO_PCI_INTX_IRQ_INDEX = 0
VFIO_PCI_MSI_IRQ_INDEX = 1
VFIO_PCI_MSIX_IRQ_INDEX = 2
VFIO_PCI_ERR_IRQ_INDEX = 3
VFIO_PCI_REQ_IRQ_INDEX = 4
VFIO_PCI_NUM_IRQS = 5

# Fixed region / IRQ indexes of vfio-ccw (s390 channel I/O).
VFIO_CCW_CONFIG_REGION_INDEX = 0
VFIO_CCW_NUM_REGIONS = 1

VFIO_CCW_IO_IRQ_INDEX = 0
VFIO_CCW_CRW_IRQ_INDEX = 1
VFIO_CCW_REQ_IRQ_INDEX = 2
VFIO_CCW_NUM_IRQS = 3

# IRQ indexes of vfio-ap (s390 crypto adapters).
VFIO_AP_REQ_IRQ_INDEX = 0
VFIO_AP_CFG_CHG_IRQ_INDEX = 1
VFIO_AP_NUM_IRQS = 2


# The display enums of the index families leave out the *_NUM_* counters: a
# count is not an index, and for vfio-pci region 9 and up are device-specific.
class VfioPciRegionIndex(_IntEnum):
    """vfio-pci fixed region indexes (``VFIO_PCI_*_REGION_INDEX``)."""

    BAR0 = VFIO_PCI_BAR0_REGION_INDEX
    BAR1 = VFIO_PCI_BAR1_REGION_INDEX
    BAR2 = VFIO_PCI_BAR2_REGION_INDEX
    BAR3 = VFIO_PCI_BAR3_REGION_INDEX
    BAR4 = VFIO_PCI_BAR4_REGION_INDEX
    BAR5 = VFIO_PCI_BAR5_REGION_INDEX
    ROM = VFIO_PCI_ROM_REGION_INDEX
    CONFIG = VFIO_PCI_CONFIG_REGION_INDEX
    VGA = VFIO_PCI_VGA_REGION_INDEX


class VfioPciIrqIndex(_IntEnum):
    """vfio-pci IRQ indexes (``VFIO_PCI_*_IRQ_INDEX``)."""

    INTX = VFIO_PCI_INTX_IRQ_INDEX
    MSI = VFIO_PCI_MSI_IRQ_INDEX
    MSIX = VFIO_PCI_MSIX_IRQ_INDEX
    ERR = VFIO_PCI_ERR_IRQ_INDEX
    REQ = VFIO_PCI_REQ_IRQ_INDEX


class VfioCcwRegionIndex(_IntEnum):
    """vfio-ccw fixed region indexes (``VFIO_CCW_*_REGION_INDEX``)."""

    CONFIG = VFIO_CCW_CONFIG_REGION_INDEX


class VfioCcwIrqIndex(_IntEnum):
    """vfio-ccw IRQ indexes (``VFIO_CCW_*_IRQ_INDEX``)."""

    IO = VFIO_CCW_IO_IRQ_INDEX
    CRW = VFIO_CCW_CRW_IRQ_INDEX
    REQ = VFIO_CCW_REQ_IRQ_INDEX


class VfioApIrqIndex(_IntEnum):
    """vfio-ap IRQ indexes (``VFIO_AP_*_IRQ_INDEX``)."""

    REQ = VFIO_AP_REQ_IRQ_INDEX
    CFG_CHG = VFIO_AP_CFG_CHG_IRQ_INDEX


class _vfio_pci_dependent_device_u(Union):
    """The anonymous union at the start of :class:`vfio_pci_dependent_device`."""

    _fields_ = [
        ("group_id", u32),
        ("devid", u32),
    ]


class vfio_pci_dependent_device(Struct):
    """One device affected by a hot reset: an element of ``vfio_pci_hot_reset_info.devices``.

    Gives the PCI address (``segment``, ``bus``, ``devfn``) and who owns it.
    A device opened through a group reports the IOMMU ``group_id``; a cdev
    opened device (``VFIO_PCI_HOT_RESET_FLAG_DEV_ID`` set) reports the iommufd
    ``devid``, or ``VFIO_PCI_DEVID_OWNED`` (owned implicitly through the same
    IOMMU group) or ``VFIO_PCI_DEVID_NOT_OWNED``.  ``group_id``/``devid`` are
    the two names of one anonymous-union member and are reachable directly.
    ``devid`` is ``__u32``: compare it with ``VFIO_PCI_DEVID_NOT_OWNED &
    0xFFFFFFFF``.
    """

    _anonymous_ = ("_u",)
    _fields_ = [
        ("_u", _vfio_pci_dependent_device_u),
        ("segment", u16),
        ("bus", u8),
        ("devfn", u8),
    ]


VFIO_PCI_DEVID_OWNED = 0
VFIO_PCI_DEVID_NOT_OWNED = -1


class vfio_pci_hot_reset_info(Struct):
    """Argument of ``VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`` (device fd).

    Lists every device a bus/slot reset of this device would also reset
    (``devices[]``, ``count`` entries), so the user can prove ownership before
    ``VFIO_DEVICE_PCI_HOT_RESET``.  For a cdev-opened device the kernel sets
    ``VFIO_PCI_HOT_RESET_FLAG_DEV_ID`` (entries carry devids) and, when the
    user owns them all, ``..._DEV_ID_OWNED``.  Buffer too small -> ``ENOSPC``
    with ``count`` set to the number needed; no bus or slot reset possible
    -> ``ENODEV``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("count", u32),
        ("devices", vfio_pci_dependent_device * 0),
    ]


VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0
VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1

# VFIO_DEVICE_GET_PCI_HOT_RESET_INFO -- device fd, struct vfio_pci_hot_reset_info + devices[].
VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12)


class VfioPciHotResetFlag(_IntFlag):
    """``vfio_pci_hot_reset_info.flags`` (``VFIO_PCI_HOT_RESET_FLAG_*``)."""

    DEV_ID = VFIO_PCI_HOT_RESET_FLAG_DEV_ID
    DEV_ID_OWNED = VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED


class vfio_pci_hot_reset(Struct):
    """Argument of ``VFIO_DEVICE_PCI_HOT_RESET`` (device fd).

    A hot reset resets a whole bus or slot, so the caller must own every
    affected device.  Group-opened devices prove it with ``group_fds[]``
    (``count`` fds covering every affected group; otherwise ``EINVAL`` or
    ``EPERM``).  A cdev-opened device passes an empty array: ownership comes
    from its iommufd context.  Group and cdev devices cannot be mixed in one
    reset.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("count", u32),
        ("group_fds", s32 * 0),
    ]


# VFIO_DEVICE_PCI_HOT_RESET -- device fd, struct vfio_pci_hot_reset + group_fds[].
VFIO_DEVICE_PCI_HOT_RESET = _IO(VFIO_TYPE, VFIO_BASE + 13)


class _vfio_device_gfx_plane_info_u(Union):
    """The anonymous union inside :class:`vfio_device_gfx_plane_info`."""

    _fields_ = [
        ("region_index", u32),
        ("dmabuf_id", u32),
    ]


class vfio_device_gfx_plane_info(Struct):
    """Argument of ``VFIO_DEVICE_QUERY_GFX_PLANE`` (device fd, mediated GPUs).

    The caller sets ``drm_plane_type`` and ``flags``.  PROBE together with
    DMABUF or REGION asks whether that way of exposing planes is supported
    (0 yes, ``EINVAL`` no).  DMABUF or REGION alone queries the plane: format,
    geometry, cursor position and hotspot (``0xFFFFFFFF`` when unknown), and
    either the ``region_index`` holding the framebuffer or a ``dmabuf_id`` to
    pass to ``VFIO_DEVICE_GET_GFX_DMABUF``.  A plane the guest disabled
    comes back successfully with zero format and size.  Other flag
    combinations -> ``EINVAL``.
    """

    _anonymous_ = ("_u",)
    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("drm_plane_type", u32),
        ("drm_format", u32),
        ("drm_format_mod", aligned_u64),
        ("width", u32),
        ("height", u32),
        ("stride", u32),
        ("size", u32),
        ("x_pos", u32),
        ("y_pos", u32),
        ("x_hot", u32),
        ("y_hot", u32),
        ("_u", _vfio_device_gfx_plane_info_u),
        ("reserved", u32),
    ]


VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0
VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1
VFIO_GFX_PLANE_TYPE_REGION = 1 << 2

# VFIO_DEVICE_QUERY_GFX_PLANE -- device fd, struct vfio_device_gfx_plane_info.
VFIO_DEVICE_QUERY_GFX_PLANE = _IO(VFIO_TYPE, VFIO_BASE + 14)

# VFIO_DEVICE_GET_GFX_DMABUF -- device fd, pointer to a __u32 dmabuf_id (from
#   VFIO_DEVICE_QUERY_GFX_PLANE).  Returns a new dma-buf fd for that guest
#   framebuffer.
VFIO_DEVICE_GET_GFX_DMABUF = _IO(VFIO_TYPE, VFIO_BASE + 15)


class VfioGfxPlaneType(_IntFlag):
    """``vfio_device_gfx_plane_info.flags`` (``VFIO_GFX_PLANE_TYPE_*``)."""

    PROBE = VFIO_GFX_PLANE_TYPE_PROBE
    DMABUF = VFIO_GFX_PLANE_TYPE_DMABUF
    REGION = VFIO_GFX_PLANE_TYPE_REGION


class vfio_device_ioeventfd(Struct):
    """Argument of ``VFIO_DEVICE_IOEVENTFD`` (device fd).

    Asks the kernel to write ``data`` (width chosen by one
    ``VFIO_DEVICE_IOEVENTFD_<bits>`` flag) at device-fd ``offset`` each time
    eventfd ``fd`` fires, so a guest's doorbell write can reach the device
    without a trip through userspace.  ``fd = -1`` removes the binding.
    Support depends on the bus driver (vfio-pci: BARs, not the MSI-X table);
    unsupported offsets or widths fail with ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("offset", aligned_u64),
        ("data", aligned_u64),
        ("fd", s32),
        ("reserved", u32),
    ]


VFIO_DEVICE_IOEVENTFD_8 = 1 << 0
VFIO_DEVICE_IOEVENTFD_16 = 1 << 1
VFIO_DEVICE_IOEVENTFD_32 = 1 << 2
VFIO_DEVICE_IOEVENTFD_64 = 1 << 3
VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xF

# VFIO_DEVICE_IOEVENTFD -- device fd, struct vfio_device_ioeventfd.
VFIO_DEVICE_IOEVENTFD = _IO(VFIO_TYPE, VFIO_BASE + 16)


class VfioDeviceIoeventfdFlag(_IntFlag):
    """``vfio_device_ioeventfd.flags``: write width (``VFIO_DEVICE_IOEVENTFD_<bits>``)."""

    IOEVENTFD_8 = VFIO_DEVICE_IOEVENTFD_8
    IOEVENTFD_16 = VFIO_DEVICE_IOEVENTFD_16
    IOEVENTFD_32 = VFIO_DEVICE_IOEVENTFD_32
    IOEVENTFD_64 = VFIO_DEVICE_IOEVENTFD_64


class vfio_device_feature(Struct):
    """Argument of ``VFIO_DEVICE_FEATURE`` (device fd): get, set or probe one feature.

    The low 16 bits of ``flags`` (``VFIO_DEVICE_FEATURE_MASK``) select the
    feature (``VFIO_DEVICE_FEATURE_<name>`` ids); GET, SET and PROBE say what
    to do.  The feature's payload struct follows in ``data[]``.  PROBE
    (optionally with GET and/or SET) only asks whether the feature and those
    directions are supported and needs no payload.  GET and SET together
    without PROBE, unknown flag bits, an unsupported direction or a payload
    shorter than the feature needs -> ``EINVAL``; a feature the device does
    not implement -> ``ENOTTY``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("data", u8 * 0),
    ]


VFIO_DEVICE_FEATURE_MASK = 0xFFFF
VFIO_DEVICE_FEATURE_GET = 1 << 16
VFIO_DEVICE_FEATURE_SET = 1 << 17
VFIO_DEVICE_FEATURE_PROBE = 1 << 18

# VFIO_DEVICE_FEATURE -- device fd, struct vfio_device_feature + payload in data[].
VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17)


class VfioDeviceFeatureFlag(_IntFlag):
    """Direction bits of ``vfio_device_feature.flags`` (the feature id is the low 16 bits)."""

    GET = VFIO_DEVICE_FEATURE_GET
    SET = VFIO_DEVICE_FEATURE_SET
    PROBE = VFIO_DEVICE_FEATURE_PROBE


class vfio_device_bind_iommufd(Struct):
    """Argument of ``VFIO_DEVICE_BIND_IOMMUFD`` (device cdev fd only).

    Binds a cdev-opened device to the iommufd ``iommufd``; until then every
    other ioctl, read, write and mmap on the cdev fails with ``EINVAL``.  The
    kernel returns ``out_devid``, the device's id for iommufd commands.  With
    ``VFIO_DEVICE_BIND_FLAG_TOKEN``, ``token_uuid_ptr`` points to a 16-byte
    UUID, the same VF token the PF was given through
    ``VFIO_DEVICE_FEATURE_PCI_VF_TOKEN``.  Closing the fd unbinds.  Short
    ``argsz``, unknown flags, a negative fd, a group-obtained fd or a second
    bind -> ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("iommufd", s32),
        ("out_devid", u32),
        ("token_uuid_ptr", aligned_u64),
    ]


VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0

# VFIO_DEVICE_BIND_IOMMUFD -- device cdev fd, struct vfio_device_bind_iommufd.
VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18)


class VfioDeviceBindFlag(_IntFlag):
    """``vfio_device_bind_iommufd.flags`` (``VFIO_DEVICE_BIND_FLAG_*``)."""

    TOKEN = VFIO_DEVICE_BIND_FLAG_TOKEN


class vfio_device_attach_iommufd_pt(Struct):
    """Argument of ``VFIO_DEVICE_ATTACH_IOMMUFD_PT`` (device cdev fd only).

    Puts the bound device (or, with ``VFIO_DEVICE_ATTACH_PASID``, one
    ``pasid`` of it) behind an iommufd page table.  ``pt_id`` names an IOAS or
    a HWPT; for an IOAS the kernel finds or creates a suitable HWPT and writes
    its id back.  Attaching while already attached replaces the page table,
    no detach needed.  Undone by ``VFIO_DEVICE_DETACH_IOMMUFD_PT`` or closing
    the fd.  Device (or a group sibling) resetting -> ``EBUSY``; unknown flags
    -> ``EINVAL``; PASID without driver support -> ``EOPNOTSUPP``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("pt_id", u32),
        ("pasid", u32),
    ]


VFIO_DEVICE_ATTACH_PASID = 1 << 0

# VFIO_DEVICE_ATTACH_IOMMUFD_PT -- device cdev fd, struct vfio_device_attach_iommufd_pt.
VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19)


class VfioDeviceAttachFlag(_IntFlag):
    """``vfio_device_attach_iommufd_pt.flags`` (``VFIO_DEVICE_ATTACH_*``)."""

    PASID = VFIO_DEVICE_ATTACH_PASID


class vfio_device_detach_iommufd_pt(Struct):
    """Argument of ``VFIO_DEVICE_DETACH_IOMMUFD_PT`` (device cdev fd only).

    Detaches the device (or ``pasid`` with ``VFIO_DEVICE_DETACH_PASID``) from
    its page table; afterwards its DMA is blocked.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("pasid", u32),
    ]


VFIO_DEVICE_DETACH_PASID = 1 << 0

# VFIO_DEVICE_DETACH_IOMMUFD_PT -- device cdev fd, struct vfio_device_detach_iommufd_pt.
VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20)


class VfioDeviceDetachFlag(_IntFlag):
    """``vfio_device_detach_iommufd_pt.flags`` (``VFIO_DEVICE_DETACH_*``)."""

    PASID = VFIO_DEVICE_DETACH_PASID


# ---------------------------------------------------------------------------
# VFIO_DEVICE_FEATURE ids and payloads
# ---------------------------------------------------------------------------

# SET only, payload a 16-byte UUID: the shared secret between an SR-IOV PF's
# user and its VFs' users.  Settable on a PF with SR-IOV enabled and no VF open.
VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0


class vfio_device_feature_migration(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_MIGRATION`` (GET): which migration states exist.

    A successful GET means the device supports v2 migration.  ``flags`` always
    has ``VFIO_MIGRATION_STOP_COPY`` (STOP, STOP_COPY and RESUMING exist);
    ``P2P`` adds RUNNING_P2P, ``PRE_COPY`` adds PRE_COPY, both together add
    PRE_COPY_P2P.  RUNNING and ERROR always exist.
    """

    _fields_ = [
        ("flags", aligned_u64),
    ]


VFIO_MIGRATION_STOP_COPY = 1 << 0
VFIO_MIGRATION_P2P = 1 << 1
VFIO_MIGRATION_PRE_COPY = 1 << 2
VFIO_DEVICE_FEATURE_MIGRATION = 1


class VfioMigrationFlag(_IntFlag):
    """``vfio_device_feature_migration.flags`` (``VFIO_MIGRATION_*``)."""

    STOP_COPY = VFIO_MIGRATION_STOP_COPY
    P2P = VFIO_MIGRATION_P2P
    PRE_COPY = VFIO_MIGRATION_PRE_COPY


class vfio_device_feature_mig_state(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`` (GET and SET).

    SET moves the device to ``device_state`` (a :class:`vfio_device_mig_state`
    value), walking the shortest path of supported arcs; it returns only once
    the device is there.  An arc that opens a data session (into the saving
    states, or STOP -> RESUMING) returns the session's fd in ``data_fd``,
    which the caller reads from or writes to and must close; otherwise
    ``data_fd`` is -1.  On failure the device may be anywhere along the path,
    or in ERROR, from which only ``VFIO_DEVICE_RESET`` recovers.  Requesting
    ERROR, an unsupported state or a forbidden arc -> ``EINVAL``; no migration
    support -> ``ENOTTY``.  GET reports the current state with ``data_fd = -1``.
    """

    _fields_ = [
        ("device_state", u32),
        ("data_fd", s32),
    ]


VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2

# States of the v2 migration state machine (enum vfio_device_mig_state).
#   RUNNING      normal operation
#   STOP         no DMA, interrupts or other outside effect; internal state frozen
#   STOP_COPY    STOP while the internal state streams out on the data fd
#   RESUMING     stopped, loading a new internal state written to the data fd
#   ERROR        failed; only VFIO_DEVICE_RESET recovers (back to RUNNING)
#   RUNNING_P2P  running but starts no new peer-to-peer DMA (needs MIGRATION_P2P)
#   PRE_COPY     running while streaming state and tracking changes (needs PRE_COPY)
#   PRE_COPY_P2P PRE_COPY with P2P quiesced (needs both)
# PRE_COPY, PRE_COPY_P2P and STOP_COPY share one data session; leaving that
# group (or RESUMING) ends it.  STOP_COPY -> PRE_COPY* is not allowed.
VFIO_DEVICE_STATE_ERROR = 0
VFIO_DEVICE_STATE_STOP = 1
VFIO_DEVICE_STATE_RUNNING = 2
VFIO_DEVICE_STATE_STOP_COPY = 3
VFIO_DEVICE_STATE_RESUMING = 4
VFIO_DEVICE_STATE_RUNNING_P2P = 5
VFIO_DEVICE_STATE_PRE_COPY = 6
VFIO_DEVICE_STATE_PRE_COPY_P2P = 7
VFIO_DEVICE_STATE_NR = 8


class vfio_device_mig_state(_IntEnum):
    """``enum vfio_device_mig_state``: the v2 migration states (see the table above).

    Members keep the kernel's full names and equal the module-level ints.
    ``VFIO_DEVICE_STATE_NR`` is the number of states, not a state.
    """

    VFIO_DEVICE_STATE_ERROR = VFIO_DEVICE_STATE_ERROR
    VFIO_DEVICE_STATE_STOP = VFIO_DEVICE_STATE_STOP
    VFIO_DEVICE_STATE_RUNNING = VFIO_DEVICE_STATE_RUNNING
    VFIO_DEVICE_STATE_STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY
    VFIO_DEVICE_STATE_RESUMING = VFIO_DEVICE_STATE_RESUMING
    VFIO_DEVICE_STATE_RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P
    VFIO_DEVICE_STATE_PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY
    VFIO_DEVICE_STATE_PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P
    VFIO_DEVICE_STATE_NR = VFIO_DEVICE_STATE_NR


class vfio_precopy_info(Struct):
    """Argument of ``VFIO_MIG_GET_PRECOPY_INFO`` (migration data fd, PRE_COPY states only).

    Estimates what is left to read during pre-copy: ``initial_bytes`` (the
    initial state, falling toward 0; leaving PRE_COPY before it reaches 0
    tends to lengthen STOP_COPY) and ``dirty_bytes`` (state changed since it
    was read).  When both are 0, read() hits a temporary end of stream
    (``ENOMSG``).  ``flags`` is only an output, ``VFIO_PRECOPY_INFO_REINIT``
    (new initial data appeared), after the user opted in with
    ``VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2``.  ``argsz`` below 24 or a
    call outside PRE_COPY/PRE_COPY_P2P -> ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("initial_bytes", aligned_u64),
        ("dirty_bytes", aligned_u64),
    ]


VFIO_PRECOPY_INFO_REINIT = 1 << 0

# VFIO_MIG_GET_PRECOPY_INFO -- migration data fd, struct vfio_precopy_info.
VFIO_MIG_GET_PRECOPY_INFO = _IO(VFIO_TYPE, VFIO_BASE + 21)


class VfioPrecopyInfoFlag(_IntFlag):
    """``vfio_precopy_info.flags`` (``VFIO_PRECOPY_INFO_*``)."""

    REINIT = VFIO_PRECOPY_INFO_REINIT


# SET, no payload: let runtime power management put the device in a low-power
# state.  Any access wakes it as needed; mmaps are disabled until
# LOW_POWER_EXIT.
VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3


class vfio_device_low_power_entry_with_wakeup(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP`` (SET).

    Like ``LOW_POWER_ENTRY``, but single-shot: when the device wakes up the
    kernel signals ``wakeup_eventfd`` and does not let it sleep again until
    the user re-enters low power.
    """

    _fields_ = [
        ("wakeup_eventfd", s32),
        ("reserved", u32),
    ]


VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4

# SET, no payload: forbid low-power states again (may signal the wakeup eventfd).
VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5


class vfio_device_feature_dma_logging_control(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_DMA_LOGGING_START`` (SET).

    Starts device-side logging of DMA writes (dirty tracking for live
    migration) over ``num_ranges`` IOVA ranges; ``ranges`` is the user
    address of an array of :class:`vfio_device_feature_dma_logging_range`.
    ``page_size`` is a hint; the device writes back the granularity it chose.
    Only one START at a time, ended by ``..._DMA_LOGGING_STOP``.  Zero ranges,
    unaligned or overlapping ranges -> ``EINVAL``; more ranges than fit in a
    kernel page may be refused with ``E2BIG``; overflow -> ``EOVERFLOW``.
    """

    _fields_ = [
        ("page_size", aligned_u64),
        ("num_ranges", u32),
        ("__reserved", u32),
        ("ranges", aligned_u64),
    ]


class vfio_device_feature_dma_logging_range(Struct):
    """One IOVA range to track, element of the array ``dma_logging_control.ranges`` points to."""

    _fields_ = [
        ("iova", aligned_u64),
        ("length", aligned_u64),
    ]


VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6

# SET, no payload: stop the logging started by DMA_LOGGING_START.
VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7


class vfio_device_feature_dma_logging_report(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`` (GET).

    Reads and clears the device's DMA-write log for ``iova .. iova+length``.
    ``bitmap`` is the user address of a zeroed ``__u64`` array: one bit per
    ``page_size`` (any power of two, >= 4 KiB) of IOVA; the kernel only sets
    bits.  After any error treat the log as lost (assume everything dirty).
    Bad page size -> ``EINVAL``; overflow -> ``EOVERFLOW``; logging not
    started -> error.
    """

    _fields_ = [
        ("iova", aligned_u64),
        ("length", aligned_u64),
        ("page_size", aligned_u64),
        ("bitmap", aligned_u64),
    ]


VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8


class vfio_device_feature_mig_data_size(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`` (GET, any state).

    The device's estimate of how many bytes STOP_COPY would still stream.
    """

    _fields_ = [
        ("stop_copy_length", aligned_u64),
    ]


VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9


class vfio_device_feature_bus_master(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_BUS_MASTER`` (SET).

    Turns the device's bus mastering (its ability to DMA) off
    (``VFIO_DEVICE_FEATURE_CLEAR_MASTER``) or on (``..._SET_MASTER``) for
    buses without an in-band control.  Currently only CDX devices; PCI does
    this in config space.
    """

    _fields_ = [
        ("op", u32),
    ]


VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0
VFIO_DEVICE_FEATURE_SET_MASTER = 1
VFIO_DEVICE_FEATURE_BUS_MASTER = 10

VFIO_DEVICE_FEATURE_DMA_BUF = 11


class vfio_region_dma_range(Struct):
    """A slice (``offset``, ``length``) of a region, element of ``vfio_device_feature_dma_buf.dma_ranges``."""

    _fields_ = [
        ("offset", u64),
        ("length", u64),
    ]


class vfio_device_feature_dma_buf(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_DMA_BUF`` (GET): export region slices as a dma-buf.

    Creates a dma-buf (for example for peer-to-peer DMA) made of
    ``nr_ranges`` slices of region ``region_index``; ``open_flags`` are
    ``open(2)`` flags for the new fd (``O_RDWR``, ``O_CLOEXEC``...), ``flags``
    must be 0.  The ioctl's return value is the new fd.
    """

    _fields_ = [
        ("region_index", u32),
        ("open_flags", u32),
        ("flags", u32),
        ("nr_ranges", u32),
        ("dma_ranges", vfio_region_dma_range * 0),
    ]


# SET: opt in to the v2 behaviour of VFIO_MIG_GET_PRECOPY_INFO, where
# vfio_precopy_info.flags is a valid output.
VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 = 12


class vfio_device_feature_zpci_err(Struct):
    """Payload of ``VFIO_DEVICE_FEATURE_ZPCI_ERROR`` (GET, s390 vfio-pci).

    ``data`` is the user address of a buffer the kernel fills with the
    pending PCI error record (its length is given by the
    ``VFIO_DEVICE_INFO_CAP_ZPCI_BASE`` capability).  No pending error ->
    ``ENOMSG``.
    """

    _fields_ = [
        ("data", aligned_u64),
    ]


VFIO_DEVICE_FEATURE_ZPCI_ERROR = 13


class VfioDeviceFeature(_IntEnum):
    """Feature ids for the low 16 bits of ``vfio_device_feature.flags``."""

    PCI_VF_TOKEN = VFIO_DEVICE_FEATURE_PCI_VF_TOKEN
    MIGRATION = VFIO_DEVICE_FEATURE_MIGRATION
    MIG_DEVICE_STATE = VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
    LOW_POWER_ENTRY = VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
    LOW_POWER_ENTRY_WITH_WAKEUP = VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
    LOW_POWER_EXIT = VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
    DMA_LOGGING_START = VFIO_DEVICE_FEATURE_DMA_LOGGING_START
    DMA_LOGGING_STOP = VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
    DMA_LOGGING_REPORT = VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT
    MIG_DATA_SIZE = VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
    BUS_MASTER = VFIO_DEVICE_FEATURE_BUS_MASTER
    DMA_BUF = VFIO_DEVICE_FEATURE_DMA_BUF
    MIG_PRECOPY_INFOv2 = VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
    ZPCI_ERROR = VFIO_DEVICE_FEATURE_ZPCI_ERROR


# ===========================================================================
# Type1 IOMMU (container fd after VFIO_SET_IOMMU(VFIO_TYPE1*_IOMMU))
# ===========================================================================


class vfio_iommu_type1_info(Struct):
    """Argument of ``VFIO_IOMMU_GET_INFO`` (type1 container fd).

    With ``VFIO_IOMMU_INFO_PGSIZES``, ``iova_pgsizes`` is the bitmap of
    supported IOMMU page sizes (the smallest one is the map/unmap
    alignment).  With ``VFIO_IOMMU_INFO_CAPS``, a capability chain at
    ``cap_offset`` reports usable IOVA ranges, dirty-tracking limits and the
    remaining number of mappings (``VFIO_IOMMU_TYPE1_INFO_*``).  Follows the
    argsz/capability-chain retry protocol; short ``argsz`` -> ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("iova_pgsizes", aligned_u64),
        ("cap_offset", u32),
        ("pad", u32),
    ]


VFIO_IOMMU_INFO_PGSIZES = 1 << 0
VFIO_IOMMU_INFO_CAPS = 1 << 1


class VfioIommuInfoFlag(_IntFlag):
    """``vfio_iommu_type1_info.flags`` (``VFIO_IOMMU_INFO_*``)."""

    PGSIZES = VFIO_IOMMU_INFO_PGSIZES
    CAPS = VFIO_IOMMU_INFO_CAPS


VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1


class vfio_iova_range(Struct):
    """An inclusive IOVA range ``start .. end``, element of ``cap_iova_range.iova_ranges``."""

    _fields_ = [
        ("start", u64),
        ("end", u64),
    ]


class vfio_iommu_type1_info_cap_iova_range(Struct):
    """Type1 info capability ``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`` (version 1).

    The IOVA ranges DMA may be mapped in: the IOMMU aperture minus the
    reserved regions of every attached device.  Mapping outside them fails.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("nr_iovas", u32),
        ("reserved", u32),
        ("iova_ranges", vfio_iova_range * 0),
    ]


VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2


class vfio_iommu_type1_info_cap_migration(Struct):
    """Type1 info capability ``VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`` (version 1).

    Its presence means the container can log dirty pages
    (``VFIO_IOMMU_DIRTY_PAGES``): ``pgsize_bitmap`` gives the tracking page
    sizes, ``max_dirty_bitmap_size`` the largest bitmap, in bytes, one query
    may request.
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("flags", u32),
        ("pgsize_bitmap", u64),
        ("max_dirty_bitmap_size", u64),
    ]


VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3


class vfio_iommu_type1_info_dma_avail(Struct):
    """Type1 info capability ``VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`` (version 1).

    ``avail`` is how many more DMA mappings the container may create now
    (bounded by the ``dma_entry_limit`` module parameter; beyond it MAP_DMA
    fails with ``ENOSPC``).
    """

    _fields_ = [
        ("header", vfio_info_cap_header),
        ("avail", u32),
    ]


# VFIO_IOMMU_GET_INFO -- type1 container fd, struct vfio_iommu_type1_info (+ caps).
#   Same number as VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (device fd) and
#   VFIO_IOMMU_SPAPR_TCE_GET_INFO (sPAPR container).
VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12)


class VfioIommuType1InfoCap(_IntEnum):
    """Capability ids in ``VFIO_IOMMU_GET_INFO``'s chain (``VFIO_IOMMU_TYPE1_INFO_*``)."""

    CAP_IOVA_RANGE = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
    CAP_MIGRATION = VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION
    DMA_AVAIL = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL


class vfio_iommu_type1_dma_map(Struct):
    """Argument of ``VFIO_IOMMU_MAP_DMA`` (type1 container fd).

    Maps ``size`` bytes of process memory at ``vaddr`` to IO virtual address
    ``iova``, pinning the pages.  ``flags`` needs READ and/or WRITE (the
    device's access).  With ``VFIO_DMA_MAP_FLAG_VADDR`` instead (and neither
    READ nor WRITE) it re-attaches a new ``vaddr`` to a mapping invalidated by
    ``VFIO_DMA_UNMAP_FLAG_VADDR``; ``iova`` and ``size`` must match it exactly
    and the new address must reach the same memory.  Errors: bad flags,
    short ``argsz``, size 0, misalignment to the smallest IOMMU page,
    wrap-around or IOVA outside the valid ranges -> ``EINVAL``; overlap with
    an existing mapping -> ``EEXIST``; VADDR with no such mapping ->
    ``ENOENT``; mapping limit reached -> ``ENOSPC``; locked-memory limit ->
    ``ENOMEM``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("vaddr", u64),
        ("iova", u64),
        ("size", u64),
    ]


VFIO_DMA_MAP_FLAG_READ = 1 << 0
VFIO_DMA_MAP_FLAG_WRITE = 1 << 1
VFIO_DMA_MAP_FLAG_VADDR = 1 << 2

# VFIO_IOMMU_MAP_DMA -- type1 container fd, struct vfio_iommu_type1_dma_map.
VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13)


class VfioDmaMapFlag(_IntFlag):
    """``vfio_iommu_type1_dma_map.flags`` (``VFIO_DMA_MAP_FLAG_*``)."""

    READ = VFIO_DMA_MAP_FLAG_READ
    WRITE = VFIO_DMA_MAP_FLAG_WRITE
    VADDR = VFIO_DMA_MAP_FLAG_VADDR


class vfio_bitmap(Struct):
    """A user dirty bitmap: one bit per ``pgsize`` bytes, ``size`` bytes long, at ``data``.

    Used inside :class:`vfio_iommu_type1_dma_unmap` (``data[]``) and
    :class:`vfio_iommu_type1_dirty_bitmap_get`.  The memory must be zeroed by
    the caller; ``pgsize`` must be the container's smallest page size.
    ``data`` is a real pointer in C (``__u64 *``); set it from an address
    with ``ctypes.cast(addr, ctypes.POINTER(u64))``.
    """

    _fields_ = [
        ("pgsize", u64),
        ("size", u64),
        ("data", ctypes.POINTER(u64)),
    ]


class vfio_iommu_type1_dma_unmap(Struct):
    """Argument of ``VFIO_IOMMU_UNMAP_DMA`` (type1 container fd).

    Unmaps ``iova .. iova+size`` and writes back in ``size`` how much was
    unmapped.  Only whole original mappings are guaranteed to work (type1v2
    refuses to split one: ``EINVAL``).  Flags:

    * GET_DIRTY_BITMAP -- a :class:`vfio_bitmap` follows in ``data[]`` and
      receives the dirty pages of the range before it is unmapped (dirty
      tracking must be on);
    * ALL -- unmap everything; ``iova`` and ``size`` must be 0;
    * VADDR -- do not unmap but invalidate the process addresses, keeping the
      device mappings (for live update); new groups cannot be added until
      MAP_DMA with VADDR restores them.  ``EBUSY`` with a mediated device.

    GET_DIRTY_BITMAP cannot be combined with ALL or VADDR.  Bad flags or
    alignment, a short ``argsz`` -> ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("iova", u64),
        ("size", u64),
        ("data", u8 * 0),
    ]


VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0
VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1
VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2

# VFIO_IOMMU_UNMAP_DMA -- type1 container fd, struct vfio_iommu_type1_dma_unmap (+ vfio_bitmap).
VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14)


class VfioDmaUnmapFlag(_IntFlag):
    """``vfio_iommu_type1_dma_unmap.flags`` (``VFIO_DMA_UNMAP_FLAG_*``)."""

    GET_DIRTY_BITMAP = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
    ALL = VFIO_DMA_UNMAP_FLAG_ALL
    VADDR = VFIO_DMA_UNMAP_FLAG_VADDR


# VFIO_IOMMU_ENABLE / VFIO_IOMMU_DISABLE -- sPAPR container fd, no argument.
#   Turn the container's use of the IOMMU on and off (sPAPR TCE only).
VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15)
VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16)


class vfio_iommu_type1_dirty_bitmap(Struct):
    """Argument of ``VFIO_IOMMU_DIRTY_PAGES`` (type1v2 container fd): dirty page logging.

    Exactly one flag: START begins logging the pages devices may have written
    (for migration), STOP ends it, GET_BITMAP copies out the bitmap for a
    range described by a :class:`vfio_iommu_type1_dirty_bitmap_get` in
    ``data[]`` (``argsz`` covers that struct but not the bitmap memory).
    Reading clears the bits.  Not type1v2 -> ``EACCES``; several or unknown
    flags, bad range, page size or bitmap size, logging not started -> ``EINVAL``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("data", u8 * 0),
    ]


VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0
VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1
VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2


class vfio_iommu_type1_dirty_bitmap_get(Struct):
    """Payload of ``VFIO_IOMMU_DIRTY_PAGES`` with GET_BITMAP: the IOVA range and the bitmap to fill.

    ``iova``/``size`` must be aligned to, and ``bitmap.pgsize`` equal to, the
    smallest supported page size, and the range may not split a mapping.
    """

    _fields_ = [
        ("iova", u64),
        ("size", u64),
        ("bitmap", vfio_bitmap),
    ]


# VFIO_IOMMU_DIRTY_PAGES -- type1 container fd, struct vfio_iommu_type1_dirty_bitmap (+ _get).
VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17)


class VfioDirtyPagesFlag(_IntFlag):
    """``vfio_iommu_type1_dirty_bitmap.flags`` (``VFIO_IOMMU_DIRTY_PAGES_FLAG_*``)."""

    START = VFIO_IOMMU_DIRTY_PAGES_FLAG_START
    STOP = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
    GET_BITMAP = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP


# ===========================================================================
# sPAPR TCE IOMMU (POWER) -- container fd after VFIO_SET_IOMMU(VFIO_SPAPR_TCE*)
# ===========================================================================


class vfio_iommu_spapr_tce_ddw_info(Struct):
    """Dynamic DMA window limits, inside :class:`vfio_iommu_spapr_tce_info`.

    ``pgsizes`` is a bitmap of the IOMMU page sizes (4K/64K/16M),
    ``max_dynamic_windows_supported`` how many windows may be created and
    ``levels`` the most table levels (multi-level tables need less
    physically contiguous memory).
    """

    _fields_ = [
        ("pgsizes", u64),
        ("max_dynamic_windows_supported", u32),
        ("levels", u32),
    ]


class vfio_iommu_spapr_tce_info(Struct):
    """Argument of ``VFIO_IOMMU_SPAPR_TCE_GET_INFO`` (sPAPR container fd).

    Reports the default 32-bit DMA window (absolute PCI bus addresses; IOVAs
    given to map/unmap are absolute too, so the window filters rather than
    offsets them) and, with ``VFIO_IOMMU_SPAPR_INFO_DDW``, the dynamic DMA
    window limits in ``ddw``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("dma32_window_start", u32),
        ("dma32_window_size", u32),
        ("ddw", vfio_iommu_spapr_tce_ddw_info),
    ]


VFIO_IOMMU_SPAPR_INFO_DDW = 1 << 0

# VFIO_IOMMU_SPAPR_TCE_GET_INFO -- sPAPR container fd, struct vfio_iommu_spapr_tce_info.
VFIO_IOMMU_SPAPR_TCE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12)


class VfioIommuSpaprInfoFlag(_IntFlag):
    """``vfio_iommu_spapr_tce_info.flags`` (``VFIO_IOMMU_SPAPR_INFO_*``)."""

    DDW = VFIO_IOMMU_SPAPR_INFO_DDW


class vfio_eeh_pe_err(Struct):
    """Error to inject with ``VFIO_EEH_PE_INJECT_ERR``: the ``err`` member of :class:`vfio_eeh_pe_op`."""

    _fields_ = [
        ("type", u32),
        ("func", u32),
        ("addr", u64),
        ("mask", u64),
    ]


class _vfio_eeh_pe_op_u(Union):
    """The anonymous union at the end of :class:`vfio_eeh_pe_op`."""

    _fields_ = [
        ("err", vfio_eeh_pe_err),
    ]


class vfio_eeh_pe_op(Struct):
    """Argument of ``VFIO_EEH_PE_OP`` (sPAPR container fd): POWER EEH on a partitionable endpoint.

    ``op`` is one ``VFIO_EEH_PE_*`` operation: enable/disable EEH, unfreeze
    MMIO or DMA of a frozen PE, read its state (the ioctl returns a
    ``VFIO_EEH_PE_STATE_*`` value), reset it, configure it after reset, or
    inject the error described by ``err`` (an anonymous-union member,
    reachable directly).  Needs ``VFIO_CHECK_EXTENSION(VFIO_EEH)``.
    """

    _anonymous_ = ("_u",)
    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("op", u32),
        ("_u", _vfio_eeh_pe_op_u),
    ]


VFIO_EEH_PE_DISABLE = 0
VFIO_EEH_PE_ENABLE = 1
VFIO_EEH_PE_UNFREEZE_IO = 2
VFIO_EEH_PE_UNFREEZE_DMA = 3
VFIO_EEH_PE_GET_STATE = 4
VFIO_EEH_PE_STATE_NORMAL = 0  # PE works
VFIO_EEH_PE_STATE_RESET = 1  # reset in progress
VFIO_EEH_PE_STATE_STOPPED = 2  # MMIO and DMA stopped
VFIO_EEH_PE_STATE_STOPPED_DMA = 4  # only DMA stopped
VFIO_EEH_PE_STATE_UNAVAIL = 5  # state unknown
VFIO_EEH_PE_RESET_DEACTIVATE = 5
VFIO_EEH_PE_RESET_HOT = 6
VFIO_EEH_PE_RESET_FUNDAMENTAL = 7
VFIO_EEH_PE_CONFIGURE = 8
VFIO_EEH_PE_INJECT_ERR = 9

# VFIO_EEH_PE_OP -- sPAPR container fd, struct vfio_eeh_pe_op.
VFIO_EEH_PE_OP = _IO(VFIO_TYPE, VFIO_BASE + 21)


class vfio_iommu_spapr_register_memory(Struct):
    """Argument of ``VFIO_IOMMU_SPAPR_REGISTER_MEMORY`` and ``..._UNREGISTER_MEMORY`` (sPAPR v2 container).

    Pre-registers (pins and accounts) ``size`` bytes at ``vaddr`` as memory
    DMA may target, which makes later map/unmap calls cheap; unregistering
    takes the same struct.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("vaddr", u64),
        ("size", u64),
    ]


# VFIO_IOMMU_SPAPR_REGISTER_MEMORY -- sPAPR v2 container fd, struct vfio_iommu_spapr_register_memory.
VFIO_IOMMU_SPAPR_REGISTER_MEMORY = _IO(VFIO_TYPE, VFIO_BASE + 17)

# VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY -- sPAPR v2 container fd, same struct;
#   undoes a REGISTER_MEMORY.
VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = _IO(VFIO_TYPE, VFIO_BASE + 18)


class vfio_iommu_spapr_tce_create(Struct):
    """Argument of ``VFIO_IOMMU_SPAPR_TCE_CREATE`` (sPAPR v2 container fd).

    Creates an extra DMA window (a new TCE table programmed into every group
    of the container) from ``page_shift``, ``window_size`` and ``levels``;
    the kernel returns the window's PCI bus address in ``start_addr``.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("page_shift", u32),
        ("__resv1", u32),
        ("window_size", u64),
        ("levels", u32),
        ("__resv2", u32),
        ("start_addr", u64),
    ]


# VFIO_IOMMU_SPAPR_TCE_CREATE -- sPAPR v2 container fd, struct vfio_iommu_spapr_tce_create.
VFIO_IOMMU_SPAPR_TCE_CREATE = _IO(VFIO_TYPE, VFIO_BASE + 19)


class vfio_iommu_spapr_tce_remove(Struct):
    """Argument of ``VFIO_IOMMU_SPAPR_TCE_REMOVE`` (sPAPR v2 container fd).

    Removes the DMA window starting at ``start_addr`` (its id) from every
    group and frees its TCE table.
    """

    _fields_ = [
        ("argsz", u32),
        ("flags", u32),
        ("start_addr", u64),
    ]


# VFIO_IOMMU_SPAPR_TCE_REMOVE -- sPAPR v2 container fd, struct vfio_iommu_spapr_tce_remove.
VFIO_IOMMU_SPAPR_TCE_REMOVE = _IO(VFIO_TYPE, VFIO_BASE + 20)


# ===========================================================================
# Tables
# ===========================================================================

#: Every ioctl of vfio.h in header order, with the descriptor kind that gives
#: its number a meaning and the argument it takes.
IOCTLS: tuple[IoctlDef, ...] = (
    IoctlDef("VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, "container",
             "none (returns VFIO_API_VERSION)", header="vfio.h"),
    IoctlDef("VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, "container",
             "__u32 by value (extension id)", header="vfio.h"),
    IoctlDef("VFIO_SET_IOMMU", VFIO_SET_IOMMU, "container",
             "__s32 by value (iommu type)", header="vfio.h"),
    IoctlDef("VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS, "group",
             "struct vfio_group_status", header="vfio.h"),
    IoctlDef("VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER, "group",
             "__s32 * (container fd, or an iommufd)", header="vfio.h"),
    IoctlDef("VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER, "group",
             "none", header="vfio.h"),
    IoctlDef("VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD, "group",
             "char * (device name string)", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO, "device",
             "struct vfio_device_info (+caps chain)", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_GET_REGION_INFO", VFIO_DEVICE_GET_REGION_INFO, "device",
             "struct vfio_region_info (+caps chain)", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_GET_IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO, "device",
             "struct vfio_irq_info", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_SET_IRQS", VFIO_DEVICE_SET_IRQS, "device",
             "struct vfio_irq_set + data[]", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_RESET", VFIO_DEVICE_RESET, "device",
             "none", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, "device",
             "struct vfio_pci_hot_reset_info + devices[]", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_PCI_HOT_RESET", VFIO_DEVICE_PCI_HOT_RESET, "device",
             "struct vfio_pci_hot_reset + group_fds[]", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_QUERY_GFX_PLANE", VFIO_DEVICE_QUERY_GFX_PLANE, "device",
             "struct vfio_device_gfx_plane_info", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_GET_GFX_DMABUF", VFIO_DEVICE_GET_GFX_DMABUF, "device",
             "__u32 * (dmabuf_id)", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_IOEVENTFD", VFIO_DEVICE_IOEVENTFD, "device",
             "struct vfio_device_ioeventfd", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_FEATURE", VFIO_DEVICE_FEATURE, "device",
             "struct vfio_device_feature + data[]", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD, "device (cdev)",
             "struct vfio_device_bind_iommufd", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT, "device (cdev)",
             "struct vfio_device_attach_iommufd_pt", header="vfio.h"),
    IoctlDef("VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT, "device (cdev)",
             "struct vfio_device_detach_iommufd_pt", header="vfio.h"),
    IoctlDef("VFIO_MIG_GET_PRECOPY_INFO", VFIO_MIG_GET_PRECOPY_INFO, "migration data fd",
             "struct vfio_precopy_info", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO, "container",
             "struct vfio_iommu_type1_info (+caps chain)", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA, "container",
             "struct vfio_iommu_type1_dma_map", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA, "container",
             "struct vfio_iommu_type1_dma_unmap (+vfio_bitmap)", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_ENABLE", VFIO_IOMMU_ENABLE, "container (spapr)",
             "none", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_DISABLE", VFIO_IOMMU_DISABLE, "container (spapr)",
             "none", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_DIRTY_PAGES", VFIO_IOMMU_DIRTY_PAGES, "container",
             "struct vfio_iommu_type1_dirty_bitmap (+_get)", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_SPAPR_TCE_GET_INFO", VFIO_IOMMU_SPAPR_TCE_GET_INFO, "container (spapr)",
             "struct vfio_iommu_spapr_tce_info", header="vfio.h"),
    IoctlDef("VFIO_EEH_PE_OP", VFIO_EEH_PE_OP, "container (spapr)",
             "struct vfio_eeh_pe_op", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_SPAPR_REGISTER_MEMORY", VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "container (spapr)",
             "struct vfio_iommu_spapr_register_memory", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, "container (spapr)",
             "struct vfio_iommu_spapr_register_memory", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_SPAPR_TCE_CREATE", VFIO_IOMMU_SPAPR_TCE_CREATE, "container (spapr)",
             "struct vfio_iommu_spapr_tce_create", header="vfio.h"),
    IoctlDef("VFIO_IOMMU_SPAPR_TCE_REMOVE", VFIO_IOMMU_SPAPR_TCE_REMOVE, "container (spapr)",
             "struct vfio_iommu_spapr_tce_remove", header="vfio.h"),
)

#: Every top-level struct/union of vfio.h in header order (private helper
#: unions of anonymous members are not listed).
STRUCTS: tuple[type[ctypes.Structure | ctypes.Union], ...] = (
    vfio_info_cap_header,
    vfio_group_status,
    vfio_device_info,
    vfio_device_info_cap_pci_atomic_comp,
    vfio_region_info,
    vfio_region_sparse_mmap_area,
    vfio_region_info_cap_sparse_mmap,
    vfio_region_info_cap_type,
    vfio_region_gfx_edid,
    vfio_device_migration_info,
    vfio_region_info_cap_nvlink2_ssatgt,
    vfio_region_info_cap_nvlink2_lnkspd,
    vfio_irq_info,
    vfio_irq_set,
    vfio_pci_dependent_device,
    vfio_pci_hot_reset_info,
    vfio_pci_hot_reset,
    vfio_device_gfx_plane_info,
    vfio_device_ioeventfd,
    vfio_device_feature,
    vfio_device_bind_iommufd,
    vfio_device_attach_iommufd_pt,
    vfio_device_detach_iommufd_pt,
    vfio_device_feature_migration,
    vfio_device_feature_mig_state,
    vfio_precopy_info,
    vfio_device_low_power_entry_with_wakeup,
    vfio_device_feature_dma_logging_control,
    vfio_device_feature_dma_logging_range,
    vfio_device_feature_dma_logging_report,
    vfio_device_feature_mig_data_size,
    vfio_device_feature_bus_master,
    vfio_region_dma_range,
    vfio_device_feature_dma_buf,
    vfio_device_feature_zpci_err,
    vfio_iommu_type1_info,
    vfio_iova_range,
    vfio_iommu_type1_info_cap_iova_range,
    vfio_iommu_type1_info_cap_migration,
    vfio_iommu_type1_info_dma_avail,
    vfio_iommu_type1_dma_map,
    vfio_bitmap,
    vfio_iommu_type1_dma_unmap,
    vfio_iommu_type1_dirty_bitmap,
    vfio_iommu_type1_dirty_bitmap_get,
    vfio_iommu_spapr_tce_ddw_info,
    vfio_iommu_spapr_tce_info,
    vfio_eeh_pe_err,
    vfio_eeh_pe_op,
    vfio_iommu_spapr_register_memory,
    vfio_iommu_spapr_tce_create,
    vfio_iommu_spapr_tce_remove,
)
