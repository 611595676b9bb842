"""The type1 IOMMU backend of a legacy VFIO container (``drivers/vfio/vfio_iommu_type1.c``).

A container that has had ``VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)`` (or v1) owns
one :class:`VfioIommu`: the list of user DMA mappings (``struct vfio_dma``),
the usable IOVA ranges, the dirty-page logs and the groups attached to it.
It is also the *domain* the devices of those groups DMA through: a device's
``dma_read``/``dma_write`` is translated here, IOVA -> (process, vaddr), and
served from the memory of the process that made (or last re-registered) the
mapping.

What the simulated IOMMU hardware looks like is fixed to what pyvfio's VM lane
measures on QEMU q35 with ``-device intel-iommu``: page sizes 4K|2M|1G
(``iova_pgsizes`` 0x40201000), a 39-bit aperture (QEMU 7.2's default
``aw-bits``: the last usable IOVA is 0x7fffffffff), and the x86 MSI window
0xfee00000-0xfeefffff reserved, which splits the IOVA space in two ranges.

Deliberate differences from the kernel, each because the model has no page
tables or struct pages:

* "Pinning" checks that every page of the range is mapped in the caller
  (``ProcessMemory.check``) and accounts it against ``RLIMIT_MEMLOCK``; DMA
  then goes through the recorded (process, vaddr), not through pinned
  physical pages.  While a vaddr is invalidated the old address is still
  used, which works as long as the old process keeps the memory mapped.
* Dirty tracking reports every mapped page dirty on every GET_BITMAP, as
  the kernel does for a container with a vfio-pci device (it cannot see
  device writes; the VM lane measures all pages dirty, again and again).
  Set :data:`precise_dirty_tracking` to True to get only the pages
  simulated DMA wrote, for tests of the bitmap plumbing.
"""

from __future__ import annotations

import ctypes
import enum
import resource
import weakref
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from ..uapi import vfio as uv
from .errno import EACCES, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENOSPC, ENOTTY, EPERM, KernelError
from .file import Task, UserArg
from .iova import IntervalMap
from .memory import ProcessMemory

if TYPE_CHECKING:
    from .group import VfioGroup
    from .vfio_main import Vfio

# -- module parameters (/sys/module/vfio_iommu_type1/parameters/) ----------------------------------
#: Maximum number of user DMA mappings per container; read when a container opens the driver.
dma_entry_limit: int = 65535

#: Model parameter, not the kernel's: False (the default, what 7.3.4 does in the VM lane) reports every
#: mapped page of a physical-device container dirty; True reports only the pages simulated DMA wrote.
precise_dirty_tracking: bool = False

# -- the simulated IOMMU hardware ------------------------------------------------------------------
PAGE_SIZE = 4096
U64_MAX = (1 << 64) - 1
PAGE_MASK = U64_MAX & ~(PAGE_SIZE - 1)  # the kernel's pgsize_bitmap before any domain exists
INTEL_IOMMU_PGSIZE_BITMAP = 0x40201000  # 4 KiB | 2 MiB | 1 GiB
INTEL_IOMMU_APERTURE = (0, (1 << 39) - 1)  # QEMU 7.2 intel-iommu aw-bits 39, measured in the VM lane
#: Whether the IOMMU can force snooping (VFIO_DMA_CC_IOMMU).  QEMU's intel-iommu does not
#: advertise snoop control unless asked, so its domains cannot enforce cache coherency.
INTEL_IOMMU_SNOOP_CONTROL = False
IOTLB_ENTRIES = 1 << 16  # pages the simulated IOTLB remembers before it stops filling (flushed on unmap)
X86_MSI_WINDOW = (0xFEE00000, 0xFEEFFFFF)  # IOMMU_RESV_MSI, what intel-iommu reports for every device
TASK_SIZE_MAX = 0x00007FFFFFFFF000  # highest user address on x86_64 (4-level paging): access_ok()

IOMMU_READ = 1 << 0
IOMMU_WRITE = 1 << 1

DIRTY_BITMAP_PAGES_MAX = (1 << 31) - 1  # INT_MAX: bitmap_set() takes an int count


def DIRTY_BITMAP_BYTES(nbits: int) -> int:
    """Bytes of a bitmap of ``nbits`` bits, rounded up to whole u64 words (the kernel's macro)."""
    return (nbits + 63) // 64 * 8


DIRTY_BITMAP_SIZE_MAX = DIRTY_BITMAP_BYTES(DIRTY_BITMAP_PAGES_MAX)


class VfioGroupType(enum.IntEnum):
    """``enum vfio_group_type``: how a group's devices reach memory."""

    VFIO_IOMMU = 0  # a real IOMMU group, translated by an IOMMU domain
    VFIO_EMULATED_IOMMU = 1  # mdev-like: the driver reads/writes user memory via vfio_dma_rw
    VFIO_NO_IOMMU = 2  # unsafe no-IOMMU mode: no translation at all


def _ffs(value: int) -> int:
    """Index of the lowest set bit (the kernel's ``__ffs``); ``value`` must be non-zero."""
    return (value & -value).bit_length() - 1


def _wraps(start: int, length: int) -> bool:
    """``start + length - 1 < start`` in u64 arithmetic: the range runs past 2^64."""
    return start + length - 1 > U64_MAX


_S = TypeVar("_S", bound=ctypes.Structure)


def _offsetofend(cls: type[ctypes.Structure], field: str) -> int:
    """``offsetofend(struct, field)``: the minimum ``argsz`` of an ioctl whose last mandatory field is ``field``."""
    desc = getattr(cls, field)
    return int(desc.offset + desc.size)


def _copy_from_user(arg: UserArg, cls: type[_S], offset: int = 0, size: Optional[int] = None) -> _S:
    """The first ``size`` bytes of ``cls`` read from the argument (rest zero), EFAULT if the caller passed less."""
    size = ctypes.sizeof(cls) if size is None else size
    raw = arg.bytes(offset, size) + bytes(ctypes.sizeof(cls) - size)
    return cls.from_buffer_copy(raw)


# -- locked memory accounting (mm->locked_vm) --------------------------------------------------------
# One counter per process per simulated machine: type1 charges pinned pages to the mm of the
# process that mapped them, whichever container they belong to.
_locked_vm: "weakref.WeakKeyDictionary[Vfio, dict[int, int]]" = weakref.WeakKeyDictionary()


def _memlock_limit_pages(pid: int) -> int:
    """RLIMIT_MEMLOCK of ``pid`` in pages (unlimited -> a number no mapping reaches)."""
    try:
        soft, _hard = resource.prlimit(pid, resource.RLIMIT_MEMLOCK)
    except (OSError, ValueError):
        return U64_MAX
    return U64_MAX if soft == resource.RLIM_INFINITY else soft // PAGE_SIZE


def mm_lock_acct(core: "Vfio", mm: ProcessMemory, lock_cap: bool, npage: int) -> None:
    """``__account_locked_vm``: charge (npage > 0) or release pages; ENOMEM over RLIMIT_MEMLOCK without CAP_IPC_LOCK."""
    table = _locked_vm.setdefault(core, {})
    locked = table.get(mm.pid, 0)
    if npage > 0 and not lock_cap:
        limit = _memlock_limit_pages(mm.pid)
        if locked + npage > limit:
            raise KernelError(ENOMEM, f"pinning {npage} pages exceeds RLIMIT_MEMLOCK of pid {mm.pid} "
                                      f"({locked} of {limit} pages already locked)")
    table[mm.pid] = max(0, locked + npage)


def locked_vm(core: "Vfio", pid: int) -> int:
    """Pages type1 has charged to ``pid`` on machine ``core`` (for leak checks)."""
    return _locked_vm.get(core, {}).get(pid, 0)


# -- the capability chain of an INFO ioctl (vfio_info_cap_add / vfio_info_cap_shift in vfio_main.c) --
class InfoCaps:
    """A capability chain being built in a kernel-side buffer, as ``struct vfio_info_cap``.

    Each capability is padded to 8 bytes so the next one is aligned; ``next``
    offsets are relative to the chain's start until :meth:`shift` rebases them
    on the start of the user's info struct.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self._last: Optional[int] = None

    @property
    def size(self) -> int:
        return len(self.buf)

    def add(self, cap: ctypes.Structure, size: Optional[int] = None) -> None:
        """Append ``cap`` (whose first field is a ``vfio_info_cap_header``) and link it to the chain."""
        raw = ctypes.string_at(ctypes.addressof(cap), ctypes.sizeof(cap) if size is None else size)
        offset = len(self.buf)
        self.buf += raw + bytes(-len(raw) % 8)
        uv.vfio_info_cap_header.from_buffer(self.buf, offset).next = 0
        if self._last is not None:
            uv.vfio_info_cap_header.from_buffer(self.buf, self._last).next = offset
        self._last = offset

    def shift(self, offset: int) -> None:
        """Rebase every ``next`` on ``offset`` (the caps will sit right after the fixed struct)."""
        pos = 0
        while self.buf:
            hdr = uv.vfio_info_cap_header.from_buffer(self.buf, pos)
            if hdr.next == 0:
                break
            pos = hdr.next
            hdr.next += offset


# -- struct vfio_dma ----------------------------------------------------------------------------------
class VfioDma:
    """One user DMA mapping: ``size`` bytes at ``iova`` backed by ``vaddr`` in process ``mm``.

    ``mm`` is the process that made the mapping or last re-registered it with
    ``VFIO_DMA_MAP_FLAG_VADDR``; it is where device DMA reads and writes go.
    ``bitmap`` holds the dirty log (bit n = page n) while tracking is on.
    """

    __slots__ = ("iova", "size", "vaddr", "prot", "mm", "lock_cap", "locked_vm", "vaddr_invalid",
                 "bitmap", "iommu_mapped")

    def __init__(self, iova: int, size: int, vaddr: int, prot: int, mm: ProcessMemory, lock_cap: bool) -> None:
        self.iova = iova
        self.size = size
        self.vaddr = vaddr
        self.prot = prot
        self.mm = mm
        self.lock_cap = lock_cap
        self.locked_vm = 0  # pages charged to mm
        self.vaddr_invalid = False
        self.bitmap: Optional[int] = None
        self.iommu_mapped = False

    @property
    def pid(self) -> int:
        return self.mm.pid

    @property
    def last(self) -> int:
        return self.iova + self.size - 1

    def __repr__(self) -> str:
        prot = ("r" if self.prot & IOMMU_READ else "-") + ("w" if self.prot & IOMMU_WRITE else "-")
        state = " vaddr-invalid" if self.vaddr_invalid else ""
        return (f"<vfio_dma iova {self.iova:#x}+{self.size:#x} -> pid {self.pid} vaddr {self.vaddr:#x} "
                f"{prot}{state}>")

    def mark_dirty(self, offset: int, length: int, pgshift: int) -> None:
        if self.bitmap is not None and length > 0:
            first, last = offset >> pgshift, (offset + length - 1) >> pgshift
            self.bitmap |= ((1 << (last - first + 1)) - 1) << first


_live_iommus: "weakref.WeakSet[VfioIommu]" = weakref.WeakSet()


def live_iommus() -> list["VfioIommu"]:
    """Every type1 instance not yet garbage-collected (leak checks: released ones hold no mappings)."""
    return list(_live_iommus)


class VfioIommu:
    """``struct vfio_iommu``: one container's type1 state, and the IOMMU domain its devices DMA through.

    The kernel keeps one ``vfio_domain`` per set of compatible IOMMU groups; the
    model has one IOMMU (intel-iommu), so all physical groups share this object
    as their domain.
    """

    def __init__(self, core: "Vfio", v2: bool) -> None:
        self.core = core
        self.v2 = v2
        self.dma_list: IntervalMap[VfioDma] = IntervalMap()
        # The IOTLB: IOVA page -> mapping, filled by translations, flushed whenever a mapping goes away
        # (as iommu_iotlb_sync follows an unmap).  A hit costs one dict lookup instead of an O(log n) walk.
        self.iotlb: dict[int, VfioDma] = {}
        self.dma_entry_limit = dma_entry_limit
        self.dma_avail = self.dma_entry_limit
        self.vaddr_invalid_count = 0
        self.iova_list: list[tuple[int, int]] = []
        self.pgsize_bitmap = PAGE_MASK
        self.groups: list["VfioGroup"] = []  # groups behind the IOMMU domain
        self.emulated_groups: list["VfioGroup"] = []
        self.num_non_pinned_groups = 0
        self.dirty_page_tracking = False
        self.released = False
        _live_iommus.add(self)

    def __repr__(self) -> str:
        return (f"<vfio_iommu {'v2' if self.v2 else 'v1'}: {len(self.dma_list)} mappings, "
                f"{len(self.groups) + len(self.emulated_groups)} groups>")

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def pgsize(self) -> int:
        """The smallest IOMMU page: the alignment of every map, unmap and bitmap."""
        return 1 << _ffs(self.pgsize_bitmap)

    @property
    def has_domain(self) -> bool:
        """IS_IOMMU_CAP_DOMAIN_IN_CONTAINER: a physical group is attached, so mappings are pinned."""
        return bool(self.groups)

    def mappings(self) -> list[VfioDma]:
        return [dma for _s, _l, dma in self.dma_list]

    def vfio_find_dma(self, start: int, size: int) -> Optional[VfioDma]:
        """Any mapping overlapping ``[start, start + size)``; size 0 finds one strictly containing ``start``."""
        if size == 0:
            hit = self.dma_list.find(start)
            return hit[2] if hit is not None and hit[0] < start else None
        hit = self.dma_list.first_overlap(start, start + size - 1)
        return hit[2] if hit is not None else None

    def _reserved_regions(self, group: "VfioGroup") -> list[tuple[int, int]]:
        """``iommu_get_group_resv_regions``: each device's reserved IOVA (the x86 MSI window unless the driver says)."""
        regions: list[tuple[int, int]] = []
        for vdev in group.devices:
            for start, last in getattr(vdev.ops, "reserved_iova", [X86_MSI_WINDOW]):
                if (start, last) not in regions:
                    regions.append((start, last))
        return sorted(regions)

    @staticmethod
    def _iova_exclude(ranges: list[tuple[int, int]], resv: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``vfio_iommu_resv_exclude``: cut each reserved region out of the usable ranges."""
        out = list(ranges)
        for rstart, rlast in resv:
            cut: list[tuple[int, int]] = []
            for start, last in out:
                if rstart > last or rlast < start:
                    cut.append((start, last))
                    continue
                if rstart > start:
                    cut.append((start, rstart - 1))
                if rlast < last:
                    cut.append((rlast + 1, last))
            out = cut
        return out

    def vfio_iommu_iova_dma_valid(self, start: int, last: int) -> bool:
        """A map must lie inside one usable range; an empty list (emulated groups only) allows anything."""
        if not self.iova_list:
            return True
        return any(s <= start and last <= e for s, e in self.iova_list)

    # -- group attach/detach (the driver's attach_group / detach_group ops) ----------------------------
    def attach_group(self, task: Optional[Task], group: "VfioGroup") -> None:
        """``vfio_iommu_type1_attach_group``: give the group's devices this domain.

        EBUSY while any vaddr is invalid (attaching might have to pin through
        it); EINVAL when the group is already here, when one of its reserved
        regions already holds a mapping, or when nothing usable remains.  The
        first physical group pins every mapping made while there was none.
        """
        if self.vaddr_invalid_count:
            raise KernelError(EBUSY, f"{self.vaddr_invalid_count} mappings have an invalidated vaddr: "
                                     "no group can be attached until VFIO_DMA_MAP_FLAG_VADDR restores them")
        if group in self.groups or group in self.emulated_groups:
            raise KernelError(EINVAL, f"group {group.id} is already attached to this IOMMU")
        if group.type == VfioGroupType.VFIO_EMULATED_IOMMU:
            self.emulated_groups.append(group)
            for vdev in group.devices:
                vdev.domain = EmulatedIommuAccess(self)
            return
        resv = self._reserved_regions(group)
        for rstart, rlast in resv:
            hit = self.dma_list.first_overlap(rstart, rlast)
            if hit is not None:
                raise KernelError(EINVAL, f"group {group.id} reserves {rstart:#x}-{rlast:#x}, which "
                                          f"overlaps the mapping at {hit[0]:#x}")
        new_list = list(self.iova_list) if self.iova_list else [INTEL_IOMMU_APERTURE]
        new_list = self._iova_exclude(new_list, resv)
        if not new_list:
            raise KernelError(EINVAL, f"group {group.id}: reserved regions leave no usable IOVA")
        if not self.groups:
            self._replay(task)
        self.groups.append(group)
        self.iova_list = new_list
        self.pgsize_bitmap = INTEL_IOMMU_PGSIZE_BITMAP
        self.num_non_pinned_groups += 1
        for vdev in group.devices:
            vdev.domain = self

    def _replay(self, task: Optional[Task]) -> None:
        """``vfio_iommu_replay``: pin and map, for the first real domain, what was mapped without one."""
        done: list[VfioDma] = []
        try:
            for dma in self.mappings():
                if dma.iommu_mapped:
                    continue
                self._pin(dma, dma.mm, dma.vaddr, dma.size)
                done.append(dma)
        except KernelError:
            for dma in done:
                self._unpin(dma)
            raise
        for dma in self.mappings():
            dma.iommu_mapped = True

    def detach_group(self, group: "VfioGroup") -> None:
        """``vfio_iommu_type1_detach_group``: the group's devices lose this domain.

        When the last group with an IOMMU domain goes, every mapping goes with
        it (or, if emulated groups remain, just the pinning).  Removing a group
        that could dirty memory unseen marks everything dirty while tracking.
        """
        update_dirty_scope = False
        if group in self.emulated_groups:
            self.emulated_groups.remove(group)
            if not self.emulated_groups and not self.groups:
                self.vfio_iommu_unmap_unpin_all()
        elif group in self.groups:
            self.groups.remove(group)
            update_dirty_scope = True
            if not self.groups:
                if not self.emulated_groups:
                    self.vfio_iommu_unmap_unpin_all()
                else:
                    for dma in self.mappings():
                        self._unpin(dma)
                self.pgsize_bitmap = PAGE_MASK
                self.iova_list = [(0, U64_MAX)] if self.iova_list else []
            else:
                resv: list[tuple[int, int]] = []
                for g in self.groups:
                    resv += [r for r in self._reserved_regions(g) if r not in resv]
                self.iova_list = self._iova_exclude([INTEL_IOMMU_APERTURE], sorted(resv))
        for vdev in group.devices:
            vdev.domain = None
        if update_dirty_scope:
            self.num_non_pinned_groups -= 1
            if self.dirty_page_tracking:
                for dma in self.mappings():
                    dma.bitmap = (1 << (dma.size // self.pgsize)) - 1

    def release(self) -> None:
        """``vfio_iommu_type1_release``: the container's last group left; drop everything."""
        self.vfio_iommu_unmap_unpin_all()
        for group in self.groups + self.emulated_groups:
            for vdev in group.devices:
                vdev.domain = None
        self.groups.clear()
        self.emulated_groups.clear()
        self.iova_list = []
        self.released = True

    # -- pinning ----------------------------------------------------------------------------------------
    def _pin(self, dma: VfioDma, mm: ProcessMemory, vaddr: int, size: int) -> None:
        """``vfio_pin_map_dma`` in one step: every page must be mapped (EFAULT) and fit the memlock limit (ENOMEM)."""
        mm.check(vaddr, size, PAGE_SIZE)
        npage = size // PAGE_SIZE
        mm_lock_acct(self.core, dma.mm, dma.lock_cap, npage)
        dma.locked_vm += npage
        dma.iommu_mapped = True

    def _unpin(self, dma: VfioDma) -> None:
        if dma.locked_vm:
            mm_lock_acct(self.core, dma.mm, dma.lock_cap, -dma.locked_vm)
            dma.locked_vm = 0
        dma.iommu_mapped = False

    def vfio_remove_dma(self, dma: VfioDma) -> None:
        """Unpin, unlink and forget one mapping; an invalid vaddr stops counting."""
        self._unpin(dma)
        self.dma_list.remove(dma.iova)
        self.iotlb.clear()
        dma.bitmap = None
        if dma.vaddr_invalid:
            self.vaddr_invalid_count -= 1
        self.dma_avail += 1

    def vfio_iommu_unmap_unpin_all(self) -> None:
        for dma in self.mappings():
            self.vfio_remove_dma(dma)

    def vfio_change_dma_owner(self, task: Task, dma: VfioDma) -> None:
        """Move the mapping's locked-page charge to the caller's process, which now backs it (CPR)."""
        if task.mm == dma.mm:
            return
        lock_cap = task.capable("CAP_IPC_LOCK")
        mm_lock_acct(self.core, task.mm, lock_cap, dma.locked_vm)
        mm_lock_acct(self.core, dma.mm, dma.lock_cap, -dma.locked_vm)
        dma.mm = task.mm
        dma.lock_cap = lock_cap

    # -- VFIO_IOMMU_MAP_DMA -------------------------------------------------------------------------------
    def vfio_iommu_type1_map_dma(self, task: Task, arg: UserArg) -> int:
        """Argument checks: ``argsz`` must cover the struct (32) and only READ|WRITE|VADDR are known."""
        minsz = ctypes.sizeof(uv.vfio_iommu_type1_dma_map)
        dma_map = _copy_from_user(arg, uv.vfio_iommu_type1_dma_map)
        mask = uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE | uv.VFIO_DMA_MAP_FLAG_VADDR
        if dma_map.argsz < minsz:
            raise KernelError(EINVAL, f"argsz {dma_map.argsz} < {minsz}")
        if dma_map.flags & ~mask:
            raise KernelError(EINVAL, f"unknown flags {dma_map.flags & ~mask:#x}")
        self.vfio_dma_do_map(task, dma_map)
        return 0

    def vfio_dma_do_map(self, task: Task, dma_map: uv.vfio_iommu_type1_dma_map) -> None:
        """Create a mapping, or with FLAG_VADDR give an invalidated one its new process address."""
        set_vaddr = bool(dma_map.flags & uv.VFIO_DMA_MAP_FLAG_VADDR)
        iova, vaddr, size = dma_map.iova, dma_map.vaddr, dma_map.size
        prot = 0
        if dma_map.flags & uv.VFIO_DMA_MAP_FLAG_WRITE:
            prot |= IOMMU_WRITE
        if dma_map.flags & uv.VFIO_DMA_MAP_FLAG_READ:
            prot |= IOMMU_READ
        if prot and set_vaddr:
            raise KernelError(EINVAL, "FLAG_VADDR re-registers an address and takes neither READ nor WRITE")
        if not prot and not set_vaddr:
            raise KernelError(EINVAL, "a mapping needs FLAG_READ and/or FLAG_WRITE")
        pgsize = self.pgsize
        if not size:
            raise KernelError(EINVAL, "size 0")
        if (size | iova | vaddr) & (pgsize - 1):
            raise KernelError(EINVAL, f"iova {iova:#x}, vaddr {vaddr:#x} and size {size:#x} must be "
                                      f"{pgsize:#x}-aligned")
        if _wraps(iova, size):
            raise KernelError(EINVAL, f"iova {iova:#x} + size {size:#x} wraps past 2^64")
        if _wraps(vaddr, size):
            raise KernelError(EINVAL, f"vaddr {vaddr:#x} + size {size:#x} wraps past 2^64")
        dma = self.vfio_find_dma(iova, size)
        if set_vaddr:
            if dma is None:
                raise KernelError(ENOENT, f"no mapping at iova {iova:#x}+{size:#x} to update")
            if not dma.vaddr_invalid:
                raise KernelError(EINVAL, f"the mapping at {dma.iova:#x} has a valid vaddr: invalidate it "
                                          "with VFIO_DMA_UNMAP_FLAG_VADDR first")
            if dma.iova != iova or dma.size != size:
                raise KernelError(EINVAL, f"FLAG_VADDR must name the mapping exactly: it is "
                                          f"{dma.iova:#x}+{dma.size:#x}, not {iova:#x}+{size:#x}")
            self.vfio_change_dma_owner(task, dma)
            dma.vaddr = vaddr
            dma.vaddr_invalid = False
            self.vaddr_invalid_count -= 1
            return
        if dma is not None:
            raise KernelError(EEXIST, f"iova {iova:#x}+{size:#x} overlaps the mapping at "
                                      f"{dma.iova:#x}+{dma.size:#x}")
        if not self.dma_avail:
            raise KernelError(ENOSPC, f"the container already holds dma_entry_limit={self.dma_entry_limit} "
                                      "mappings")
        if not self.vfio_iommu_iova_dma_valid(iova, iova + size - 1):
            ranges = ", ".join(f"{s:#x}-{e:#x}" for s, e in self.iova_list)
            raise KernelError(EINVAL, f"iova {iova:#x}-{iova + size - 1:#x} is not inside one usable "
                                      f"IOVA range ({ranges})")
        dma = VfioDma(iova, size, vaddr, prot, task.mm, task.capable("CAP_IPC_LOCK"))
        self.dma_avail -= 1
        self.dma_list.insert(iova, iova + size - 1, dma)
        try:
            if self.has_domain:
                self._pin(dma, task.mm, vaddr, size)
            if self.dirty_page_tracking:
                if size // pgsize > DIRTY_BITMAP_PAGES_MAX:
                    raise KernelError(EINVAL, f"{size // pgsize} pages are too many for a dirty bitmap")
                dma.bitmap = 0
        except KernelError:
            self.vfio_remove_dma(dma)
            raise

    # -- VFIO_IOMMU_UNMAP_DMA -----------------------------------------------------------------------------
    def vfio_iommu_type1_unmap_dma(self, task: Task, arg: UserArg) -> int:
        """Argument checks, then :meth:`vfio_dma_do_unmap`; ``size`` is written back only on success."""
        minsz = ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap)
        unmap = _copy_from_user(arg, uv.vfio_iommu_type1_dma_unmap)
        mask = uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | uv.VFIO_DMA_UNMAP_FLAG_VADDR | uv.VFIO_DMA_UNMAP_FLAG_ALL
        if unmap.argsz < minsz:
            raise KernelError(EINVAL, f"argsz {unmap.argsz} < {minsz}")
        if unmap.flags & ~mask:
            raise KernelError(EINVAL, f"unknown flags {unmap.flags & ~mask:#x}")
        get_bitmap = bool(unmap.flags & uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
        if get_bitmap and unmap.flags & (uv.VFIO_DMA_UNMAP_FLAG_ALL | uv.VFIO_DMA_UNMAP_FLAG_VADDR):
            raise KernelError(EINVAL, "GET_DIRTY_BITMAP cannot be combined with ALL or VADDR")
        bitmap: Optional[uv.vfio_bitmap] = None
        if get_bitmap:
            bsz = ctypes.sizeof(uv.vfio_bitmap)
            if unmap.argsz < minsz + bsz:
                raise KernelError(EINVAL, f"argsz {unmap.argsz} leaves no room for the vfio_bitmap "
                                          f"(needs {minsz + bsz})")
            bitmap = _copy_from_user(arg, uv.vfio_bitmap, offset=minsz)
            _check_user_bitmap(bitmap, unmap.size)
        unmap.size = self.vfio_dma_do_unmap(task, unmap, bitmap)
        arg.write(16, unmap.size.to_bytes(8, "little"))  # copy_to_user of the struct head: only size changed
        return 0

    def vfio_dma_do_unmap(self, task: Task, unmap: uv.vfio_iommu_type1_dma_unmap,
                          bitmap: Optional[uv.vfio_bitmap]) -> int:
        """Unmap (or, with FLAG_VADDR, invalidate the vaddr of) whole mappings in a range; returns bytes done.

        v2 refuses a range that cuts a mapping in two (EINVAL) and succeeds
        with 0 when nothing is mapped there.  v1 keeps the old "best effort"
        contract: a range starting inside a mapping unmaps nothing, and one
        covering a mapping's first page removes the whole mapping.
        """
        unmap_all = bool(unmap.flags & uv.VFIO_DMA_UNMAP_FLAG_ALL)
        invalidate_vaddr = bool(unmap.flags & uv.VFIO_DMA_UNMAP_FLAG_VADDR)
        iova, size = unmap.iova, unmap.size
        if invalidate_vaddr and self.emulated_groups:
            raise KernelError(EBUSY, "vaddr invalidation is not allowed while an emulated-IOMMU (mdev) "
                                     "group is attached")
        pgsize = self.pgsize
        if iova & (pgsize - 1):
            raise KernelError(EINVAL, f"iova {iova:#x} is not {pgsize:#x}-aligned")
        if unmap_all:
            if iova or size:
                raise KernelError(EINVAL, "FLAG_ALL needs iova == 0 and size == 0")
            size = U64_MAX
        elif not size:
            raise KernelError(EINVAL, "size 0")
        elif size & (pgsize - 1):
            raise KernelError(EINVAL, f"size {size:#x} is not {pgsize:#x}-aligned")
        elif _wraps(iova, size):
            raise KernelError(EINVAL, f"iova {iova:#x} + size {size:#x} wraps past 2^64")
        if bitmap is not None:
            if not self.dirty_page_tracking:
                raise KernelError(EINVAL, "GET_DIRTY_BITMAP while dirty page tracking is off")
            if bitmap.pgsize != pgsize:
                raise KernelError(EINVAL, f"bitmap pgsize {bitmap.pgsize:#x} is not the IOMMU page size "
                                          f"{pgsize:#x}")
        last = iova + size - 1
        if self.v2 and not unmap_all:
            dma = self.vfio_find_dma(iova, 1)
            if dma is not None and dma.iova != iova:
                raise KernelError(EINVAL, f"iova {iova:#x} is inside the mapping {dma.iova:#x}+{dma.size:#x}: "
                                          "type1v2 only unmaps whole mappings")
            dma = self.vfio_find_dma(last, 0)
            if dma is not None and dma.iova + dma.size != iova + size:
                raise KernelError(EINVAL, f"the range ends inside the mapping {dma.iova:#x}+{dma.size:#x}: "
                                          "type1v2 only unmaps whole mappings")
        unmapped = 0
        invalidated: list[VfioDma] = []
        for _start, _last, dma in self.dma_list.overlapping(iova, last):
            if not self.v2 and iova > dma.iova:
                break
            if invalidate_vaddr:
                if dma.vaddr_invalid:
                    for done in invalidated:
                        done.vaddr_invalid = False
                        self.vaddr_invalid_count -= 1
                    raise KernelError(EINVAL, f"the vaddr of the mapping at {dma.iova:#x} is already "
                                              "invalid; nothing was invalidated")
                dma.vaddr_invalid = True
                self.vaddr_invalid_count += 1
                invalidated.append(dma)
                unmapped += dma.size
                continue
            if bitmap is not None:
                self.update_user_bitmap(task, _bitmap_data(bitmap), dma, iova, pgsize)
            unmapped += dma.size
            self.vfio_remove_dma(dma)
        return unmapped

    # -- dirty bitmaps --------------------------------------------------------------------------------------
    def update_user_bitmap(self, task: Task, data: int, dma: VfioDma, base_iova: int, pgsize: int) -> None:
        """Copy one mapping's dirty bits into the user bitmap at their place relative to ``base_iova``.

        Like the kernel, whole u64 words are written, and bits of a previous
        mapping sharing the first word are preserved (read back and OR-ed in).
        """
        pgshift = _ffs(pgsize)
        nbits = dma.size >> pgshift
        bit_offset = (dma.iova - base_iova) >> pgshift
        copy_offset, shift = divmod(bit_offset, 64)
        bits = dma.bitmap or 0
        if not precise_dirty_tracking and self.num_non_pinned_groups and dma.iommu_mapped:
            bits = (1 << nbits) - 1
        value = bits << shift
        addr = data + copy_offset * 8
        if shift:
            leftover = int.from_bytes(task.mm.read(addr, 8), "little")
            value |= leftover & ((1 << shift) - 1)
        task.mm.write(addr, value.to_bytes(DIRTY_BITMAP_BYTES(nbits + shift), "little"))

    def vfio_iova_dirty_bitmap(self, task: Task, data: int, iova: int, size: int, pgsize: int) -> None:
        """Report and clear the dirty bits of every mapping in a range that must not cut a mapping."""
        dma = self.vfio_find_dma(iova, 1)
        if dma is not None and dma.iova != iova:
            raise KernelError(EINVAL, f"iova {iova:#x} is inside the mapping {dma.iova:#x}+{dma.size:#x}")
        dma = self.vfio_find_dma(iova + size - 1, 0)
        if dma is not None and dma.iova + dma.size != iova + size:
            raise KernelError(EINVAL, f"the range ends inside the mapping {dma.iova:#x}+{dma.size:#x}")
        for _start, _last, dma in self.dma_list.overlapping(iova, iova + size - 1):
            if dma.iova < iova:
                continue
            self.update_user_bitmap(task, data, dma, iova, pgsize)
            dma.bitmap = 0

    def vfio_iommu_type1_dirty_pages(self, task: Task, arg: UserArg) -> int:
        """VFIO_IOMMU_DIRTY_PAGES: START / STOP / GET_BITMAP, exactly one; v2 only (else EACCES)."""
        if not self.v2:
            raise KernelError(EACCES, "dirty page tracking needs VFIO_TYPE1v2_IOMMU")
        minsz = ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap)
        dirty = _copy_from_user(arg, uv.vfio_iommu_type1_dirty_bitmap)
        mask = (uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
                | uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)
        if dirty.argsz < minsz:
            raise KernelError(EINVAL, f"argsz {dirty.argsz} < {minsz}")
        if dirty.flags & ~mask:
            raise KernelError(EINVAL, f"unknown flags {dirty.flags & ~mask:#x}")
        if dirty.flags == 0 or dirty.flags & (dirty.flags - 1):
            raise KernelError(EINVAL, f"exactly one of START, STOP, GET_BITMAP must be set (flags {dirty.flags:#x})")
        pgsize = self.pgsize
        if dirty.flags & uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_START:
            if not self.dirty_page_tracking:
                for dma in self.mappings():
                    if dma.size // pgsize > DIRTY_BITMAP_PAGES_MAX:
                        for d in self.mappings():
                            d.bitmap = None
                        raise KernelError(EINVAL, f"the mapping at {dma.iova:#x} has too many pages for a "
                                                  "dirty bitmap")
                    dma.bitmap = 0
                self.dirty_page_tracking = True
            return 0
        if dirty.flags & uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP:
            if self.dirty_page_tracking:
                self.dirty_page_tracking = False
                for dma in self.mappings():
                    dma.bitmap = None
            return 0
        rsz = ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap_get)
        if dirty.argsz - minsz < rsz:
            raise KernelError(EINVAL, f"argsz {dirty.argsz} leaves no room for vfio_iommu_type1_dirty_bitmap_get "
                                      f"(needs {minsz + rsz})")
        rng = _copy_from_user(arg, uv.vfio_iommu_type1_dirty_bitmap_get, offset=minsz)
        bm = rng.bitmap
        if (rng.iova + rng.size) & U64_MAX < rng.iova:
            raise KernelError(EINVAL, f"iova {rng.iova:#x} + size {rng.size:#x} overflows")
        _check_user_bitmap(bm, rng.size)
        if bm.pgsize != pgsize:
            raise KernelError(EINVAL, f"bitmap pgsize {bm.pgsize:#x} is not the IOMMU page size {pgsize:#x}")
        if rng.iova & (pgsize - 1):
            raise KernelError(EINVAL, f"iova {rng.iova:#x} is not {pgsize:#x}-aligned")
        if not rng.size or rng.size & (pgsize - 1):
            raise KernelError(EINVAL, f"size {rng.size:#x} is 0 or not {pgsize:#x}-aligned")
        if not self.dirty_page_tracking:
            raise KernelError(EINVAL, "dirty page tracking is not started")
        self.vfio_iova_dirty_bitmap(task, _bitmap_data(bm), rng.iova, rng.size, pgsize)
        return 0

    # -- VFIO_IOMMU_GET_INFO ------------------------------------------------------------------------------
    def vfio_iommu_type1_get_info(self, task: Task, arg: UserArg) -> int:
        """Page sizes plus a capability chain: MIGRATION, DMA_AVAIL, then IOVA_RANGE (omitted if empty).

        A short ``argsz`` gets the size needed back, ``flags`` with CAPS and
        ``cap_offset`` 0; only ``min(argsz, sizeof(info))`` bytes of the fixed
        part are written.
        """
        info_size = ctypes.sizeof(uv.vfio_iommu_type1_info)
        minsz = _offsetofend(uv.vfio_iommu_type1_info, "iova_pgsizes")
        info = _copy_from_user(arg, uv.vfio_iommu_type1_info, size=minsz)
        if info.argsz < minsz:
            raise KernelError(EINVAL, f"argsz {info.argsz} < {minsz}")
        copy_back = min(info.argsz, info_size)
        info.flags = uv.VFIO_IOMMU_INFO_PGSIZES
        info.iova_pgsizes = self.pgsize_bitmap
        caps = InfoCaps()
        mig = uv.vfio_iommu_type1_info_cap_migration()
        mig.header.id, mig.header.version = uv.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1
        mig.pgsize_bitmap = self.pgsize
        mig.max_dirty_bitmap_size = DIRTY_BITMAP_SIZE_MAX
        caps.add(mig)
        avail = uv.vfio_iommu_type1_info_dma_avail()
        avail.header.id, avail.header.version = uv.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1
        avail.avail = self.dma_avail
        caps.add(avail)
        if self.iova_list:
            n = len(self.iova_list)
            cap_size = ctypes.sizeof(uv.vfio_iommu_type1_info_cap_iova_range) + n * ctypes.sizeof(uv.vfio_iova_range)
            raw = bytearray(cap_size)
            cap = uv.vfio_iommu_type1_info_cap_iova_range.from_buffer(raw)
            cap.header.id, cap.header.version = uv.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1
            cap.nr_iovas = n
            for i, (start, end) in enumerate(self.iova_list):
                rng = uv.vfio_iova_range.from_buffer(raw, ctypes.sizeof(cap) + i * ctypes.sizeof(uv.vfio_iova_range))
                rng.start, rng.end = start, end
            caps.add(uv.vfio_iommu_type1_info_cap_iova_range.from_buffer(raw), size=cap_size)
        if caps.size:
            info.flags |= uv.VFIO_IOMMU_INFO_CAPS
            if info.argsz < info_size + caps.size:
                info.argsz = info_size + caps.size
            else:
                caps.shift(info_size)
                arg.write(info_size, bytes(caps.buf))
                info.cap_offset = info_size
        arg.write(0, ctypes.string_at(ctypes.addressof(info), copy_back))
        return 0

    # -- device DMA through the domain ----------------------------------------------------------------------
    def _translate(self, iova: int, length: int, need: int) -> list[tuple[VfioDma, int, int]]:
        """Split ``[iova, iova + length)`` into (mapping, offset, n) pieces; EFAULT unmapped, EPERM no permission."""
        dma = self.iotlb.get(iova >> 12)
        if dma is None:
            dma = self.dma_list.value_at(iova)
            if dma is not None and len(self.iotlb) < IOTLB_ENTRIES:
                self.iotlb[iova >> 12] = dma
        if dma is not None and dma.prot & need and iova + length <= dma.iova + dma.size:
            return [(dma, iova - dma.iova, length)]  # the usual case: one mapping holds the whole access
        pieces: list[tuple[VfioDma, int, int]] = []
        cur, end = iova, iova + length
        while cur < end:
            dma = self.dma_list.value_at(cur)
            if dma is None:
                raise KernelError(EFAULT, f"IOMMU fault: iova {cur:#x} is not mapped")
            if not dma.prot & need:
                what = "write to" if need == IOMMU_WRITE else "read from"
                raise KernelError(EPERM, f"IOMMU fault: DMA {what} iova {cur:#x}, mapped without "
                                         f"{'WRITE' if need == IOMMU_WRITE else 'READ'} permission")
            n = min(end, dma.iova + dma.size) - cur
            pieces.append((dma, cur - dma.iova, n))
            cur += n
        return pieces

    def dma_read(self, iova: int, length: int) -> bytes:
        """A device reads memory: translate, check READ permission, read the backing process's memory."""
        out = bytearray()
        for dma, offset, n in self._translate(iova, length, IOMMU_READ):
            out += dma.mm.read(dma.vaddr + offset, n)
        return bytes(out)

    def dma_write(self, iova: int, data: bytes) -> None:
        """A device writes memory: translate, check WRITE permission, write, and log dirty pages.

        The whole range is translated before anything is written, so a fault
        leaves memory untouched (a model simplification: hardware would have
        written the pages before the faulting one).
        """
        pgshift = _ffs(self.pgsize)
        pos = 0
        for dma, offset, n in self._translate(iova, len(data), IOMMU_WRITE):
            dma.mm.write(dma.vaddr + offset, data[pos:pos + n])
            dma.mark_dirty(offset, n, pgshift)
            pos += n

    def vfio_iommu_type1_dma_rw(self, iova: int, data: bytearray, write: bool) -> None:
        """``vfio_dma_rw``: what an emulated (mdev) device uses, the CPU copying through the user's vaddr.

        Unlike physical DMA it refuses to run while any vaddr is invalid
        (EBUSY), needs READ permission even to write, and an unmapped iova is
        EINVAL.
        """
        if self.vaddr_invalid_count:
            raise KernelError(EBUSY, "vfio_dma_rw is not allowed while a vaddr is invalidated")
        pgshift = _ffs(self.pgsize)
        cur, pos = iova, 0
        while pos < len(data):
            dma = self.vfio_find_dma(cur, 1)
            if dma is None:
                raise KernelError(EINVAL, f"vfio_dma_rw: iova {cur:#x} is not mapped")
            if (write and not dma.prot & IOMMU_WRITE) or not dma.prot & IOMMU_READ:
                raise KernelError(EPERM, f"vfio_dma_rw: the mapping at {dma.iova:#x} does not allow this access")
            offset = cur - dma.iova
            n = min(len(data) - pos, dma.size - offset)
            if write:
                dma.mm.write(dma.vaddr + offset, bytes(data[pos:pos + n]))
                dma.mark_dirty(offset, n, pgshift)
            else:
                data[pos:pos + n] = dma.mm.read(dma.vaddr + offset, n)
            cur, pos = cur + n, pos + n

    # -- model invariants -----------------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """What must hold after every call (the fuzzer asserts it): counts, alignment, ranges, dirty logs."""
        self.dma_list.check_invariants()
        dmas = self.mappings()
        assert self.dma_avail + len(dmas) == self.dma_entry_limit, (self.dma_avail, len(dmas))
        assert self.vaddr_invalid_count == sum(d.vaddr_invalid for d in dmas)
        live = {id(d) for d in dmas}
        assert all(id(d) in live and d.iova <= page << 12 < d.iova + d.size for page, d in self.iotlb.items()), \
            "an IOTLB entry outlived its mapping"
        pgsize = self.pgsize
        for d in dmas:
            assert d.size > 0 and not (d.iova | d.size) & (pgsize - 1), d
            assert d.prot & (IOMMU_READ | IOMMU_WRITE), d
            assert (d.bitmap is not None) == self.dirty_page_tracking, d
            if d.bitmap is not None:
                assert d.bitmap >> (d.size // pgsize) == 0, d
            assert d.iommu_mapped == self.has_domain, d
            assert d.locked_vm == (d.size // PAGE_SIZE if d.iommu_mapped else 0), d
            if self.iova_list:
                assert self.vfio_iommu_iova_dma_valid(d.iova, d.last), d
        for start, end in self.iova_list:
            assert start <= end
        assert self.num_non_pinned_groups == len(self.groups)
        for g in self.groups:
            for vdev in g.devices:
                assert vdev.domain is self, vdev
        if self.released:
            assert not dmas and not self.groups and not self.emulated_groups


def _bitmap_data(bitmap: uv.vfio_bitmap) -> int:
    """The user address in ``vfio_bitmap.data`` (a ``__u64 *``)."""
    return ctypes.cast(bitmap.data, ctypes.c_void_p).value or 0


def _check_user_bitmap(bitmap: uv.vfio_bitmap, size: int) -> None:
    """The bitmap checks shared by UNMAP and GET_BITMAP: ``access_ok`` and ``verify_bitmap_size``."""
    data = _bitmap_data(bitmap)
    if data + bitmap.size > TASK_SIZE_MAX:
        raise KernelError(EINVAL, f"bitmap {data:#x}+{bitmap.size:#x} is not a user address range")
    if not bitmap.pgsize:
        raise KernelError(EINVAL, "bitmap pgsize 0")
    npages = size >> _ffs(bitmap.pgsize)
    if not npages:
        raise KernelError(EINVAL, "the range covers no whole page of the bitmap's page size")
    if not bitmap.size:
        raise KernelError(EINVAL, "bitmap size 0")
    if bitmap.size > DIRTY_BITMAP_SIZE_MAX:
        raise KernelError(EINVAL, f"bitmap size {bitmap.size:#x} > DIRTY_BITMAP_SIZE_MAX {DIRTY_BITMAP_SIZE_MAX:#x}")
    if bitmap.size < DIRTY_BITMAP_BYTES(npages):
        raise KernelError(EINVAL, f"bitmap size {bitmap.size} < {DIRTY_BITMAP_BYTES(npages)} bytes needed "
                                  f"for {npages} pages")


class EmulatedIommuAccess:
    """The DMA path of a device in an emulated-IOMMU (mdev) group: ``vfio_dma_rw`` instead of an IOMMU."""

    def __init__(self, iommu: VfioIommu) -> None:
        self.iommu = iommu

    def dma_read(self, iova: int, length: int) -> bytes:
        buf = bytearray(length)
        self.iommu.vfio_iommu_type1_dma_rw(iova, buf, write=False)
        return bytes(buf)

    def dma_write(self, iova: int, data: bytes) -> None:
        self.iommu.vfio_iommu_type1_dma_rw(iova, bytearray(data), write=True)


# -- the driver, as VFIO core sees it (struct vfio_iommu_driver_ops) ------------------------------------------
class Type1Driver:
    """``vfio_iommu_driver_ops_type1``: what the container calls; ``data`` is the :class:`VfioIommu`."""

    name = "vfio-iommu-type1"

    def check_extension(self, iommu: Optional[VfioIommu], arg: int) -> int:
        """``vfio_iommu_type1_check_extension``: UPDATE_VADDR and DMA_CC need an open instance."""
        if arg in (uv.VFIO_TYPE1_IOMMU, uv.VFIO_TYPE1v2_IOMMU, uv.VFIO_UNMAP_ALL):
            return 1
        if arg == uv.VFIO_UPDATE_VADDR:
            return int(iommu is not None and not iommu.emulated_groups)
        if arg == uv.VFIO_DMA_CC_IOMMU:
            return int(iommu is not None and (not iommu.has_domain or INTEL_IOMMU_SNOOP_CONTROL))
        return 0

    def open(self, core: "Vfio", task: Task, arg: int) -> VfioIommu:
        if arg == uv.VFIO_TYPE1_IOMMU:
            return VfioIommu(core, v2=False)
        if arg == uv.VFIO_TYPE1v2_IOMMU:
            return VfioIommu(core, v2=True)
        raise KernelError(EINVAL, f"type1 cannot be opened as IOMMU type {arg}")

    def release(self, iommu: Any) -> None:
        assert isinstance(iommu, VfioIommu)
        iommu.release()

    def attach_group(self, iommu: Any, task: Optional[Task], group: "VfioGroup") -> None:
        assert isinstance(iommu, VfioIommu)
        iommu.attach_group(task, group)

    def detach_group(self, iommu: Any, group: "VfioGroup") -> None:
        assert isinstance(iommu, VfioIommu)
        iommu.detach_group(group)

    def ioctl(self, iommu: Any, task: Task, request: int, arg: UserArg) -> int:
        """``vfio_iommu_type1_ioctl``: every container ioctl VFIO core does not handle itself."""
        assert isinstance(iommu, VfioIommu)
        if request == uv.VFIO_IOMMU_GET_INFO:
            return iommu.vfio_iommu_type1_get_info(task, arg)
        if request == uv.VFIO_IOMMU_MAP_DMA:
            return iommu.vfio_iommu_type1_map_dma(task, arg)
        if request == uv.VFIO_IOMMU_UNMAP_DMA:
            return iommu.vfio_iommu_type1_unmap_dma(task, arg)
        if request == uv.VFIO_IOMMU_DIRTY_PAGES:
            return iommu.vfio_iommu_type1_dirty_pages(task, arg)
        raise KernelError(ENOTTY, f"type1 has no ioctl {request:#x}")


VFIO_IOMMU_DRIVER_TYPE1 = Type1Driver()

__all__ = ["VfioIommu", "VfioDma", "VfioGroupType", "Type1Driver", "VFIO_IOMMU_DRIVER_TYPE1", "EmulatedIommuAccess",
           "InfoCaps", "dma_entry_limit", "precise_dirty_tracking", "live_iommus", "locked_vm"]
