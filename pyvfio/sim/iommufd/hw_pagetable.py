"""Hardware page tables -- the DMA domains devices translate through (``drivers/iommu/iommufd/hw_pagetable.c``).

A :class:`HwptPaging` is an IOMMU domain filled from one IOAS.  It is either
allocated by the program (``IOMMU_HWPT_ALLOC``) or created automatically when
a device is attached straight to an IOAS (an *auto domain*, destroyed again
when its last device leaves).  A device attached to it does DMA through
:meth:`HwptPaging.dma_read`/:meth:`HwptPaging.dma_write`: IOVAs are looked up
in the IOAS's areas, permissions checked, and writes recorded as dirty while
dirty tracking is on.

The simulated IOMMU is the one pyvfio's VM lane runs on, QEMU 7.2's
``-device intel-iommu``: 4 KiB page granule (every IOAS it joins gets a 4 KiB
IOVA alignment), a 39-bit aperture (QEMU's default ``aw-bits``; IOVA above
it becomes reserved), ``IOMMU_GET_HW_INFO`` answering with the VT-d
registers that QEMU exposes, and no dirty tracking (``IOMMU_HWPT_ALLOC`` with
``DIRTY_TRACKING`` is EOPNOTSUPP), as measured on 7.3.4.  Dirty tracking is
a per-device opt-in of the model (``kernel.add_device(..., iommu_dirty_tracking=True)``,
an IOMMU with second-stage access/dirty bits): then ``out_capabilities``
reports it and a domain allocated with ``IOMMU_HWPT_ALLOC_DIRTY_TRACKING``
records device writes.  It has no
stage-1 (nested) page tables and no vIOMMU: ``NEST_PARENT`` needs a device
reporting ``nesting_capable`` and nested allocations are refused as an IOMMU
without nesting refuses them.
"""

from __future__ import annotations

import struct as _struct
from typing import TYPE_CHECKING, Iterator, Optional

from ...uapi import iommufd as ui
from ..errno import EFAULT, EINVAL, ENOMEM, EOPNOTSUPP, EOVERFLOW, EPERM, KernelError
from .io_pagetable import IOMMU_READ, IOMMU_WRITE, PAGE_SIZE, ULONG_MAX, IoptArea, _user_range_writable
from .main import IommufdCtx, IommufdObject, Ucmd

if TYPE_CHECKING:
    from ..vfio_main import VfioDevice
    from .device import IommufdDevice
    from .eventq import Fault
    from .ioas import Ioas

IOMMU_APERTURE_BITS = 39  # QEMU 7.2 intel-iommu's default aw-bits (the VM lane: IOVA ends at 0x7fffffffff)
X86_MSI_WINDOW = (0xFEE00000, 0xFEEFFFFF)  # IOMMU_RESV_MSI intel-iommu reports for every device

# What QEMU 7.2's intel-iommu (intremap=on, caching-mode=on) shows a 7.3.4 guest, read in the VM lane with
# IOMMU_GET_HW_INFO.  ecap bit 0 (page-walk coherency) is clear, so the kernel sets the SPR17 erratum flag.
VTD_CAP_REG = 0xD2008C22260286
VTD_ECAP_REG = 0xF00F4A
VTD_FLAGS = ui.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17


# -- what the simulated IOMMU driver knows about a device ----------------------------------------
def dev_dirty_tracking_capable(vdev: "VfioDevice") -> bool:
    """``device_iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING)`` (vfio-pci's ``dirty_tracking_capable``).

    False unless the device was added with ``iommu_dirty_tracking=True``: QEMU's intel-iommu in the VM lane
    has no dirty tracking."""
    return bool(getattr(vdev.ops, "dirty_tracking_capable", False))


def dev_ats_supported(vdev: "VfioDevice") -> bool:
    """``pci_ats_supported``: the function has an ATS extended capability (the edu has none)."""
    from ...uapi.pci_regs import PCI_EXT_CAP_ID_ATS
    from ..pci_device import find_ext_capability

    pci = getattr(vdev.ops, "pci", None)
    config = getattr(pci, "config", None)
    return config is not None and bool(find_ext_capability(config, PCI_EXT_CAP_ID_ATS))


def dev_nesting_capable(vdev: "VfioDevice") -> bool:
    """Whether the IOMMU behind the device does nested translation (the simulated one does not)."""
    return bool(getattr(vdev.ops, "nesting_capable", False))


def dev_reserved_regions(vdev: "VfioDevice") -> list[tuple[int, int]]:
    """``iommu_get_resv_regions``: IOVA the device cannot use (inclusive ranges)."""
    return [(int(s), int(l)) for s, l in getattr(vdev.ops, "reserved_iova", [X86_MSI_WINDOW])]


def dev_iopf_capable(vdev: "VfioDevice") -> bool:
    """Whether the device can take I/O page faults (PRI); needed to attach to a HWPT with a fault queue."""
    return bool(getattr(vdev.ops, "iopf_capable", False))


class HwptPaging(IommufdObject):
    """``struct iommufd_hwpt_paging`` and its ``iommu_domain``.

    Holds a reference on its IOAS (which therefore cannot be destroyed) and
    on its fault queue, if any.  ``users`` counts attached devices.
    """

    kind = "HWPT_PAGING"
    pgsize = PAGE_SIZE
    aperture_start = 0

    def __init__(self, ictx: IommufdCtx, ioas: "Ioas", *, nest_parent: bool, dirty_ops: bool,
                 aperture_bits: int = IOMMU_APERTURE_BITS) -> None:
        super().__init__(ictx)
        self.ioas = ioas
        ioas.users += 1
        self.auto_domain = False
        self.nest_parent = nest_parent
        self.dirty_ops = dirty_ops  # the domain supports dirty tracking (allocated with DIRTY_TRACKING)
        self.dirty_tracking = False
        self.dirty: set[int] = set()  # IOVA page numbers written while tracking
        self.aperture_end = (1 << aperture_bits) - 1
        self.fault: Optional["Fault"] = None
        self.in_iopt = False

    def __repr__(self) -> str:
        auto = " auto" if self.auto_domain else ""
        return f"<HwptPaging id {self.id}{auto} IOAS {self.ioas.id} users {self.users}>"

    def holds(self) -> list[IommufdObject]:
        out: list[IommufdObject] = [self.ioas]
        if self.fault is not None:
            out.append(self.fault)
        return out

    def destroy(self) -> None:
        """``iommufd_hwpt_paging_destroy``: leave the IOAS (its IOVA limits go too) and drop references."""
        if self.in_iopt:
            self.in_iopt = False
            if self in self.ioas.hwpt_list:
                self.ioas.hwpt_list.remove(self)
            self.ioas.iopt.table_remove_domain(self)
        self.ioas.users -= 1
        if self.fault is not None:
            self.fault.users -= 1
            self.fault = None

    # -- DMA through the domain ------------------------------------------------------------------
    def _translate(self, iova: int, length: int, prot: int) -> list[tuple[IoptArea, int, int]]:
        """Resolve ``[iova, +length)`` to ``(area, iova, bytes)`` pieces, or fault like the IOMMU would."""
        if iova < 0 or iova + length - 1 > ULONG_MAX:
            raise KernelError(EFAULT, f"IOMMU fault: IOVA {iova:#x}+{length:#x} is out of range")
        pieces = []
        cur, end = iova, iova + length
        while cur < end:
            hit = self.ioas.iopt.areas.find(cur)
            if hit is None:
                raise KernelError(EFAULT, f"IOMMU fault: IOVA {cur:#x} is not mapped in HWPT {self.id}")
            area = hit[2]
            if not area.prot & prot:
                what = "write to a read-only" if prot == IOMMU_WRITE else "read from a write-only"
                raise KernelError(EPERM, f"IOMMU fault: {what} mapping at IOVA {cur:#x}")
            n = min(end, area.last + 1) - cur
            pieces.append((area, cur, n))
            cur += n
        return pieces

    def dma_read(self, iova: int, length: int) -> bytes:
        """A device read: EFAULT for unmapped IOVA, EPERM for a mapping without READABLE."""
        out = bytearray()
        for area, cur, n in self._translate(iova, length, IOMMU_READ):
            out += area.pages.read(area.start_byte_of(cur), n)
        return bytes(out)

    def dma_write(self, iova: int, data: bytes) -> None:
        """A device write: EFAULT for unmapped IOVA, EPERM for a mapping without WRITEABLE; marks dirty pages."""
        data = bytes(data)
        pos = 0
        for area, cur, n in self._translate(iova, len(data), IOMMU_WRITE):
            area.pages.write(area.start_byte_of(cur), data[pos: pos + n])
            pos += n
        if self.dirty_tracking and data:
            self.dirty.update(range(iova // PAGE_SIZE, (iova + len(data) - 1) // PAGE_SIZE + 1))


def find_hwpt_paging(obj: Optional[IommufdObject]) -> Optional[HwptPaging]:
    return obj if isinstance(obj, HwptPaging) else None


def get_hwpt_paging(ictx: IommufdCtx, hwpt_id: int) -> HwptPaging:
    return ictx.get_object(hwpt_id, HwptPaging)


# -- allocation -------------------------------------------------------------------------------------
_PAGING_FLAGS = (ui.IOMMU_HWPT_ALLOC_NEST_PARENT | ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING | ui.IOMMU_HWPT_FAULT_ID_VALID
                 | ui.IOMMU_HWPT_ALLOC_PASID)


def iommufd_hwpt_paging_alloc(ictx: IommufdCtx, ioas: "Ioas", idev: "IommufdDevice", flags: int,
                              immediate_attach: bool, has_user_data: bool) -> HwptPaging:
    """``iommufd_hwpt_paging_alloc``: a domain for ``idev`` filled from ``ioas``.

    Flag checks (EOPNOTSUPP) come first, then the driver (no user data, no
    NEST_PARENT without nesting), then the optional immediate attach of
    ``idev`` (auto domains), then joining the IOAS, which pins its mappings
    and reserves IOVA beyond the aperture.
    """
    if flags & ~_PAGING_FLAGS:
        raise KernelError(EOPNOTSUPP, f"unknown HWPT flags {flags & ~_PAGING_FLAGS:#x}")
    vdev = idev.vdev
    if flags & ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING and not dev_dirty_tracking_capable(vdev):
        raise KernelError(EOPNOTSUPP, f"{vdev.name}: its IOMMU cannot track dirty pages")
    if flags & ui.IOMMU_HWPT_FAULT_ID_VALID and flags & ui.IOMMU_HWPT_ALLOC_NEST_PARENT:
        raise KernelError(EOPNOTSUPP, "a nesting parent cannot take a fault queue")
    # the IOMMU driver's domain_alloc_paging_flags
    if has_user_data:
        raise KernelError(EOPNOTSUPP, "the IOMMU driver takes no driver data for a paging domain")
    if flags & ui.IOMMU_HWPT_ALLOC_NEST_PARENT and not dev_nesting_capable(vdev):
        raise KernelError(EOPNOTSUPP, f"{vdev.name}: its IOMMU has no nested translation")
    hwpt = ictx.object_alloc(HwptPaging(ictx, ioas, nest_parent=bool(flags & ui.IOMMU_HWPT_ALLOC_NEST_PARENT),
                                         dirty_ops=bool(flags & ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)))
    from .device import iommufd_hw_pagetable_attach, iommufd_hw_pagetable_detach

    try:
        if immediate_attach:
            iommufd_hw_pagetable_attach(hwpt, idev)
        try:
            ioas.iopt.table_add_domain(hwpt)
        except KernelError:
            if immediate_attach:
                iommufd_hw_pagetable_detach(idev)
                hwpt.users -= 1
            raise
    except KernelError:
        ictx.object_abort(hwpt)
        raise
    hwpt.in_iopt = True
    ioas.hwpt_list.append(hwpt)
    return hwpt


def iommufd_hwpt_alloc(ucmd: Ucmd) -> int:
    """``IOMMU_HWPT_ALLOC``: a page table for ``dev_id`` on ``pt_id``.

    ``pt_id`` an IOAS gives a paging HWPT.  ``pt_id`` a paging HWPT asks for a
    nested (stage-1) table: EOPNOTSUPP for unsupported flags or no data,
    EINVAL when the parent is an auto domain or not a nesting parent, and
    EOPNOTSUPP from the driver, which has no stage-1 format.  A bad
    ``dev_id`` is ENOENT but a bad ``pt_id`` EINVAL.
    """
    from .device import get_device
    from .eventq import Fault
    from .ioas import Ioas

    cmd = ucmd.cmd
    ictx = ucmd.ictx
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    if (cmd.data_type == ui.IOMMU_HWPT_DATA_NONE and cmd.data_len) or \
            (cmd.data_type != ui.IOMMU_HWPT_DATA_NONE and not cmd.data_len):
        raise KernelError(EINVAL, f"data_type {cmd.data_type} does not agree with data_len {cmd.data_len}")
    idev = get_device(ictx, cmd.dev_id)
    pt_obj = ictx.objects.get(int(cmd.pt_id))
    if pt_obj is None:
        raise KernelError(EINVAL, f"pt_id {cmd.pt_id} names no object")
    if isinstance(pt_obj, Ioas):
        hwpt = iommufd_hwpt_paging_alloc(ictx, pt_obj, idev, int(cmd.flags), False, bool(cmd.data_len))
    elif isinstance(pt_obj, HwptPaging):
        _hwpt_nested_alloc(pt_obj, int(cmd.flags), int(cmd.data_len), int(cmd.data_type))
        raise AssertionError("unreachable")  # pragma: no cover
    else:
        raise KernelError(EINVAL, f"pt_id {cmd.pt_id} is a {pt_obj.kind}, not an IOAS or a page table")
    try:
        if cmd.flags & ui.IOMMU_HWPT_FAULT_ID_VALID:
            fault = ictx.get_object(int(cmd.fault_id), Fault)
            hwpt.fault = fault
            fault.users += 1
        cmd.out_hwpt_id = hwpt.id
        ucmd.respond()
    except KernelError:
        ictx.object_abort(hwpt)
        raise
    return 0


def _hwpt_nested_alloc(parent: HwptPaging, flags: int, data_len: int, data_type: int) -> None:
    """``iommufd_hwpt_nested_alloc`` on an IOMMU without stage-1 support: always refused."""
    if flags & ~ui.IOMMU_HWPT_FAULT_ID_VALID or not data_len:
        raise KernelError(EOPNOTSUPP, "a nested page table takes only FAULT_ID_VALID and needs driver data")
    if parent.auto_domain or not parent.nest_parent:
        raise KernelError(EINVAL, f"HWPT {parent.id} is not a nesting parent (allocate it with "
                                  "IOMMU_HWPT_ALLOC_NEST_PARENT)")
    raise KernelError(EOPNOTSUPP, f"the IOMMU has no stage-1 page table format (data_type {data_type})")


# -- dirty tracking ----------------------------------------------------------------------------------
def iommufd_hwpt_set_dirty_tracking(ucmd: Ucmd) -> int:
    """``IOMMU_HWPT_SET_DIRTY_TRACKING``: start (clearing old dirty state for a clean snapshot) or stop.

    Only a paging HWPT allocated with ``IOMMU_HWPT_ALLOC_DIRTY_TRACKING`` has
    dirty ops; any other is EOPNOTSUPP.
    """
    cmd = ucmd.cmd
    if cmd.flags & ~ui.IOMMU_HWPT_DIRTY_TRACKING_ENABLE:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags:#x}")
    hwpt = get_hwpt_paging(ucmd.ictx, cmd.hwpt_id)
    if not hwpt.dirty_ops:
        raise KernelError(EOPNOTSUPP, f"HWPT {hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING")
    enable = bool(cmd.flags & ui.IOMMU_HWPT_DIRTY_TRACKING_ENABLE)
    if enable:
        hwpt.dirty.clear()
    hwpt.dirty_tracking = enable
    return 0


def iommufd_check_iova_range(iova_alignment: int, iova: int, length: int, page_size: int) -> None:
    """``iommufd_check_iova_range``: the bitmap range must not overflow and must be aligned to both
    the IOAS alignment and ``page_size``."""
    last = iova + ((length - 1) & ULONG_MAX)  # u64 arithmetic: length 0 wraps to U64_MAX
    if last > ULONG_MAX:
        raise KernelError(EOVERFLOW, f"iova {iova:#x} + length {length:#x} overflows")
    end = (last + 1) & ULONG_MAX
    if iova & (iova_alignment - 1) or end & (iova_alignment - 1):
        raise KernelError(EINVAL, f"range [{iova:#x}, +{length:#x}) is not aligned to the IOAS alignment "
                                  f"{iova_alignment:#x}")
    if not page_size:
        raise KernelError(EINVAL, "page_size 0")
    if iova & (page_size - 1) or end & (page_size - 1):
        raise KernelError(EINVAL, f"range [{iova:#x}, +{length:#x}) is not aligned to page_size {page_size:#x}")


def _contig_prefix(hwpt: HwptPaging, iova: int, last: int) -> Iterator[tuple[int, int]]:
    """The covered pieces ``[cur, end]`` walking areas from ``iova`` until the first gap."""
    for cur, area in hwpt.ioas.iopt.contig_areas(iova, last):
        yield cur, min(last, area.last)


def iommufd_hwpt_get_dirty_bitmap(ucmd: Ucmd) -> int:
    """``IOMMU_HWPT_GET_DIRTY_BITMAP``: OR the dirty state of ``[iova, +length)`` into the user bitmap.

    Bit ``n`` stands for ``iova + n * page_size``; bits are only ever set,
    never cleared, in the caller's buffer.  The dirty state read is cleared
    unless ``NO_CLEAR``.  As in the kernel, the walk stops silently at the
    first IOVA not covered by a mapping (the driver's error is not
    propagated), and a bitmap buffer that cannot be written is ENOMEM.
    """
    cmd = ucmd.cmd
    if cmd.flags & ~ui.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR or getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "unknown flags or __reserved set")
    hwpt = get_hwpt_paging(ucmd.ictx, cmd.hwpt_id)
    iova, length, page_size = int(cmd.iova), int(cmd.length), int(cmd.page_size)
    iommufd_check_iova_range(hwpt.ioas.iopt.iova_alignment, iova, length, page_size)
    if not hwpt.dirty_ops:
        raise KernelError(EOPNOTSUPP, f"HWPT {hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING")
    if length == 0:
        return 0
    pgshift = (page_size & -page_size).bit_length() - 1
    nbits = ((length - 1) >> pgshift) + 1
    nbytes = ((nbits + 63) // 64) * 8
    data = int(cmd.data)
    first_chunk = min(nbytes, 512 * PAGE_SIZE)
    try:
        ucmd.task.mm.check(data, first_chunk)
    except KernelError:
        raise KernelError(ENOMEM, "the bitmap buffer cannot be pinned (iova_bitmap_alloc reports ENOMEM)") \
            from None
    if not _user_range_writable(ucmd.task.mm.pid, data, first_chunk):
        raise KernelError(ENOMEM, "the bitmap buffer is not writable (iova_bitmap_alloc reports ENOMEM)")
    if not hwpt.dirty_tracking:
        return 0  # the driver refuses to read while tracking is off; iommufd ignores that error
    last = iova + length - 1
    words: dict[int, int] = {}
    reported: list[int] = []
    for cur, end in _contig_prefix(hwpt, iova, last):
        for page in sorted(p for p in hwpt.dirty if cur // PAGE_SIZE <= p <= end // PAGE_SIZE):
            reported.append(page)
            lo = max(page * PAGE_SIZE, cur)
            hi = min(page * PAGE_SIZE + PAGE_SIZE - 1, end)
            for bit in range((lo - iova) >> pgshift, ((hi - iova) >> pgshift) + 1):
                words[bit // 64] = words.get(bit // 64, 0) | (1 << (bit % 64))
    for word, bits in sorted(words.items()):
        addr = data + word * 8
        try:
            old = _struct.unpack("<Q", ucmd.task.mm.read(addr, 8))[0]
            ucmd.task.mm.write(addr, _struct.pack("<Q", old | bits))
        except KernelError:
            break  # a later bitmap chunk failed to pin: the kernel stops without an error
    if not cmd.flags & ui.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR:
        hwpt.dirty.difference_update(reported)
    return 0


# -- IOMMU_HWPT_INVALIDATE ---------------------------------------------------------------------------
def iommufd_hwpt_invalidate(ucmd: Ucmd) -> int:
    """``IOMMU_HWPT_INVALIDATE``: only nested page tables and vIOMMUs take user invalidations.

    With no nesting in the simulated IOMMU neither can exist, so a valid
    request names a paging HWPT or another object: EINVAL (ENOENT for an
    unknown id).  ``entry_num`` is always written back as the number handled (0).
    """
    cmd = ucmd.cmd
    try:
        if getattr(cmd, "__reserved"):
            raise KernelError(EOPNOTSUPP, "__reserved is not zero")
        if cmd.entry_num and (not cmd.data_uptr or not cmd.entry_len):
            raise KernelError(EINVAL, "entry_num without data_uptr or entry_len")
        obj = ucmd.ictx.get_object(int(cmd.hwpt_id), IommufdObject)
        raise KernelError(EINVAL, f"{obj.kind} {obj.id} takes no user cache invalidation: only nested page "
                                  "tables and vIOMMUs do")
    finally:
        cmd.entry_num = 0
        try:
            ucmd.respond()
        except KernelError:
            raise KernelError(EFAULT, "cannot write entry_num back") from None


# -- IOMMU_GET_HW_INFO -------------------------------------------------------------------------------
def iommufd_get_hw_info(ucmd: Ucmd) -> int:
    """``IOMMU_GET_HW_INFO``: what the IOMMU behind ``dev_id`` offers.

    The simulated driver is intel-iommu: it accepts ``in_data_type`` DEFAULT
    or INTEL_VTD (any other type is EOPNOTSUPP, as the VM lane shows) and
    reports ``struct iommu_hw_info_vtd`` with the registers QEMU exposes.
    ``data_len`` comes back as the full 24 bytes whatever the caller offered
    (so a probe with ``data_len = 0`` learns the size); the kernel copies at
    most the caller's ``data_len`` and zeroes the rest of the caller's buffer.
    ``out_capabilities``: DIRTY_TRACKING only for a device added with
    ``iommu_dirty_tracking=True``, PCI_ATS_NOT_SUPPORTED for a function
    without an ATS capability (the edu: 0x8 measured).
    """
    from .device import get_device

    cmd = ucmd.cmd
    if cmd.flags & ~ui.IOMMU_HW_INFO_FLAG_INPUT_TYPE:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags:#x}")
    if any(getattr(cmd, "__reserved")):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    if not cmd.flags & ui.IOMMU_HW_INFO_FLAG_INPUT_TYPE:
        cmd.in_data_type = ui.IOMMU_HW_INFO_TYPE_DEFAULT
    idev = get_device(ucmd.ictx, cmd.dev_id)
    # intel_iommu_hw_info
    if cmd.in_data_type not in (ui.IOMMU_HW_INFO_TYPE_DEFAULT, ui.IOMMU_HW_INFO_TYPE_INTEL_VTD):
        raise KernelError(EOPNOTSUPP, f"intel-iommu reports no hardware info of type {cmd.in_data_type}")
    vtd = ui.iommu_hw_info_vtd(flags=VTD_FLAGS, cap_reg=VTD_CAP_REG, ecap_reg=VTD_ECAP_REG)
    data = bytes(vtd)
    if cmd.data_len:
        copy_len = min(int(cmd.data_len), len(data))
        ucmd.task.mm.write(int(cmd.data_uptr), data[:copy_len] + bytes(int(cmd.data_len) - copy_len))
    cmd.data_len = len(data)
    cmd.out_data_type = ui.IOMMU_HW_INFO_TYPE_INTEL_VTD
    caps = 0
    if dev_dirty_tracking_capable(idev.vdev):
        caps |= ui.IOMMU_HW_CAP_DIRTY_TRACKING
    if not dev_ats_supported(idev.vdev):
        caps |= ui.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED
    cmd.out_capabilities = caps
    cmd.out_max_pasid_log2 = 0
    ucmd.respond()
    return 0


__all__ = [
    "HwptPaging", "find_hwpt_paging", "get_hwpt_paging", "iommufd_hwpt_paging_alloc", "iommufd_hwpt_alloc",
    "iommufd_hwpt_set_dirty_tracking", "iommufd_hwpt_get_dirty_bitmap", "iommufd_hwpt_invalidate",
    "iommufd_get_hw_info", "iommufd_check_iova_range", "dev_dirty_tracking_capable", "dev_nesting_capable",
    "dev_reserved_regions", "dev_iopf_capable", "dev_ats_supported", "IOMMU_APERTURE_BITS", "X86_MSI_WINDOW",
    "VTD_CAP_REG", "VTD_ECAP_REG", "VTD_FLAGS",
]
