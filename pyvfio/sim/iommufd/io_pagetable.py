"""The IO page table behind an IOAS (``drivers/iommu/iommufd/io_pagetable.c``, ``pages.c``).

An :class:`IoPagetable` maps IOVA ranges (:class:`IoptArea`) to memory
(:class:`IoptPages`): a range of a process's virtual addresses
(``IOPT_ADDRESS_USER``, from ``IOMMU_IOAS_MAP``) or of a memfd
(``IOPT_ADDRESS_FILE``, from ``IOMMU_IOAS_MAP_FILE``).  Pages objects are
shared: ``IOMMU_IOAS_COPY`` makes a second area over the same pages, and
only the last area to go drops them.  Beside the areas the table keeps the
*reserved* ranges (IOVA a domain or device cannot use: beyond the IOMMU's
aperture, the MSI window) and the *allowed* ranges (``IOMMU_IOAS_ALLOW_IOVAS``,
which bound automatic IOVA choice), plus ``iova_alignment``, the granule every
mapping must honour -- 1 for a bare IOAS, the IOMMU page size (4 KiB) once a
hardware page table (a domain) is attached, or when huge pages are disabled.

Pinning follows the kernel: nothing is pinned until the IOAS has a domain.
Mapping a bogus address into a bare IOAS succeeds, and the fault surfaces
(``EFAULT``) when a domain is added -- on ``IOMMU_HWPT_ALLOC`` or device attach.

Model limits worth knowing: a pinned user-VA range is *re-read* through the
process's address space on each DMA rather than held by page, so unmapping the
memory from the process makes DMA fault instead of reaching the stale pages
(the kernel would keep them); file-backed pages are reached with
``pread``/``pwrite`` on a descriptor the model owns, which reach the same page
cache the caller's mappings see and cannot fault the simulator with SIGBUS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..errno import (
    EADDRINUSE, EEXIST, EFAULT, EINVAL, ENOENT, ENOSPC, EOVERFLOW, EPERM, KernelError,
)
from ..iova import IntervalMap
from ..memory import ProcessMemory

if TYPE_CHECKING:
    from .hw_pagetable import HwptPaging

PAGE_SIZE = 4096
HPAGE_SIZE = 2 << 20  # the THP size: automatic IOVA choice keeps alignment up to it
ULONG_MAX = (1 << 64) - 1
SIZE_MAX = ULONG_MAX

IOMMU_READ = 1 << 0
IOMMU_WRITE = 1 << 1

IOPT_ALLOC_IOVA = 1 << 0

# iopt_pages.type
IOPT_ADDRESS_USER = "user"
IOPT_ADDRESS_FILE = "file"

# ictx->account_mode / pages->account_mode (IOMMU_OPTION_RLIMIT_MODE)
IOPT_PAGES_ACCOUNT_USER = 0
IOPT_PAGES_ACCOUNT_MM = 1

_TMPFS_MAGIC = 0x01021994
_HUGETLBFS_MAGIC = 0x958458F6


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _lowest_bit(n: int) -> int:
    return n & -n


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


class _statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


_libc: Optional[Any] = None


def _fs_type(fd: int) -> int:
    """``fstatfs(fd).f_type``: memfd pinning needs shmem or hugetlbfs, as ``memfd_pin_folios`` does."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    buf = _statfs()
    if _libc.fstatfs(fd, ctypes.byref(buf)) != 0:
        return 0
    return int(buf.f_type) & 0xFFFFFFFF


def _user_range_writable(pid: int, addr: int, length: int) -> bool:
    """Whether every byte of ``[addr, addr+length)`` lies in a writable mapping of ``pid``.

    ``pin_user_pages(FOLL_WRITE)`` refuses read-only VMAs; the kernel then fails the pin with EFAULT.
    """
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return True  # cannot tell: let the access itself decide
    cursor, end = addr, addr + length
    for line in lines:
        rng, perms = line.split()[:2]
        lo_s, hi_s = rng.split("-")
        lo, hi = int(lo_s, 16), int(hi_s, 16)
        if hi <= cursor or lo > cursor:
            continue
        if "w" not in perms:
            return False
        cursor = hi
        if cursor >= end:
            return True
    return cursor >= end


class IoptPages:
    """``struct iopt_pages``: the memory behind one or more areas.

    ``refs`` counts the areas pointing here (the kernel's kref); at zero the
    model drops the memfd it holds.  ``source_pid``/``source_uid``/``mm`` are
    the owner the pinned memory is accounted to -- what
    ``IOMMU_IOAS_CHANGE_PROCESS`` moves to the caller.
    """

    def __init__(self, kind: str, length: int, writable: bool, *, mm: ProcessMemory, uid: int,
                 account_mode: int, uptr: int = 0, fd: int = -1, start: int = 0) -> None:
        self.type = kind
        self.length = length  # bytes from the page-aligned base
        self.writable = writable
        self.mm = mm
        self.source_pid = mm.pid
        self.source_uid = uid
        self.account_mode = account_mode
        self.uptr = uptr      # IOPT_ADDRESS_USER: page-aligned base address
        self.fd = fd          # IOPT_ADDRESS_FILE: the model's own dup of the caller's descriptor
        self.start = start    # IOPT_ADDRESS_FILE: page-aligned file offset of the base
        self.refs = 0

    def __repr__(self) -> str:
        where = f"va {self.uptr:#x}" if self.type == IOPT_ADDRESS_USER else f"fd {self.fd} @ {self.start:#x}"
        return f"<IoptPages {self.type} {where} +{self.length:#x} refs {self.refs}>"

    def get(self) -> None:
        self.refs += 1

    def put(self) -> None:
        """Drop one area's reference; the last one closes the file the model held (``iopt_release_pages``)."""
        self.refs -= 1
        if self.refs == 0 and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Release pages no area ever took (a failed map): the model's file descriptor is closed."""
        if self.refs == 0 and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- pinning and access -----------------------------------------------------------------------
    def pin(self, start_byte: int, length: int, write: bool) -> None:
        """Fault in ``[start_byte, +length)`` as ``pin_user_pages``/``memfd_pin_folios`` would: EFAULT/EINVAL."""
        if self.type == IOPT_ADDRESS_USER:
            addr = self.uptr + start_byte
            self.mm.check(addr, length)
            if write and not _user_range_writable(self.mm.pid, addr, length):
                raise KernelError(EFAULT, f"user range {addr:#x}+{length:#x} is not writable memory")
            return
        if _fs_type(self.fd) not in (_TMPFS_MAGIC, _HUGETLBFS_MAGIC):
            raise KernelError(EINVAL, "only memfd/shmem or hugetlbfs files can be pinned for DMA")
        size = os.fstat(self.fd).st_size
        if self.start + start_byte + length > size:
            raise KernelError(EFAULT, f"file range {self.start + start_byte:#x}+{length:#x} is beyond "
                                      f"the end of the file ({size:#x} bytes)")

    def read(self, start_byte: int, length: int) -> bytes:
        if self.type == IOPT_ADDRESS_USER:
            return self.mm.read(self.uptr + start_byte, length)
        off = self.start + start_byte
        try:
            data = os.pread(self.fd, length, off)
        except OSError as e:
            raise KernelError(EFAULT, f"file read at {off:#x} failed: {e.strerror}") from None
        if len(data) != length:
            raise KernelError(EFAULT, f"file offset {off:#x}+{length:#x} is beyond the end of the file")
        return data

    def write(self, start_byte: int, data: bytes) -> None:
        if self.type == IOPT_ADDRESS_USER:
            self.mm.write(self.uptr + start_byte, data)
            return
        off = self.start + start_byte
        if off + len(data) > os.fstat(self.fd).st_size:
            raise KernelError(EFAULT, f"file offset {off:#x}+{len(data):#x} is beyond the end of the file")
        try:
            os.pwrite(self.fd, data, off)
        except OSError as e:
            raise KernelError(EFAULT, f"file write at {off:#x} failed: {e.strerror}") from None


def iopt_alloc_user_pages(uptr: int, length: int, writable: bool, *, mm: ProcessMemory, uid: int,
                          account_mode: int) -> tuple[IoptPages, int]:
    """Pages for ``length`` bytes at user address ``uptr``; returns them and the start byte inside them."""
    if uptr + length > ULONG_MAX:
        raise KernelError(EOVERFLOW, f"user_va {uptr:#x} + length {length:#x} overflows")
    _check_pages_length(length)
    base = uptr - uptr % PAGE_SIZE
    pages = IoptPages(IOPT_ADDRESS_USER, uptr - base + length, writable, mm=mm, uid=uid,
                      account_mode=account_mode, uptr=base)
    return pages, uptr - base


def iopt_alloc_file_pages(fd: int, start: int, length: int, writable: bool, *, mm: ProcessMemory, uid: int,
                          account_mode: int) -> tuple[IoptPages, int]:
    """Pages for ``length`` bytes of the file ``fd`` (owned by the caller of this) from offset ``start``.

    A writable mapping needs a descriptor open for writing and a mapping that
    may become writable (no write seals) -- both EPERM, as
    ``mapping_map_writable`` reports.
    """
    if start + length > ULONG_MAX:
        raise KernelError(EOVERFLOW, f"start {start:#x} + length {length:#x} overflows")
    if writable:
        import fcntl

        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        if mode == os.O_RDONLY:
            raise KernelError(EPERM, "writable mapping of a file descriptor opened read-only")
        try:
            seals = fcntl.fcntl(fd, getattr(fcntl, "F_GET_SEALS", 1034))
        except OSError:
            seals = 0
        if seals & (getattr(fcntl, "F_SEAL_WRITE", 8) | getattr(fcntl, "F_SEAL_FUTURE_WRITE", 16)):
            raise KernelError(EPERM, "writable mapping of a write-sealed memfd")
    _check_pages_length(length)
    base = start - start % PAGE_SIZE
    pages = IoptPages(IOPT_ADDRESS_FILE, start - base + length, writable, mm=mm, uid=uid,
                      account_mode=account_mode, fd=fd, start=base)
    return pages, start - base


def _check_pages_length(length: int) -> None:
    if length == 0 or length > SIZE_MAX - PAGE_SIZE:
        raise KernelError(EINVAL, f"length {length:#x} is zero or too large")


class IoptArea:
    """``struct iopt_area``: IOVA ``[iova, last]`` -> ``pages`` from ``start_byte``, with IOMMU_READ/WRITE."""

    def __init__(self, iova: int, last: int, pages: IoptPages, start_byte: int, prot: int) -> None:
        self.iova = iova
        self.last = last
        self.pages = pages
        self.start_byte = start_byte
        self.prot = prot
        self.pinned = False  # filled into the IOAS's domains (pinned) or not

    @property
    def length(self) -> int:
        return self.last - self.iova + 1

    @property
    def page_offset(self) -> int:
        return self.start_byte % PAGE_SIZE

    def start_byte_of(self, iova: int) -> int:
        """``iopt_area_start_byte``: the byte of ``pages`` that ``iova`` reaches."""
        return self.start_byte + (iova - self.iova)

    def __repr__(self) -> str:
        return f"<IoptArea [{self.iova:#x}, {self.last:#x}] prot {self.prot} {self.pages!r}>"


class PagesSlice:
    """One element of an ``iopt_pages_list``: ``length`` bytes of ``pages`` from ``start_byte``."""

    def __init__(self, pages: IoptPages, start_byte: int, length: int) -> None:
        self.pages = pages
        self.start_byte = start_byte
        self.length = length


class Reserved:
    """``struct iopt_reserved``: an IOVA range nobody may map, owned by a domain or a device."""

    def __init__(self, start: int, last: int, owner: object) -> None:
        self.start = start
        self.last = last
        self.owner = owner


def _holes(used: list[tuple[int, int]], lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """The gaps of the union of (possibly overlapping) ``used`` ranges inside ``[lo, hi]``."""
    cursor = lo
    for s, l in sorted(used):
        if l < cursor:
            continue
        if s > hi:
            break
        if s > cursor:
            yield cursor, s - 1
        if l >= hi:
            return
        cursor = max(cursor, l + 1)
    if cursor <= hi:
        yield cursor, hi


class IoPagetable:
    """``struct io_pagetable``: areas, reserved and allowed ranges, domains and the IOVA alignment."""

    def __init__(self) -> None:
        self.areas: IntervalMap[IoptArea] = IntervalMap()
        self.reserved: list[Reserved] = []
        self.allowed: list[tuple[int, int]] = []
        self.domains: list["HwptPaging"] = []
        self.iova_alignment = 1
        self.disable_large_pages = False

    # -- lookups ----------------------------------------------------------------------------------
    def reserved_first(self, start: int, last: int) -> Optional[Reserved]:
        for r in self.reserved:
            if r.start <= last and start <= r.last:
                return r
        return None

    def allowed_first(self, start: int, last: int) -> Optional[tuple[int, int]]:
        for s, l in self.allowed:
            if s <= last and start <= l:
                return s, l
        return None

    def iova_ranges(self) -> list[tuple[int, int]]:
        """The holes of the reserved ranges in ``[0, ULONG_MAX]``: what ``IOAS_IOVA_RANGES`` reports."""
        return list(_holes([(r.start, r.last) for r in self.reserved], 0, ULONG_MAX))

    def contig_areas(self, iova: int, last: int) -> Iterator[tuple[int, IoptArea]]:
        """``iopt_for_each_contig_area``: areas covering ``[iova, last]`` without gaps, with the cursor."""
        cur = iova
        hit = self.areas.find(cur)
        while hit is not None:
            area = hit[2]
            yield cur, area
            if area.last >= last:
                return
            cur = area.last + 1
            hit = self.areas.find(cur)
            if hit is not None and hit[0] != cur:
                return

    def contig_covered(self, iova: int, last: int) -> bool:
        end = iova - 1
        for _, area in self.contig_areas(iova, last):
            end = area.last
        return end >= last

    # -- IOVA allocation --------------------------------------------------------------------------
    def check_iova(self, iova: int, length: int) -> None:
        """``iopt_check_iova``: a caller-chosen (FIXED_IOVA) range must be aligned, in range and free."""
        if iova & (self.iova_alignment - 1):
            raise KernelError(EINVAL, f"iova {iova:#x} is not aligned to the IOAS alignment "
                                      f"{self.iova_alignment:#x}")
        last = iova + length - 1
        if last > ULONG_MAX:
            raise KernelError(EOVERFLOW, f"iova {iova:#x} + length {length:#x} overflows")
        r = self.reserved_first(iova, last)
        if r is not None:
            raise KernelError(EINVAL, f"[{iova:#x}, {last:#x}] intersects reserved IOVA "
                                      f"[{r.start:#x}, {r.last:#x}]")
        a = self.areas.first_overlap(iova, last)
        if a is not None:
            raise KernelError(EEXIST, f"[{iova:#x}, {last:#x}] overlaps the mapping at "
                                      f"[{a[0]:#x}, {a[1]:#x}]")

    def alloc_iova(self, addr: int, length: int) -> int:
        """``iopt_alloc_iova``: pick a free IOVA for ``length`` bytes whose memory starts at ``addr``.

        The choice keeps the sub-page offset of ``addr`` and as much of its
        alignment as the length warrants (up to 2 MiB, so huge pages stay
        possible), never returns 0 or the last page, stays inside the allowed
        ranges when any are set, and avoids reserved ranges and existing areas.
        """
        page_offset = addr % PAGE_SIZE
        if length == 0 or length >= ULONG_MAX // 2:
            raise KernelError(EOVERFLOW, f"length {length:#x} cannot be placed automatically")
        if not addr:
            align = _roundup_pow_of_two(length)
        else:
            align = min(_roundup_pow_of_two(length), _lowest_bit(addr))
        align = min(align, HPAGE_SIZE)
        if align < self.iova_alignment:
            raise KernelError(EINVAL, f"the memory's alignment {align:#x} is below the IOAS alignment "
                                      f"{self.iova_alignment:#x}")
        lo, hi = PAGE_SIZE, ULONG_MAX - PAGE_SIZE
        if self.allowed:
            spans = [(max(s, lo), min(l, hi)) for s, l in sorted(self.allowed) if l >= lo and s <= hi]
        else:
            spans = [(lo, hi)]
        for span_lo, span_hi in spans:
            if not self._fits(span_lo, span_hi, length, align, page_offset):
                continue
            used = [(r.start, r.last) for r in self.reserved]
            used += [(s, l) for s, l, _ in self.areas.overlapping(span_lo, span_hi)]
            for hole_lo, hole_hi in _holes(used, span_lo, span_hi):
                start = self._fits(hole_lo, hole_hi, length, align, page_offset)
                if start is not None:
                    return start
        raise KernelError(ENOSPC, f"no free IOVA range of {length:#x} bytes")

    @staticmethod
    def _fits(lo: int, hi: int, length: int, align: int, page_offset: int) -> Optional[int]:
        if hi - lo < length - 1:
            return None
        start = _align_up(lo, align) | page_offset
        if start > hi or hi - start < length - 1:
            return None
        return start

    # -- map / unmap ------------------------------------------------------------------------------
    def map_pages(self, slices: list[PagesSlice], length: int, iova: int, prot: int, flags: int) -> int:
        """``iopt_map_pages``: place ``slices`` back to back at ``iova`` (or a chosen IOVA) and fill domains.

        Takes a reference on each slice's pages for the new area; on failure
        nothing is left behind.  Returns the IOVA used.
        """
        if length & (self.iova_alignment - 1) or not length:
            raise KernelError(EINVAL, f"length {length:#x} is zero or not a multiple of the IOAS alignment "
                                      f"{self.iova_alignment:#x}")
        if flags & IOPT_ALLOC_IOVA:
            first = slices[0]
            if first.pages.type == IOPT_ADDRESS_USER:
                start = first.start_byte + first.pages.uptr
            else:
                start = first.start_byte + first.pages.start
            iova = self.alloc_iova(start, length)
        else:
            self.check_iova(iova, length)
        areas: list[IoptArea] = []
        cur = iova
        for sl in slices:
            if prot & IOMMU_WRITE and not sl.pages.writable:
                raise KernelError(EPERM, "writable mapping of pages that were mapped read-only")
            area = IoptArea(cur, cur + sl.length - 1, sl.pages, sl.start_byte, prot)
            if area.page_offset & (self.iova_alignment - 1):
                raise KernelError(EINVAL, f"the memory's offset in its page ({area.page_offset:#x}) is not "
                                          f"aligned to the IOAS alignment {self.iova_alignment:#x}")
            if area.last > ULONG_MAX:
                raise KernelError(EOVERFLOW, "mapping overflows the IOVA space")
            areas.append(area)
            cur += sl.length
        if self.domains:
            for area in areas:  # iopt_fill_domains_pages: pinning can fault
                area.pages.pin(area.start_byte, area.length, bool(prot & IOMMU_WRITE))
        for area in areas:
            area.pinned = bool(self.domains)
            area.pages.get()
            self.areas.insert(area.iova, area.last, area)
        return iova

    def get_pages(self, iova: int, length: int) -> list[PagesSlice]:
        """``iopt_get_pages``: the pages behind ``[iova, +length)``, which must be fully covered (ENOENT)."""
        if not length:
            raise KernelError(EINVAL, "length 0")
        last = iova + length - 1
        if last > ULONG_MAX:
            raise KernelError(EOVERFLOW, f"iova {iova:#x} + length {length:#x} overflows")
        out = []
        end = iova - 1
        for cur, area in self.contig_areas(iova, last):
            area_end = min(last, area.last)
            out.append(PagesSlice(area.pages, area.start_byte_of(cur), area_end - cur + 1))
            end = area_end
        if end < last:
            raise KernelError(ENOENT, f"[{iova:#x}, {last:#x}] is not fully covered by mappings")
        return out

    def _remove_area(self, area: IoptArea) -> None:
        self.areas.remove(area.iova)
        area.pinned = False
        area.pages.put()

    def unmap_iova_range(self, start: int, last: int) -> tuple[int, int]:
        """``iopt_unmap_iova_range``: remove every area inside ``[start, last]``.

        Returns ``(errno or 0, bytes unmapped)``.  An area sticking out of the
        range stops the walk with ENOENT -- areas are never split or trimmed --
        and the ones removed before it stay removed.  Nothing removed: ENOENT.
        """
        unmapped = 0
        while True:
            hit = self.areas.first_overlap(start, last)
            if hit is None:
                break
            area = hit[2]
            if area.iova < start or area.last > last:
                return ENOENT, unmapped
            self._remove_area(area)
            unmapped += area.length
        return (0 if unmapped else ENOENT), unmapped

    def unmap_iova(self, iova: int, length: int) -> tuple[int, int]:
        if not length:
            raise KernelError(EINVAL, "length 0")
        last = iova + length - 1
        if last > ULONG_MAX:
            raise KernelError(EOVERFLOW, f"iova {iova:#x} + length {length:#x} overflows")
        return self.unmap_iova_range(iova, last)

    def unmap_all(self) -> int:
        """``iopt_unmap_all``: empty the table; an empty table is success too.  Returns the bytes unmapped."""
        _, unmapped = self.unmap_iova_range(0, ULONG_MAX)
        return unmapped

    def cut_iova(self, iovas: list[int]) -> None:
        """``iopt_cut_iova``: split the areas containing each IOVA so that it becomes an area's last byte.

        Only the VFIO compatibility UNMAP uses this, on a TYPE1 (not v2)
        container where huge pages are disabled.
        """
        for iova in iovas:
            hit = self.areas.find(iova)
            if hit is None:
                continue
            area = hit[2]
            if iova in (area.iova, area.last):
                continue
            new_start = iova + 1
            if new_start & (self.iova_alignment - 1) or \
                    area.start_byte_of(new_start) & (self.iova_alignment - 1):
                raise KernelError(EINVAL, f"cannot split the mapping at {iova:#x}: unaligned")
            if area.pinned and not self.disable_large_pages:
                raise KernelError(EINVAL, "cannot split a mapping that may use huge IOMMU pages")
            self.areas.remove(area.iova)
            lhs = IoptArea(area.iova, iova, area.pages, area.start_byte, area.prot)
            rhs = IoptArea(new_start, area.last, area.pages, area.start_byte_of(new_start), area.prot)
            lhs.pinned = rhs.pinned = area.pinned
            area.pages.get()  # two areas now share the pages the one held
            self.areas.insert(lhs.iova, lhs.last, lhs)
            self.areas.insert(rhs.iova, rhs.last, rhs)

    # -- allowed and reserved ranges ----------------------------------------------------------------
    def set_allow_iova(self, ranges: list[tuple[int, int]]) -> None:
        """``iopt_set_allow_iova``: replace the allowed list; any overlap with a reserved range: EADDRINUSE."""
        for s, l in ranges:
            r = self.reserved_first(s, l)
            if r is not None:
                raise KernelError(EADDRINUSE, f"allowed range [{s:#x}, {l:#x}] intersects reserved IOVA "
                                              f"[{r.start:#x}, {r.last:#x}]")
        self.allowed = sorted(ranges)

    def reserve_iova(self, start: int, last: int, owner: object) -> None:
        """``iopt_reserve_iova``: refused (EADDRINUSE) when it hits a mapping or an allowed range."""
        a = self.areas.first_overlap(start, last)
        if a is not None:
            raise KernelError(EADDRINUSE, f"IOVA [{start:#x}, {last:#x}] must be reserved but the mapping "
                                          f"[{a[0]:#x}, {a[1]:#x}] is there")
        al = self.allowed_first(start, last)
        if al is not None:
            raise KernelError(EADDRINUSE, f"IOVA [{start:#x}, {last:#x}] must be reserved but the allowed "
                                          f"range [{al[0]:#x}, {al[1]:#x}] covers it")
        self.reserved.append(Reserved(start, last, owner))

    def remove_reserved_iova(self, owner: object) -> None:
        self.reserved = [r for r in self.reserved if r.owner is not owner]

    def enforce_dev_resv_regions(self, owner: object, regions: list[tuple[int, int]]) -> None:
        """``iopt_table_enforce_dev_resv_regions``: reserve a device's regions, all or none."""
        try:
            for start, last in regions:
                self.reserve_iova(start, last, owner)
        except KernelError:
            self.remove_reserved_iova(owner)
            raise

    # -- domains ----------------------------------------------------------------------------------
    def _check_iova_alignment(self, new_alignment: int) -> None:
        mask = new_alignment - 1
        for _, _, area in self.areas:
            if area.iova & mask or area.length & mask or area.page_offset & mask:
                raise KernelError(EADDRINUSE, f"the mapping at {area.iova:#x} does not meet the IOVA "
                                              f"alignment {new_alignment:#x} the change needs")

    def calculate_iova_alignment(self) -> None:
        """``iopt_calculate_iova_alignment``: the largest granule any domain (or disabled huge pages) needs."""
        new = PAGE_SIZE if self.disable_large_pages else 1
        for d in self.domains:
            new = max(new, d.pgsize)
        if new > self.iova_alignment:
            self._check_iova_alignment(new)
        self.iova_alignment = new

    def table_add_domain(self, hwpt: "HwptPaging") -> None:
        """``iopt_table_add_domain``: a new domain mirrors every area (pinning them) and bounds the IOVA space.

        The domain's page size raises the alignment (EADDRINUSE if existing
        areas do not conform); IOVA outside its aperture becomes reserved
        (EADDRINUSE if a mapping or allowed range is there); pinning the
        areas for the first domain can fault (EFAULT).
        """
        new_alignment = max(hwpt.pgsize, self.iova_alignment)
        if new_alignment > PAGE_SIZE:
            raise KernelError(EINVAL, "domain page size larger than the CPU page")
        if new_alignment != self.iova_alignment:
            self._check_iova_alignment(new_alignment)
        try:
            if hwpt.aperture_start != 0:
                self.reserve_iova(0, hwpt.aperture_start - 1, hwpt)
            if hwpt.aperture_end != ULONG_MAX:
                self.reserve_iova(hwpt.aperture_end + 1, ULONG_MAX, hwpt)
            if not self.domains:
                for _, _, area in self.areas:
                    area.pages.pin(area.start_byte, area.length, bool(area.prot & IOMMU_WRITE))
        except KernelError:
            self.remove_reserved_iova(hwpt)
            raise
        if not self.domains:
            for _, _, area in self.areas:
                area.pinned = True
        self.iova_alignment = new_alignment
        self.domains.append(hwpt)

    def table_remove_domain(self, hwpt: "HwptPaging") -> None:
        """``iopt_table_remove_domain``: the last domain gone unpins everything; the alignment may drop."""
        if hwpt not in self.domains:
            return
        self.domains.remove(hwpt)
        if not self.domains:
            for _, _, area in self.areas:
                area.pinned = False
        self.remove_reserved_iova(hwpt)
        self.calculate_iova_alignment()

    def disable_large_pages_(self) -> None:
        """``iopt_disable_large_pages``: refused (EINVAL) once a domain has mappings in it."""
        if self.disable_large_pages:
            return
        if self.domains and len(self.areas):
            raise KernelError(EINVAL, "huge pages cannot be disabled once a domain holds mappings")
        self.disable_large_pages = True
        try:
            self.calculate_iova_alignment()
        except KernelError:
            self.disable_large_pages = False
            raise

    def enable_large_pages(self) -> None:
        self.disable_large_pages = False
        self.calculate_iova_alignment()

    # -- invariants -------------------------------------------------------------------------------
    def check_invariants(self) -> None:
        self.areas.check_invariants()
        for s, l, area in self.areas:
            assert (s, l) == (area.iova, area.last), f"area key {s:#x} does not match {area!r}"
            assert area.pages.refs > 0, f"{area!r} points at released pages"
            assert area.pinned == bool(self.domains), f"{area!r} pin state does not match the domains"
            assert self.reserved_first(s, l) is None, f"{area!r} intersects a reserved range"
            assert area.start_byte + area.length <= area.pages.length, f"{area!r} runs past its pages"
        for i in range(1, len(self.allowed)):
            assert self.allowed[i - 1][1] < self.allowed[i][0], "allowed ranges overlap"
        for s, l in self.allowed:
            assert self.reserved_first(s, l) is None, f"allowed [{s:#x}, {l:#x}] intersects a reserved range"
        expect = PAGE_SIZE if self.disable_large_pages else 1
        for d in self.domains:
            expect = max(expect, d.pgsize)
        assert self.iova_alignment == expect, f"iova_alignment {self.iova_alignment} != {expect}"
        assert len(set(map(id, self.domains))) == len(self.domains), "a domain is listed twice"


__all__ = [
    "IoPagetable", "IoptArea", "IoptPages", "PagesSlice", "Reserved", "iopt_alloc_user_pages",
    "iopt_alloc_file_pages", "PAGE_SIZE", "ULONG_MAX", "IOMMU_READ", "IOMMU_WRITE", "IOPT_ALLOC_IOVA",
    "IOPT_ADDRESS_USER", "IOPT_ADDRESS_FILE", "IOPT_PAGES_ACCOUNT_USER", "IOPT_PAGES_ACCOUNT_MM",
]
