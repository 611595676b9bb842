"""ctypes mirror of ``include/uapi/linux/iommufd.h`` (Linux 7.3.4, x86_64).

iommufd is the kernel's native interface for managing DMA translation from
user space.  Opening ``/dev/iommu`` gives a context; every command below is an
ioctl on that descriptor, and every object it creates (IO address spaces,
hardware page tables, fault queues, virtual IOMMUs and their devices, event
and hardware queues) is named by a ``u32`` id in that context's own
namespace.  Devices enter the namespace from the VFIO side
(``VFIO_DEVICE_BIND_IOMMUFD`` returns their id).  Objects live until
:data:`IOMMU_DESTROY` or until the descriptor is closed.

Names, order and layout follow the header, so the two can be read side by
side.  Every struct here is byte-identical to the C one on x86_64 (checked
against the compiled ABI oracle); ``__aligned_u64`` and ``__aligned_le64``
are both a plain naturally aligned ``u64`` there.

Request numbers
    Every command is ``_IO(';', 0x80 + n)`` with no direction or size bits:
    the argument's length is carried inside the argument instead.  VFIO uses
    the same type byte but a lower number range, so the two never collide.

How arguments are versioned (the header's "general ioctl format")
    Each argument is a struct whose first ``u32``, ``size``, the caller sets
    to the number of bytes it passes.  The kernel reads what it knows of and
    insists that anything past that is zero.  This lets an old program run on
    a new kernel (a short ``size`` is fine down to each command's minimum;
    below it the answer is ``EINVAL``) and a new program on an old kernel (as
    long as it leaves the fields the old kernel lacks at zero).  Consequently the errno says *which* layer of
    the request was rejected:

    * ``ENOTTY`` -- the kernel has no such command at all (too old).
    * ``E2BIG`` -- the command exists, but bytes the kernel does not know
      about are non-zero: a newer field was used on an older kernel.
    * ``EOPNOTSUPP`` -- the struct is understood but a field holds a value
      this kernel does not implement (an unknown flag bit, a non-zero
      reserved field, an unsupported type code).
    * ``EINVAL`` -- everything was understood, yet a value is wrong.
    * ``ENOENT`` -- an object id or an IOVA given does not exist.
    * ``ENOMEM`` -- the kernel ran out of memory.
    * ``EOVERFLOW`` -- address arithmetic (``iova + length`` and the like)
      overflowed.

    Individual commands add errnos of their own; each struct's docstring
    lists those the header mentions.

Flag families are also offered as ``enum.IntFlag`` classes for display
(``IommuIoasMapFlags`` and friends, members named without the common
prefix); each C enum with a tag is an ``IntEnum``/``IntFlag`` class under
the tag's name whose members carry the full kernel names.  The module-level
constants are plain ints; enum members are ints as well, so either can be
stored in a struct field.
"""

from __future__ import annotations

import ctypes
import enum

from .ioctl import _IO, IoctlDef
from .struct import Struct, Union, aligned_u64, s32, u8, u16, u32

# The header's __aligned_le64: a little-endian u64.  On a little-endian host
# (x86_64) ``__ctype_le__`` is c_uint64 itself, so the layout is unchanged.
aligned_le64 = ctypes.c_uint64.__ctype_le__

# The header writes the type as the character ';' -- the same type byte VFIO
# uses.  Kept as its number (59) so it can be compared and printed as an int.
IOMMUFD_TYPE = ord(";")

# Command numbers (an anonymous enum in the header).  Unlike VFIO's base +
# offset, each value is spelled out; IOMMU_IOAS_NOIOMMU_GET_PA is the newest.
IOMMUFD_CMD_BASE = 0x80
IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE
IOMMUFD_CMD_IOAS_ALLOC = 0x81
IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82
IOMMUFD_CMD_IOAS_COPY = 0x83
IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84
IOMMUFD_CMD_IOAS_MAP = 0x85
IOMMUFD_CMD_IOAS_UNMAP = 0x86
IOMMUFD_CMD_OPTION = 0x87
IOMMUFD_CMD_VFIO_IOAS = 0x88
IOMMUFD_CMD_HWPT_ALLOC = 0x89
IOMMUFD_CMD_GET_HW_INFO = 0x8A
IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8B
IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8C
IOMMUFD_CMD_HWPT_INVALIDATE = 0x8D
IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8E
IOMMUFD_CMD_IOAS_MAP_FILE = 0x8F
IOMMUFD_CMD_VIOMMU_ALLOC = 0x90
IOMMUFD_CMD_VDEVICE_ALLOC = 0x91
IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92
IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93
IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94
IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA = 0x95


class iommu_destroy(Struct):
    """Argument of :data:`IOMMU_DESTROY`: release any destroyable object by id.

    ``id`` may name an IOAS, HWPT, fault queue, vIOMMU, vDEVICE, vEVENTQ or
    HW queue.  An unknown id gives ``ENOENT``; an object that something
    still depends on (an IOAS with attached devices or HWPTs, a HWPT a device
    is attached to) is refused with ``EBUSY``, because tearing it down would
    pull translations from under live DMA -- detach or destroy the users first.
    """

    _fields_ = [
        ("size", u32),
        ("id", u32),
    ]


IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)


class iommu_ioas_alloc(Struct):
    """Argument of :data:`IOMMU_IOAS_ALLOC`: create an IO address space.

    An IOAS is a software IOVA -> memory map, independent of any hardware; it
    is filled with :data:`IOMMU_IOAS_MAP` and friends and then attached to
    devices (directly, or through a HWPT).  ``flags`` must be 0 (anything
    else is ``EOPNOTSUPP``).  The new object's id comes back in
    ``out_ioas_id``.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("out_ioas_id", u32),
    ]


IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)


class iommu_iova_range(Struct):
    """One IOVA interval, ``start`` to ``last`` with ``last`` included.

    Not an ioctl argument itself: arrays of it are pointed to by
    :class:`iommu_ioas_iova_ranges` and :class:`iommu_ioas_allow_iovas`.  The
    inclusive end lets a range reach the top of the 64-bit space.
    """

    _fields_ = [
        ("start", aligned_u64),
        ("last", aligned_u64),
    ]


class iommu_ioas_iova_ranges(Struct):
    """Argument of :data:`IOMMU_IOAS_IOVA_RANGES`: which IOVAs may be mapped.

    ``allowed_iovas`` is a user pointer to an array of
    :class:`iommu_iova_range` (build one with ``(iommu_iova_range * n)()``
    and pass its address); ``num_iovas`` says how many entries fit on input
    and how many exist on output.  When the array is too small the kernel
    still writes the total count and fails with ``EMSGSIZE`` -- allocate that
    many and ask again.  The usable ranges start as the whole space and
    shrink as devices with narrower IOMMU limits are attached (and may widen
    on detach), so query again after each attach/detach.

    ``out_iova_alignment`` is the granule every mapping's start and end must
    honour for MAP/COPY: 1 means any address, and it never exceeds the page
    size.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("ioas_id", u32),
        ("num_iovas", u32),
        ("__reserved", u32),
        ("allowed_iovas", aligned_u64),
        ("out_iova_alignment", aligned_u64),
    ]


IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES)


class iommu_ioas_allow_iovas(Struct):
    """Argument of :data:`IOMMU_IOAS_ALLOW_IOVAS`: reserve IOVA ranges for use.

    ``allowed_iovas`` points to ``num_iovas`` :class:`iommu_iova_range`
    entries that replace the IOAS's whole allowed list.  Once set, the usable
    ranges can never shrink below them: attaching a device whose IOMMU cannot
    reach part of an allowed range fails instead, and the call itself fails
    if the ranges are already narrower than asked.  Automatic IOVA choice in
    MAP then stays inside the allowed ranges.  This is how a VMM pins down a
    guest's physical address layout before devices arrive.  ``__reserved``
    must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("ioas_id", u32),
        ("num_iovas", u32),
        ("__reserved", u32),
        ("allowed_iovas", aligned_u64),
    ]


IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS)

IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0
IOMMU_IOAS_MAP_WRITEABLE = 1 << 1
IOMMU_IOAS_MAP_READABLE = 1 << 2


class iommufd_ioas_map_flags(enum.IntFlag):
    """``enum iommufd_ioas_map_flags``: flags of MAP, MAP_FILE and COPY.

    FIXED_IOVA makes the caller's ``iova`` binding (otherwise the kernel
    picks one); WRITEABLE/READABLE grant device writes/reads.
    """

    IOMMU_IOAS_MAP_FIXED_IOVA = IOMMU_IOAS_MAP_FIXED_IOVA
    IOMMU_IOAS_MAP_WRITEABLE = IOMMU_IOAS_MAP_WRITEABLE
    IOMMU_IOAS_MAP_READABLE = IOMMU_IOAS_MAP_READABLE


class IommuIoasMapFlags(enum.IntFlag):
    """Display form of the ``IOMMU_IOAS_MAP_*`` flags."""

    FIXED_IOVA = IOMMU_IOAS_MAP_FIXED_IOVA
    WRITEABLE = IOMMU_IOAS_MAP_WRITEABLE
    READABLE = IOMMU_IOAS_MAP_READABLE


class iommu_ioas_map(Struct):
    """Argument of :data:`IOMMU_IOAS_MAP`: map process memory into an IOAS.

    ``length`` bytes at virtual address ``user_va`` are pinned and made
    visible to devices at an IOVA.  With ``IOMMU_IOAS_MAP_FIXED_IOVA`` the
    caller chooses ``iova`` and that range must be free (existing mappings
    are never replaced); without it the kernel picks a suitable address,
    honouring the allowed and reserved ranges, and returns it in ``iova``.
    ``flags`` also carries WRITEABLE/READABLE; at least one is needed.
    ``__reserved`` must be 0.  Start and length must respect
    ``out_iova_alignment`` from :data:`IOMMU_IOAS_IOVA_RANGES`.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("ioas_id", u32),
        ("__reserved", u32),
        ("user_va", aligned_u64),
        ("length", aligned_u64),
        ("iova", aligned_u64),
    ]


IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)


class iommu_ioas_noiommu_get_pa(Struct):
    """Argument of :data:`IOMMU_IOAS_NOIOMMU_GET_PA`: IOVA -> physical address.

    Only for no-IOMMU devices, which DMA with raw physical addresses and so
    offer no isolation: user space has to learn where its mapped memory
    really lives.  ``iova`` must lie in an existing mapping and ``length``
    must be non-zero on input (the most bytes to look at).  On return
    ``out_phys`` is the physical address behind ``iova`` and ``length`` the
    number of physically contiguous bytes from there, never more than asked.
    ``flags`` and ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("ioas_id", u32),
        ("__reserved", u32),
        ("iova", aligned_u64),
        ("length", aligned_u64),
        ("out_phys", aligned_u64),
    ]


IOMMU_IOAS_NOIOMMU_GET_PA = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA)


class iommu_ioas_map_file(Struct):
    """Argument of :data:`IOMMU_IOAS_MAP_FILE`: map a file range into an IOAS.

    Like :class:`iommu_ioas_map` (same ``flags``, ``ioas_id``, ``length``
    and ``iova`` rules) but the memory is named as ``length`` bytes at offset
    ``start`` of the file ``fd`` -- a memfd, or a dma-buf of a supported kind
    (such as one exported by ``VFIO_DEVICE_FEATURE_DMA_BUF``); other dma-bufs
    may be refused.  Because the pages belong to a file rather than to an
    address space, such mappings survive the process being replaced, which
    is what :data:`IOMMU_IOAS_CHANGE_PROCESS` (and CPR) relies on.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("ioas_id", u32),
        ("fd", s32),
        ("start", aligned_u64),
        ("length", aligned_u64),
        ("iova", aligned_u64),
    ]


IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE)


class iommu_ioas_copy(Struct):
    """Argument of :data:`IOMMU_IOAS_COPY`: reuse a mapping in another IOAS.

    The range ``src_iova``/``length`` of ``src_ioas_id`` must exactly match
    one earlier MAP; the same pages are then mapped into ``dst_ioas_id`` at
    ``dst_iova`` (chosen by the kernel unless ``IOMMU_IOAS_MAP_FIXED_IOVA``
    is in ``flags``, with the result written back).  Cheaper than mapping
    again: the pages are already pinned and the pin is shared.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("dst_ioas_id", u32),
        ("src_ioas_id", u32),
        ("length", aligned_u64),
        ("dst_iova", aligned_u64),
        ("src_iova", aligned_u64),
    ]


IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY)


class iommu_ioas_unmap(Struct):
    """Argument of :data:`IOMMU_IOAS_UNMAP`: remove mappings from an IOAS.

    ``iova``/``length`` must cover whole earlier mappings: a mapping is never
    split or trimmed, so a range that cuts one fails (``ENOENT``).
    ``iova = 0`` with ``length = 2**64 - 1`` empties the IOAS.  On return
    ``length`` holds the number of bytes actually unmapped.
    """

    _fields_ = [
        ("size", u32),
        ("ioas_id", u32),
        ("iova", aligned_u64),
        ("length", aligned_u64),
    ]


IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)

IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_HUGE_PAGES = 1


class iommufd_option(enum.IntEnum):
    """``enum iommufd_option``: the ``option_id`` of :class:`iommu_option`.

    RLIMIT_MODE (global, ``object_id`` 0, privileged to set): 0 charges
    pinned memory against the user, 1 against the process.  HUGE_PAGES
    (per IOAS, ``object_id`` is the IOAS): 1, the default, lets contiguous
    pages be mapped as larger IOMMU pages; 0 forces page-sized entries.
    """

    IOMMU_OPTION_RLIMIT_MODE = IOMMU_OPTION_RLIMIT_MODE
    IOMMU_OPTION_HUGE_PAGES = IOMMU_OPTION_HUGE_PAGES


IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1


class iommufd_option_ops(enum.IntEnum):
    """``enum iommufd_option_ops``: the ``op`` of :class:`iommu_option`."""

    IOMMU_OPTION_OP_SET = IOMMU_OPTION_OP_SET
    IOMMU_OPTION_OP_GET = IOMMU_OPTION_OP_GET


class iommu_option(Struct):
    """Argument of :data:`IOMMU_OPTION`: read or change one tunable.

    ``option_id`` is an :class:`iommufd_option`, ``op`` an
    :class:`iommufd_option_ops`; ``object_id`` names the object for
    per-object options and is 0 for global ones.  SET takes ``val64``, GET
    returns the current value in it.  One multiplexed command keeps the
    command space small as options are added.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("option_id", u32),
        ("op", u16),
        ("__reserved", u16),
        ("object_id", u32),
        ("val64", aligned_u64),
    ]


IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION)

IOMMU_VFIO_IOAS_GET = 0
IOMMU_VFIO_IOAS_SET = 1
IOMMU_VFIO_IOAS_CLEAR = 2


class iommufd_vfio_ioas_op(enum.IntEnum):
    """``enum iommufd_vfio_ioas_op``: the ``op`` of :class:`iommu_vfio_ioas`.

    GET reports, SET replaces the IOAS used for VFIO compatibility; CLEAR
    turns compatibility off.
    """

    IOMMU_VFIO_IOAS_GET = IOMMU_VFIO_IOAS_GET
    IOMMU_VFIO_IOAS_SET = IOMMU_VFIO_IOAS_SET
    IOMMU_VFIO_IOAS_CLEAR = IOMMU_VFIO_IOAS_CLEAR


class iommu_vfio_ioas(Struct):
    """Argument of :data:`IOMMU_VFIO_IOAS`: the IOAS behind the VFIO emulation.

    An iommufd can stand in for a legacy VFIO container.  The container API
    has no object ids, so that emulation works on one single IOAS.  ``op``
    (an :class:`iommufd_vfio_ioas_op`) gets it into ``ioas_id``, sets it from
    ``ioas_id``, or clears it.  When a group is first attached through
    ``VFIO_GROUP_SET_CONTAINER`` the current one is used, or one is created,
    and that choice then sticks for VFIO; SET and CLEAR do not destroy an
    automatically created IOAS.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("ioas_id", u32),
        ("op", u16),
        ("__reserved", u16),
    ]


IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS)

IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0
IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1
IOMMU_HWPT_FAULT_ID_VALID = 1 << 2
IOMMU_HWPT_ALLOC_PASID = 1 << 3


class iommufd_hwpt_alloc_flags(enum.IntFlag):
    """``enum iommufd_hwpt_alloc_flags``: ``flags`` of :class:`iommu_hwpt_alloc`.

    NEST_PARENT: the HWPT may later be a stage-2 parent of nested HWPTs.
    DIRTY_TRACKING: only devices whose IOMMU can track dirty pages may attach.
    FAULT_ID_VALID: ``fault_id`` names a fault queue for I/O page faults.
    PASID: the domain may be attached to PASIDs; every domain on the device's
    non-PASID side must then carry it too.  ``EOPNOTSUPP`` without PASID
    support in the IOMMU.
    """

    IOMMU_HWPT_ALLOC_NEST_PARENT = IOMMU_HWPT_ALLOC_NEST_PARENT
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING = IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    IOMMU_HWPT_FAULT_ID_VALID = IOMMU_HWPT_FAULT_ID_VALID
    IOMMU_HWPT_ALLOC_PASID = IOMMU_HWPT_ALLOC_PASID


class IommuHwptAllocFlags(enum.IntFlag):
    """Display form of the ``IOMMU_HWPT_ALLOC_*`` flags (and FAULT_ID_VALID)."""

    NEST_PARENT = IOMMU_HWPT_ALLOC_NEST_PARENT
    DIRTY_TRACKING = IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    FAULT_ID_VALID = IOMMU_HWPT_FAULT_ID_VALID
    PASID = IOMMU_HWPT_ALLOC_PASID


IOMMU_VTD_S1_SRE = 1 << 0
IOMMU_VTD_S1_EAFE = 1 << 1
IOMMU_VTD_S1_WPE = 1 << 2


class iommu_hwpt_vtd_s1_flags(enum.IntFlag):
    """``enum iommu_hwpt_vtd_s1_flags``: ``flags`` of :class:`iommu_hwpt_vtd_s1`.

    Intel VT-d stage-1 attributes: supervisor requests (SRE), extended
    access (EAFE), write protect (WPE).
    """

    IOMMU_VTD_S1_SRE = IOMMU_VTD_S1_SRE
    IOMMU_VTD_S1_EAFE = IOMMU_VTD_S1_EAFE
    IOMMU_VTD_S1_WPE = IOMMU_VTD_S1_WPE


class IommuHwptVtdS1Flags(enum.IntFlag):
    """Display form of the ``IOMMU_VTD_S1_*`` flags."""

    SRE = IOMMU_VTD_S1_SRE
    EAFE = IOMMU_VTD_S1_EAFE
    WPE = IOMMU_VTD_S1_WPE


class iommu_hwpt_vtd_s1(Struct):
    """Driver data for a nested HWPT of type ``IOMMU_HWPT_DATA_VTD_S1``.

    Pointed to by ``data_uptr`` of :class:`iommu_hwpt_alloc`: describes a
    guest-owned Intel VT-d stage-1 page table by its base address
    ``pgtbl_addr`` (a guest physical address, translated by the parent) and
    ``addr_width``; ``flags`` is a combination of
    :class:`iommu_hwpt_vtd_s1_flags`.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("flags", aligned_u64),
        ("pgtbl_addr", aligned_u64),
        ("addr_width", u32),
        ("__reserved", u32),
    ]


class iommu_hwpt_arm_smmuv3(Struct):
    """Driver data for a nested HWPT of type ``IOMMU_HWPT_DATA_ARM_SMMUV3``.

    ``ste`` is the first two 64-bit words of the guest's Stream Table Entry,
    little-endian; only the fields the kernel allows may be set (validity,
    config, the stage-1 context-descriptor pointer and format, and a few
    attributes), anything else gives ``EIO``.  The config selects stage-1
    translation, bypass (translate like the parent) or abort.  For
    translation a vDEVICE (:data:`IOMMU_VDEVICE_ALLOC`) must exist before
    attaching, because invalidations and events need the virtual stream id.
    """

    _fields_ = [
        ("ste", aligned_le64 * 2),
    ]


class iommu_hwpt_amd_guest(Struct):
    """Driver data for a nested HWPT of type ``IOMMU_HWPT_DATA_AMD_GUEST``.

    ``dte`` is the guest's 256-bit AMD IOMMU Device Table Entry, describing
    the guest I/O page table.
    """

    _fields_ = [
        ("dte", aligned_u64 * 4),
    ]


IOMMU_HWPT_DATA_NONE = 0
IOMMU_HWPT_DATA_VTD_S1 = 1
IOMMU_HWPT_DATA_ARM_SMMUV3 = 2
IOMMU_HWPT_DATA_AMD_GUEST = 3


class iommu_hwpt_data_type(enum.IntEnum):
    """``enum iommu_hwpt_data_type``: ``data_type`` of :class:`iommu_hwpt_alloc`.

    NONE for a kernel-managed HWPT; otherwise it names the struct that
    ``data_uptr`` points to.
    """

    IOMMU_HWPT_DATA_NONE = IOMMU_HWPT_DATA_NONE
    IOMMU_HWPT_DATA_VTD_S1 = IOMMU_HWPT_DATA_VTD_S1
    IOMMU_HWPT_DATA_ARM_SMMUV3 = IOMMU_HWPT_DATA_ARM_SMMUV3
    IOMMU_HWPT_DATA_AMD_GUEST = IOMMU_HWPT_DATA_AMD_GUEST


class iommu_hwpt_alloc(Struct):
    """Argument of :data:`IOMMU_HWPT_ALLOC`: create a hardware page table.

    A HWPT is the kernel's IOMMU domain for device ``dev_id`` -- the same
    kind of object a plain attach creates implicitly.  Two kinds exist:

    * kernel-managed: ``pt_id`` is an IOAS whose mappings are mirrored into
      the domain; ``data_type`` must be ``IOMMU_HWPT_DATA_NONE`` with
      ``data_len``/``data_uptr`` 0.  ``IOMMU_HWPT_ALLOC_NEST_PARENT`` makes
      it usable as a stage-2 parent.
    * user-managed (nested): ``pt_id`` is such a parent HWPT or a vIOMMU
      wrapping one; ``data_type``/``data_len``/``data_uptr`` describe the
      guest's stage-1 table in the hardware's own format (e.g.
      :class:`iommu_hwpt_vtd_s1`).  Device and vIOMMU must sit on the same
      physical IOMMU.

    ``flags`` combines :class:`iommufd_hwpt_alloc_flags`; ``fault_id`` is
    read only with ``IOMMU_HWPT_FAULT_ID_VALID``.  The new id is returned
    in ``out_hwpt_id``.  ``__reserved`` and ``__reserved2`` (padding to 8
    bytes) must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("dev_id", u32),
        ("pt_id", u32),
        ("out_hwpt_id", u32),
        ("__reserved", u32),
        ("data_type", u32),
        ("data_len", u32),
        ("data_uptr", aligned_u64),
        ("fault_id", u32),
        ("__reserved2", u32),
    ]


IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC)

IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0


class iommu_hw_info_vtd_flags(enum.IntFlag):
    """``enum iommu_hw_info_vtd_flags``: ``flags`` of :class:`iommu_hw_info_vtd`.

    ERRATA_772415_SPR17: the hardware has an erratum that forbids read-only
    mappings in a nesting-parent domain.
    """

    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17


class IommuHwInfoVtdFlags(enum.IntFlag):
    """Display form of the ``IOMMU_HW_INFO_VTD_*`` flags."""

    ERRATA_772415_SPR17 = IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17


class iommu_hw_info_vtd(Struct):
    """Hardware info of type ``IOMMU_HW_INFO_TYPE_INTEL_VTD``.

    Written by :data:`IOMMU_GET_HW_INFO` into the buffer at ``data_uptr``:
    the raw VT-d capability (``cap_reg``) and extended capability
    (``ecap_reg``) registers, to be decoded with the VT-d specification so a
    VMM can present a compatible virtual IOMMU.  ``flags`` combines
    :class:`iommu_hw_info_vtd_flags`.
    """

    _fields_ = [
        ("flags", u32),
        ("__reserved", u32),
        ("cap_reg", aligned_u64),
        ("ecap_reg", aligned_u64),
    ]


IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI = 1 << 0


class iommu_hw_info_arm_smmuv3_flags(enum.IntFlag):
    """``enum iommu_hw_info_arm_smmuv3_flags``: ``flags`` of :class:`iommu_hw_info_arm_smmuv3`.

    ERRATA_REPEAT_TLBI_CFGI: because of a hardware erratum, user space must
    send each TLBI/CFGI command plus its SYNC twice.
    """

    IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI = (
        IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI
    )


class IommuHwInfoArmSmmuv3Flags(enum.IntFlag):
    """Display form of the ``IOMMU_HW_INFO_ARM_SMMUV3_*`` flags."""

    ERRATA_REPEAT_TLBI_CFGI = IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI


class iommu_hw_info_arm_smmuv3(Struct):
    """Hardware info of type ``IOMMU_HW_INFO_TYPE_ARM_SMMUV3``.

    The raw SMMUv3 ID registers ``idr[0..5]``, ``iidr`` and ``aidr`` as the
    hardware reports them.  Only a documented subset of ``idr`` bits is
    meant for a VMM building a virtual SMMU; reading others risks
    depending on features the kernel does not support for nesting and may
    change.  ``flags`` combines :class:`iommu_hw_info_arm_smmuv3_flags`.
    """

    _fields_ = [
        ("flags", u32),
        ("__reserved", u32),
        ("idr", u32 * 6),
        ("iidr", u32),
        ("aidr", u32),
    ]


class iommu_hw_info_tegra241_cmdqv(Struct):
    """Hardware info of type ``IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV``.

    Parameters of NVIDIA's Tegra241 command-queue virtualisation extension
    to SMMUv3 -- ``version`` and the log2 counts of virtual command queues
    and of stream-id replacements -- ready to be put into the VMM's emulated
    PARAM register (with a single virtual interface per VM).  ``flags`` and
    ``__reserved`` are 0.
    """

    _fields_ = [
        ("flags", u32),
        ("version", u8),
        ("log2vcmdqs", u8),
        ("log2vsids", u8),
        ("__reserved", u8),
    ]


class iommu_hw_info_amd(Struct):
    """Hardware info of type ``IOMMU_HW_INFO_TYPE_AMD``.

    The raw AMD IOMMU Extended Feature registers ``efr`` and ``efr2``.  The
    VMM must filter them: only some features are supported for a hardware
    virtual IOMMU.
    """

    _fields_ = [
        ("efr", aligned_u64),
        ("efr2", aligned_u64),
    ]


IOMMU_HW_INFO_TYPE_NONE = 0
IOMMU_HW_INFO_TYPE_DEFAULT = 0
IOMMU_HW_INFO_TYPE_INTEL_VTD = 1
IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2
IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3
IOMMU_HW_INFO_TYPE_AMD = 4


class iommu_hw_info_type(enum.IntEnum):
    """``enum iommu_hw_info_type``: the kind of data :data:`IOMMU_GET_HW_INFO` returns.

    NONE (output) and DEFAULT (input: "whatever the driver reports") share
    the value 0, so ``IOMMU_HW_INFO_TYPE_DEFAULT`` is an alias of NONE here.
    """

    IOMMU_HW_INFO_TYPE_NONE = IOMMU_HW_INFO_TYPE_NONE
    IOMMU_HW_INFO_TYPE_DEFAULT = IOMMU_HW_INFO_TYPE_DEFAULT
    IOMMU_HW_INFO_TYPE_INTEL_VTD = IOMMU_HW_INFO_TYPE_INTEL_VTD
    IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = IOMMU_HW_INFO_TYPE_ARM_SMMUV3
    IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV
    IOMMU_HW_INFO_TYPE_AMD = IOMMU_HW_INFO_TYPE_AMD


IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0
IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1
IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2
IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1 << 3


class iommufd_hw_capabilities(enum.IntFlag):
    """``enum iommufd_hw_capabilities``: ``out_capabilities`` of :class:`iommu_hw_info`.

    DIRTY_TRACKING: the dirty-tracking commands work for this device.
    PCI_PASID_EXEC/PRIV: PASID execute/privileged modes (meaningless when
    ``out_max_pasid_log2`` is 0).  PCI_ATS_NOT_SUPPORTED: ATS cannot be
    used (its absence means ATS may be enabled).
    """

    IOMMU_HW_CAP_DIRTY_TRACKING = IOMMU_HW_CAP_DIRTY_TRACKING
    IOMMU_HW_CAP_PCI_PASID_EXEC = IOMMU_HW_CAP_PCI_PASID_EXEC
    IOMMU_HW_CAP_PCI_PASID_PRIV = IOMMU_HW_CAP_PCI_PASID_PRIV
    IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED


class IommuHwCapabilities(enum.IntFlag):
    """Display form of the ``IOMMU_HW_CAP_*`` bits."""

    DIRTY_TRACKING = IOMMU_HW_CAP_DIRTY_TRACKING
    PCI_PASID_EXEC = IOMMU_HW_CAP_PCI_PASID_EXEC
    PCI_PASID_PRIV = IOMMU_HW_CAP_PCI_PASID_PRIV
    PCI_ATS_NOT_SUPPORTED = IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED


IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0


class iommufd_hw_info_flags(enum.IntFlag):
    """``enum iommufd_hw_info_flags``: ``flags`` of :class:`iommu_hw_info`.

    INPUT_TYPE: ``in_data_type`` asks for a specific info type.
    """

    IOMMU_HW_INFO_FLAG_INPUT_TYPE = IOMMU_HW_INFO_FLAG_INPUT_TYPE


class IommuHwInfoFlags(enum.IntFlag):
    """Display form of the ``IOMMU_HW_INFO_FLAG_*`` flags."""

    INPUT_TYPE = IOMMU_HW_INFO_FLAG_INPUT_TYPE


class _iommu_hw_info_data_type(Union):
    """The anonymous union of :class:`iommu_hw_info`: one field, named by direction."""

    _fields_ = [
        ("in_data_type", u32),
        ("out_data_type", u32),
    ]


class iommu_hw_info(Struct):
    """Argument of :data:`IOMMU_GET_HW_INFO`: describe a device's IOMMU.

    For device ``dev_id`` (bound to this iommufd) the kernel writes a
    hardware-specific description (:class:`iommu_hw_info_vtd`,
    :class:`iommu_hw_info_arm_smmuv3`, ...) into the ``data_len``-byte
    buffer at ``data_uptr``, zero-fills any excess, and sets ``data_len`` to
    its own length (so ``data_len = 0`` is a valid size probe) and
    ``out_data_type`` to an :class:`iommu_hw_info_type`.  A VMM uses this to
    give a guest a virtual IOMMU the real one can back, e.g. for nesting.

    ``in_data_type``/``out_data_type`` share one ``u32`` (an anonymous union
    in C, members reachable directly here): with
    ``IOMMU_HW_INFO_FLAG_INPUT_TYPE`` in ``flags`` it requests a type,
    otherwise the default is reported.  ``out_capabilities`` holds
    :class:`iommufd_hw_capabilities` bits; ``out_max_pasid_log2`` is the
    PASID width, 0 meaning no PASID support.  ``__reserved`` must be 0.
    """

    _anonymous_ = ("_data_type",)
    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("dev_id", u32),
        ("data_len", u32),
        ("data_uptr", aligned_u64),
        ("_data_type", _iommu_hw_info_data_type),
        ("out_max_pasid_log2", u8),
        ("__reserved", u8 * 3),
        ("out_capabilities", aligned_u64),
    ]


IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO)

IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1


class iommufd_hwpt_set_dirty_tracking_flags(enum.IntFlag):
    """``enum iommufd_hwpt_set_dirty_tracking_flags``.

    ENABLE turns tracking on; leaving it out turns tracking off.
    """

    IOMMU_HWPT_DIRTY_TRACKING_ENABLE = IOMMU_HWPT_DIRTY_TRACKING_ENABLE


class IommuHwptSetDirtyTrackingFlags(enum.IntFlag):
    """Display form of the ``IOMMU_HWPT_DIRTY_TRACKING_*`` flags."""

    ENABLE = IOMMU_HWPT_DIRTY_TRACKING_ENABLE


class iommu_hwpt_set_dirty_tracking(Struct):
    """Argument of :data:`IOMMU_HWPT_SET_DIRTY_TRACKING`: start/stop dirty tracking.

    Switches the IOMMU's recording of device writes for HWPT ``hwpt_id``
    (a kernel-managed one, typically allocated with
    ``IOMMU_HWPT_ALLOC_DIRTY_TRACKING``); ``flags`` is
    :class:`iommufd_hwpt_set_dirty_tracking_flags`.  Needed for live
    migration with a device doing DMA.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("hwpt_id", u32),
        ("__reserved", u32),
    ]


IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)

IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1


class iommufd_hwpt_get_dirty_bitmap_flags(enum.IntFlag):
    """``enum iommufd_hwpt_get_dirty_bitmap_flags``.

    NO_CLEAR: read the dirty state without resetting it -- useful when the
    range is about to be unmapped anyway, saving the clearing work.
    """

    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR


class IommuHwptGetDirtyBitmapFlags(enum.IntFlag):
    """Display form of the ``IOMMU_HWPT_GET_DIRTY_BITMAP_*`` flags."""

    NO_CLEAR = IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR


class iommu_hwpt_get_dirty_bitmap(Struct):
    """Argument of :data:`IOMMU_HWPT_GET_DIRTY_BITMAP`: collect written pages.

    Walks HWPT ``hwpt_id``'s page table over ``iova``/``length`` and sets,
    in the user bitmap at ``data``, one bit per ``page_size`` bytes that a
    device wrote: the page at address ``a`` is bit ``(a - iova) //
    page_size`` counted in 64-bit words.  Bits are only ever set, never
    cleared, in the buffer.  The hardware dirty state is reset as it is read
    unless ``IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`` is in ``flags``.
    ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("hwpt_id", u32),
        ("flags", u32),
        ("__reserved", u32),
        ("iova", aligned_u64),
        ("length", aligned_u64),
        ("page_size", aligned_u64),
        ("data", aligned_u64),
    ]


IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)

IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0
IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1


class iommu_hwpt_invalidate_data_type(enum.IntEnum):
    """``enum iommu_hwpt_invalidate_data_type``: ``data_type`` of :class:`iommu_hwpt_invalidate`.

    Names the entry format: :class:`iommu_hwpt_vtd_s1_invalidate` or
    :class:`iommu_viommu_arm_smmuv3_invalidate`.
    """

    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = IOMMU_HWPT_INVALIDATE_DATA_VTD_S1
    IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3


IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0


class iommu_hwpt_vtd_s1_invalidate_flags(enum.IntFlag):
    """``enum iommu_hwpt_vtd_s1_invalidate_flags``: LEAF limits the flush to leaf entries."""

    IOMMU_VTD_INV_FLAGS_LEAF = IOMMU_VTD_INV_FLAGS_LEAF


class IommuHwptVtdS1InvalidateFlags(enum.IntFlag):
    """Display form of the ``IOMMU_VTD_INV_FLAGS_*`` flags."""

    LEAF = IOMMU_VTD_INV_FLAGS_LEAF


class iommu_hwpt_vtd_s1_invalidate(Struct):
    """One entry of type ``IOMMU_HWPT_INVALIDATE_DATA_VTD_S1``.

    After changing a guest stage-1 table, tells the IOMMU to drop cached
    translations for ``npages`` 4 KiB pages from ``addr`` (4 KiB aligned);
    ``addr = 0`` with ``npages = 2**64 - 1`` flushes everything.  ``flags``
    combines :class:`iommu_hwpt_vtd_s1_invalidate_flags`.  Device TLBs (ATS)
    are flushed along automatically.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("addr", aligned_u64),
        ("npages", aligned_u64),
        ("flags", u32),
        ("__reserved", u32),
    ]


class iommu_viommu_arm_smmuv3_invalidate(Struct):
    """One entry of type ``IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3``.

    ``cmd`` is a 128-bit SMMUv3 command-queue command, little-endian, as the
    guest issued it.  Only TLB, ATC and CD invalidation commands are
    accepted when the target is a vIOMMU; a command with an unsupported
    opcode, field or field value is refused with ``EIO``.
    """

    _fields_ = [
        ("cmd", aligned_le64 * 2),
    ]


class iommu_hwpt_invalidate(Struct):
    """Argument of :data:`IOMMU_HWPT_INVALIDATE`: flush caches for nesting.

    ``hwpt_id`` is a nested HWPT (after the guest edited its stage-1 table)
    or a vIOMMU (for device/descriptor caches).  ``data_uptr`` points to
    ``entry_num`` requests of ``entry_len`` bytes each, all of the format
    named by ``data_type`` (:class:`iommu_hwpt_invalidate_data_type`).  On
    return ``entry_num`` is how many were handled, so a failure part way can
    be resumed.  ``entry_num = 0`` is allowed and just checks whether
    ``data_type`` is supported.  ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("hwpt_id", u32),
        ("data_uptr", aligned_u64),
        ("data_type", u32),
        ("entry_len", u32),
        ("entry_num", u32),
        ("__reserved", u32),
    ]


IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE)

IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0
IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1


class iommu_hwpt_pgfault_flags(enum.IntFlag):
    """``enum iommu_hwpt_pgfault_flags``: ``flags`` of :class:`iommu_hwpt_pgfault`.

    PASID_VALID: ``pasid`` is meaningful.  LAST_PAGE: the message closes a
    fault group, so it is the one to answer.
    """

    IOMMU_PGFAULT_FLAGS_PASID_VALID = IOMMU_PGFAULT_FLAGS_PASID_VALID
    IOMMU_PGFAULT_FLAGS_LAST_PAGE = IOMMU_PGFAULT_FLAGS_LAST_PAGE


class IommuPgfaultFlags(enum.IntFlag):
    """Display form of the ``IOMMU_PGFAULT_FLAGS_*`` flags."""

    PASID_VALID = IOMMU_PGFAULT_FLAGS_PASID_VALID
    LAST_PAGE = IOMMU_PGFAULT_FLAGS_LAST_PAGE


IOMMU_PGFAULT_PERM_READ = 1 << 0
IOMMU_PGFAULT_PERM_WRITE = 1 << 1
IOMMU_PGFAULT_PERM_EXEC = 1 << 2
IOMMU_PGFAULT_PERM_PRIV = 1 << 3


class iommu_hwpt_pgfault_perm(enum.IntFlag):
    """``enum iommu_hwpt_pgfault_perm``: ``perm`` of :class:`iommu_hwpt_pgfault`.

    The access the device asked for: read, write, and for PASID requests
    the PCIe execute and privileged-mode bits.
    """

    IOMMU_PGFAULT_PERM_READ = IOMMU_PGFAULT_PERM_READ
    IOMMU_PGFAULT_PERM_WRITE = IOMMU_PGFAULT_PERM_WRITE
    IOMMU_PGFAULT_PERM_EXEC = IOMMU_PGFAULT_PERM_EXEC
    IOMMU_PGFAULT_PERM_PRIV = IOMMU_PGFAULT_PERM_PRIV


class IommuPgfaultPerm(enum.IntFlag):
    """Display form of the ``IOMMU_PGFAULT_PERM_*`` bits."""

    READ = IOMMU_PGFAULT_PERM_READ
    WRITE = IOMMU_PGFAULT_PERM_WRITE
    EXEC = IOMMU_PGFAULT_PERM_EXEC
    PRIV = IOMMU_PGFAULT_PERM_PRIV


class iommu_hwpt_pgfault(Struct):
    """One I/O page fault, as read from a fault queue's descriptor.

    Not an ioctl argument: ``read()`` on the ``out_fault_fd`` of
    :data:`IOMMU_FAULT_QUEUE_ALLOC` returns whole records of this struct.
    The device ``dev_id`` (optionally on ``pasid``) touched ``addr`` with the
    access ``perm``; ``grpid`` is the PCI page request group, ``length`` an
    optional hint of how much the device intends to access (0 if none).
    ``cookie`` identifies the group; the cookie of the group's last message
    goes back in :class:`iommu_hwpt_page_response`.
    """

    _fields_ = [
        ("flags", u32),
        ("dev_id", u32),
        ("pasid", u32),
        ("grpid", u32),
        ("perm", u32),
        ("__reserved", u32),
        ("addr", aligned_u64),
        ("length", u32),
        ("cookie", u32),
    ]


IOMMUFD_PAGE_RESP_SUCCESS = 0
IOMMUFD_PAGE_RESP_INVALID = 1


class iommufd_page_response_code(enum.IntEnum):
    """``enum iommufd_page_response_code``: ``code`` of :class:`iommu_hwpt_page_response`.

    SUCCESS: the fault was resolved, the device retries.  INVALID: it could
    not be, the device must not retry.  (PCI's "Success"/"Invalid Request".)
    """

    IOMMUFD_PAGE_RESP_SUCCESS = IOMMUFD_PAGE_RESP_SUCCESS
    IOMMUFD_PAGE_RESP_INVALID = IOMMUFD_PAGE_RESP_INVALID


class iommu_hwpt_page_response(Struct):
    """Answer to a page-fault group, written to the fault queue's descriptor.

    ``cookie`` is the one from the group's last :class:`iommu_hwpt_pgfault`
    and ``code`` an :class:`iommufd_page_response_code`.
    """

    _fields_ = [
        ("cookie", u32),
        ("code", u32),
    ]


class iommu_fault_alloc(Struct):
    """Argument of :data:`IOMMU_FAULT_QUEUE_ALLOC`: create a page-fault queue.

    Returns the object id (``out_fault_id``, to pass as ``fault_id`` with
    ``IOMMU_HWPT_FAULT_ID_VALID`` when allocating a HWPT) and a descriptor
    (``out_fault_fd``) from which faults are read as
    :class:`iommu_hwpt_pgfault` and to which responses are written as
    :class:`iommu_hwpt_page_response`.  ``flags`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("out_fault_id", u32),
        ("out_fault_fd", u32),
    ]


IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC)

IOMMU_VIOMMU_TYPE_DEFAULT = 0
IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1
IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2


class iommu_viommu_type(enum.IntEnum):
    """``enum iommu_viommu_type``: ``type`` of :class:`iommu_viommu_alloc`.

    DEFAULT is reserved.  TEGRA241_CMDQV is an SMMUv3 with NVIDIA's
    command-queue extension; the kernel backs it with a virtual interface
    owned by the guest, so the VMM must present that interface's HYP_OWN
    bit as 0.
    """

    IOMMU_VIOMMU_TYPE_DEFAULT = IOMMU_VIOMMU_TYPE_DEFAULT
    IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = IOMMU_VIOMMU_TYPE_ARM_SMMUV3
    IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV


class iommu_viommu_tegra241_cmdqv(Struct):
    """Driver data of a ``IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV`` vIOMMU.

    Passed through ``data_uptr`` of :class:`iommu_viommu_alloc` and filled
    in by the kernel: the mmap offset and length (on the iommufd) of the
    virtual interface's page 0, which the VMM maps into the guest so the
    guest drives its command queues directly.
    """

    _fields_ = [
        ("out_vintf_mmap_offset", aligned_u64),
        ("out_vintf_mmap_length", aligned_u64),
    ]


class iommu_viommu_alloc(Struct):
    """Argument of :data:`IOMMU_VIOMMU_ALLOC`: create a virtual IOMMU.

    A vIOMMU is the slice of a physical IOMMU (the one behind ``dev_id``)
    that belongs to one VM: it holds what is global to the guest's IOMMU --
    guest-chosen ids and cache tags, events not tied to a device, the
    shared nesting parent ``hwpt_id``, invalidation and queue acceleration.
    ``type`` is an :class:`iommu_viommu_type`; ``data_len``/``data_uptr``
    pass type-specific data (e.g. :class:`iommu_viommu_tegra241_cmdqv`).
    Returns ``out_viommu_id``.  ``flags`` and ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("type", u32),
        ("dev_id", u32),
        ("hwpt_id", u32),
        ("out_viommu_id", u32),
        ("data_len", u32),
        ("__reserved", u32),
        ("data_uptr", aligned_u64),
    ]


IOMMU_VIOMMU_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC)


class iommu_vdevice_alloc(Struct):
    """Argument of :data:`IOMMU_VDEVICE_ALLOC`: give a device its guest-visible id.

    Registers physical device ``dev_id`` on vIOMMU ``viommu_id`` under the
    id the guest knows it by, ``virt_id`` (the virtual SMMUv3 stream id, AMD
    device id or VT-d requester id), so guest invalidations and events can
    be translated.  Returns ``out_vdevice_id``.  Destroy it with
    :data:`IOMMU_DESTROY` before the device is closed: otherwise the kernel
    tears it down itself and its id stays unusable until the iommufd closes.
    """

    _fields_ = [
        ("size", u32),
        ("viommu_id", u32),
        ("dev_id", u32),
        ("out_vdevice_id", u32),
        ("virt_id", aligned_u64),
    ]


IOMMU_VDEVICE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC)


class iommu_ioas_change_process(Struct):
    """Argument of :data:`IOMMU_IOAS_CHANGE_PROCESS`: adopt the mappings.

    Moves the pinned-memory accounting of every mapping in every IOAS of
    this iommufd to the calling process -- what a new process needs after
    taking over a device from an old one (live update / CPR).  It only works
    when every mapping came from :data:`IOMMU_IOAS_MAP_FILE`: a mapping of
    another process's virtual addresses cannot be carried over, so any such
    mapping makes the call fail with ``EINVAL``.  It is all or nothing: on
    any failure nothing changes.  ``__reserved`` must be 0.  (The header's
    heading calls it ``VFIO_IOAS_CHANGE_PROCESS``; the define is the
    ``IOMMU_`` name.)
    """

    _fields_ = [
        ("size", u32),
        ("__reserved", u32),
    ]


IOMMU_IOAS_CHANGE_PROCESS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS)

IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0


class iommu_veventq_flag(enum.IntFlag):
    """``enum iommu_veventq_flag``: ``flags`` of :class:`iommufd_vevent_header`.

    LOST_EVENTS: the queue overflowed at its tail; the header has no data.
    """

    IOMMU_VEVENTQ_FLAG_LOST_EVENTS = IOMMU_VEVENTQ_FLAG_LOST_EVENTS


class IommuVeventqFlags(enum.IntFlag):
    """Display form of the ``IOMMU_VEVENTQ_FLAG_*`` flags."""

    LOST_EVENTS = IOMMU_VEVENTQ_FLAG_LOST_EVENTS


class iommufd_vevent_header(Struct):
    """Header in front of every event read from a vEVENTQ descriptor.

    ``sequence`` counts events from 0 and wraps after ``INT_MAX`` to 0; a
    jump of more than one between neighbours means the events in between
    were dropped.  If the drop happened at the very end, the queue instead
    ends with a header carrying ``IOMMU_VEVENTQ_FLAG_LOST_EVENTS`` in
    ``flags`` and no data after it.  Otherwise a type-specific record
    (:class:`iommu_vevent_arm_smmuv3`, ...) follows.
    """

    _fields_ = [
        ("flags", u32),
        ("sequence", u32),
    ]


IOMMU_VEVENTQ_TYPE_DEFAULT = 0
IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1
IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2


class iommu_veventq_type(enum.IntEnum):
    """``enum iommu_veventq_type``: ``type`` of :class:`iommu_veventq_alloc`.

    DEFAULT is reserved; the others name the record that follows each
    :class:`iommufd_vevent_header`.
    """

    IOMMU_VEVENTQ_TYPE_DEFAULT = IOMMU_VEVENTQ_TYPE_DEFAULT
    IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = IOMMU_VEVENTQ_TYPE_ARM_SMMUV3
    IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV


class iommu_vevent_arm_smmuv3(Struct):
    """Event record of a ``IOMMU_VEVENTQ_TYPE_ARM_SMMUV3`` queue.

    ``evt`` is a 256-bit SMMUv3 event record, little-endian, of one of the
    translation/configuration fault kinds the kernel forwards; its stream id
    is the virtual one, so a vDEVICE must exist for the device to get events.
    """

    _fields_ = [
        ("evt", aligned_le64 * 4),
    ]


class iommu_vevent_tegra241_cmdqv(Struct):
    """Event record of a ``IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV`` queue.

    ``lvcmdq_err_map`` is the 128-bit, little-endian error map of the
    vIOMMU's virtual command queues, straight from the hardware register.
    """

    _fields_ = [
        ("lvcmdq_err_map", aligned_le64 * 2),
    ]


class iommu_veventq_alloc(Struct):
    """Argument of :data:`IOMMU_VEVENTQ_ALLOC`: create a virtual event queue.

    Attaches a queue of ``type`` (:class:`iommu_veventq_type`; one queue per
    type per vIOMMU) to vIOMMU ``viommu_id``, holding at most
    ``veventq_depth`` events -- beyond that events are lost (see
    :class:`iommufd_vevent_header`).  Returns ``out_veventq_id`` and a
    descriptor ``out_veventq_fd`` to read events from; the caller must close
    it.  ``flags`` and ``__reserved`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("viommu_id", u32),
        ("type", u32),
        ("veventq_depth", u32),
        ("out_veventq_id", u32),
        ("out_veventq_fd", u32),
        ("__reserved", u32),
    ]


IOMMU_VEVENTQ_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC)

IOMMU_HW_QUEUE_TYPE_DEFAULT = 0
IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1


class iommu_hw_queue_type(enum.IntEnum):
    """``enum iommu_hw_queue_type``: ``type`` of :class:`iommu_hw_queue_alloc`.

    DEFAULT is reserved.  TEGRA241_CMDQV queues must be allocated from
    index 0 upwards and freed from the last down; the memory must be a
    power of two in size (at least 32 bytes), aligned to that size and
    already mapped in the IOAS -- otherwise allocation fails.
    """

    IOMMU_HW_QUEUE_TYPE_DEFAULT = IOMMU_HW_QUEUE_TYPE_DEFAULT
    IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV


class iommu_hw_queue_alloc(Struct):
    """Argument of :data:`IOMMU_HW_QUEUE_ALLOC`: hand a guest queue to hardware.

    Lets the IOMMU consume a queue that lives in guest memory directly:
    ``nesting_parent_iova``/``length`` locate it in the guest physical
    space, ``type`` (:class:`iommu_hw_queue_type`) and ``index`` (distinct
    per type within vIOMMU ``viommu_id``) say which hardware queue it is.
    Returns ``out_hw_queue_id``.  ``flags`` must be 0.
    """

    _fields_ = [
        ("size", u32),
        ("flags", u32),
        ("viommu_id", u32),
        ("type", u32),
        ("index", u32),
        ("out_hw_queue_id", u32),
        ("nesting_parent_iova", aligned_u64),
        ("length", aligned_u64),
    ]


IOMMU_HW_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC)


# Every command, in the header's order; all are issued on a /dev/iommu fd.
IOCTLS: tuple[IoctlDef, ...] = (
    IoctlDef(
        "IOMMU_DESTROY", IOMMU_DESTROY,
        fd="iommufd", arg="struct iommu_destroy", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC,
        fd="iommufd", arg="struct iommu_ioas_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES,
        fd="iommufd", arg="struct iommu_ioas_iova_ranges", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS,
        fd="iommufd", arg="struct iommu_ioas_allow_iovas", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_MAP", IOMMU_IOAS_MAP,
        fd="iommufd", arg="struct iommu_ioas_map", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_NOIOMMU_GET_PA", IOMMU_IOAS_NOIOMMU_GET_PA,
        fd="iommufd", arg="struct iommu_ioas_noiommu_get_pa", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_MAP_FILE", IOMMU_IOAS_MAP_FILE,
        fd="iommufd", arg="struct iommu_ioas_map_file", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_COPY", IOMMU_IOAS_COPY,
        fd="iommufd", arg="struct iommu_ioas_copy", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_UNMAP", IOMMU_IOAS_UNMAP,
        fd="iommufd", arg="struct iommu_ioas_unmap", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_OPTION", IOMMU_OPTION,
        fd="iommufd", arg="struct iommu_option", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_VFIO_IOAS", IOMMU_VFIO_IOAS,
        fd="iommufd", arg="struct iommu_vfio_ioas", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_HWPT_ALLOC", IOMMU_HWPT_ALLOC,
        fd="iommufd", arg="struct iommu_hwpt_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_GET_HW_INFO", IOMMU_GET_HW_INFO,
        fd="iommufd", arg="struct iommu_hw_info", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMU_HWPT_SET_DIRTY_TRACKING,
        fd="iommufd", arg="struct iommu_hwpt_set_dirty_tracking", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP,
        fd="iommufd", arg="struct iommu_hwpt_get_dirty_bitmap", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE,
        fd="iommufd", arg="struct iommu_hwpt_invalidate", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC,
        fd="iommufd", arg="struct iommu_fault_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_VIOMMU_ALLOC", IOMMU_VIOMMU_ALLOC,
        fd="iommufd", arg="struct iommu_viommu_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_VDEVICE_ALLOC", IOMMU_VDEVICE_ALLOC,
        fd="iommufd", arg="struct iommu_vdevice_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_IOAS_CHANGE_PROCESS", IOMMU_IOAS_CHANGE_PROCESS,
        fd="iommufd", arg="struct iommu_ioas_change_process", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_VEVENTQ_ALLOC", IOMMU_VEVENTQ_ALLOC,
        fd="iommufd", arg="struct iommu_veventq_alloc", header="iommufd.h",
    ),
    IoctlDef(
        "IOMMU_HW_QUEUE_ALLOC", IOMMU_HW_QUEUE_ALLOC,
        fd="iommufd", arg="struct iommu_hw_queue_alloc", header="iommufd.h",
    ),
)

# Every top-level struct/union of the header, in its order (the private
# helper for iommu_hw_info's anonymous union is not one of them).
STRUCTS: tuple[type[Struct] | type[Union], ...] = (
    iommu_destroy,
    iommu_ioas_alloc,
    iommu_iova_range,
    iommu_ioas_iova_ranges,
    iommu_ioas_allow_iovas,
    iommu_ioas_map,
    iommu_ioas_noiommu_get_pa,
    iommu_ioas_map_file,
    iommu_ioas_copy,
    iommu_ioas_unmap,
    iommu_option,
    iommu_vfio_ioas,
    iommu_hwpt_vtd_s1,
    iommu_hwpt_arm_smmuv3,
    iommu_hwpt_amd_guest,
    iommu_hwpt_alloc,
    iommu_hw_info_vtd,
    iommu_hw_info_arm_smmuv3,
    iommu_hw_info_tegra241_cmdqv,
    iommu_hw_info_amd,
    iommu_hw_info,
    iommu_hwpt_set_dirty_tracking,
    iommu_hwpt_get_dirty_bitmap,
    iommu_hwpt_vtd_s1_invalidate,
    iommu_viommu_arm_smmuv3_invalidate,
    iommu_hwpt_invalidate,
    iommu_hwpt_pgfault,
    iommu_hwpt_page_response,
    iommu_fault_alloc,
    iommu_viommu_tegra241_cmdqv,
    iommu_viommu_alloc,
    iommu_vdevice_alloc,
    iommu_ioas_change_process,
    iommufd_vevent_header,
    iommu_vevent_arm_smmuv3,
    iommu_vevent_tegra241_cmdqv,
    iommu_veventq_alloc,
    iommu_hw_queue_alloc,
)
