"""DMA memory a device may reach: buffers that own their memory, an IOVA allocator, and mappings that undo themselves.

A raw ``VFIO_IOMMU_MAP_DMA`` takes a bare virtual address.  Nothing stops the
caller from freeing the memory while the device still writes to it, or from
forgetting the unmap -- the "safe map API" rust-vmm's users asked for is the
fix, and this module is pyvfio's version of it:

* :class:`DmaBuffer` owns page-aligned memory (a memfd by default -- it can be
  mapped by file with ``IOMMU_IOAS_MAP_FILE``, shared with a child, and
  survives ``exec`` for CPR -- or anonymous memory) and knows its address.
* :class:`IovaAllocator` picks IOVAs inside the ranges the IOMMU reports
  (type1's ``IOVA_RANGE`` capability, iommufd's ``IOAS_IOVA_RANGES``), so a
  mapping never lands in the MSI window or past the aperture.
* :class:`DmaMapping` is one mapping: it is live from the map call until
  :meth:`~DmaMapping.unmap`, ``with`` block exit, or the close of its IOMMU
  context, whichever comes first -- and it unmaps before the memory it maps
  can be freed.

Both IOMMU backends share this code through :class:`DmaMapper`: the legacy
:class:`~pyvfio.container.Container` and the iommufd
:class:`~pyvfio.iommufd.Ioas` implement three primitives (map by address,
unmap, report IOVA ranges) and inherit everything else, the way libvfn's one
``iommu_ctx`` sits over its vfio and iommufd backends.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import logging
import mmap as _mmap
import os
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

from .errors import VfioError
from .info import IovaRange
from .kernel.base import Kernel

__all__ = ["PAGE_SIZE", "DEFAULT_IOVA_BASE", "DmaBuffer", "DmaMapping", "DmaMapper", "IommuContext",
           "IovaAllocator", "page_align"]

log = logging.getLogger("pyvfio.dma")

PAGE_SIZE = _mmap.PAGESIZE
#: The allocator's default floor.  IOVA 0 (and the first MiB) stay unmapped so a device that treats a zero
#: address as "no buffer", or a driver bug that programs 0, faults in the IOMMU instead of hitting memory.
DEFAULT_IOVA_BASE = 0x100000


def page_align(n: int, page: int = PAGE_SIZE) -> int:
    """``n`` rounded up to a multiple of ``page``."""
    return (n + page - 1) // page * page


# ---------------------------------------------------------------------------------------------------------
# memory


class DmaBuffer:
    """Page-aligned memory owned by this object: ``.addr``, ``.view`` (a memoryview), ``.fd``.

    ``memfd=True`` (the default) backs it with a memfd, so it can also be
    mapped by file (``IOMMU_IOAS_MAP_FILE``), passed to another process, or
    re-mapped after ``exec``; ``memfd=False`` gives anonymous shared memory and
    ``fd == -1`` (as ``mmap`` reports for anonymous maps).  ``size`` is rounded
    up to whole pages because an IOMMU maps pages.

    Close it only after every mapping of it is gone (the mappings made through
    :meth:`DmaMapper.map` are unmapped first when used as ``with`` blocks or
    closed by their context).  Views sliced from :attr:`view` pin the memory:
    release them before closing, or :meth:`close` raises ``BufferError`` --
    freeing memory a live view still points at would be a use-after-free.
    """

    def __init__(self, size: int, *, memfd: bool = True, name: str = "pyvfio-dma") -> None:
        if size <= 0:
            raise ValueError(f"a DMA buffer needs a positive size, not {size}")
        self.size = page_align(size)
        self._fd = -1
        self._view: Optional[memoryview] = None
        self.closed = False
        if memfd:
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, self.size)
                self._mmap = _mmap.mmap(fd, self.size, _mmap.MAP_SHARED, _mmap.PROT_READ | _mmap.PROT_WRITE)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        else:
            self._mmap = _mmap.mmap(-1, self.size, _mmap.MAP_SHARED | _mmap.MAP_ANONYMOUS,
                                    _mmap.PROT_READ | _mmap.PROT_WRITE)
        # the address, taken through a short-lived ctypes export (released as soon as the temporary dies)
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self._mmap))

    def __repr__(self) -> str:
        if self.closed:
            return f"<DmaBuffer closed, {self.size:#x} bytes>"
        backing = f"memfd {self._fd}" if self._fd >= 0 else "anonymous"
        return f"<DmaBuffer {self.size:#x} bytes at {self.addr:#x} ({backing})>"

    def __len__(self) -> int:
        return self.size

    def __enter__(self) -> "DmaBuffer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check(self) -> None:
        if self.closed:
            raise ValueError("the DmaBuffer is closed")

    @property
    def fd(self) -> int:
        """The memfd backing the buffer, or -1 for anonymous memory."""
        return self._fd

    @property
    def mmap(self) -> _mmap.mmap:
        """The Python ``mmap`` object (slicing, ``find``, ``seek``...)."""
        self._check()
        return self._mmap

    @property
    def view(self) -> memoryview:
        """A writable memoryview of the whole buffer (released on close)."""
        self._check()
        if self._view is None:
            self._view = memoryview(self._mmap)
        return self._view

    def read(self, offset: int, size: int) -> bytes:
        self._check()
        if offset < 0 or size < 0 or offset + size > self.size:
            raise IndexError(f"{size} bytes at {offset:#x} are outside the {self.size:#x}-byte buffer")
        return self._mmap[offset: offset + size]

    def write(self, offset: int, data: bytes) -> None:
        self._check()
        if offset < 0 or offset + len(data) > self.size:
            raise IndexError(f"{len(data)} bytes at {offset:#x} are outside the {self.size:#x}-byte buffer")
        self._mmap[offset: offset + len(data)] = data

    def fill(self, byte: int = 0) -> None:
        self._check()
        ctypes.memset(self.addr, byte, self.size)

    def close(self) -> None:
        """Free the memory and the memfd.  Idempotent; ``BufferError`` while sliced views are still alive."""
        if self.closed:
            return
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._fd >= 0:
            os.close(self._fd)  # the mapping keeps the file alive until it goes too
            self._fd = -1
        try:
            self._mmap.close()
        except BufferError:
            raise BufferError(f"{self!r}: views taken from .view (or slices of it) are still alive; release "
                              "them before closing the buffer") from None
        self.closed = True


# ---------------------------------------------------------------------------------------------------------
# IOVA allocation


class IovaAllocator:
    """First-fit IOVA allocation inside the IOMMU's usable ranges, avoiding what is already handed out.

    The ranges are passed in at each call rather than kept, because they are
    not fixed: attaching a device to an IOAS reserves its MSI window, and a
    type1 container's ranges appear only after ``VFIO_SET_IOMMU``.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []  # sorted
        self._sizes: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<IovaAllocator {len(self._starts)} ranges in use>"

    def __len__(self) -> int:
        return len(self._starts)

    def used(self) -> list[tuple[int, int]]:
        return [(s, self._sizes[s]) for s in self._starts]

    def overlaps(self, iova: int, size: int) -> Optional[tuple[int, int]]:
        """The first allocation intersecting ``[iova, iova + size)``, or None."""
        i = bisect.bisect_right(self._starts, iova)
        for j in (i - 1, i):
            if 0 <= j < len(self._starts):
                s = self._starts[j]
                if s < iova + size and iova < s + self._sizes[s]:
                    return s, self._sizes[s]
        return None

    def reserve(self, iova: int, size: int) -> None:
        """Record ``[iova, iova + size)`` as used (a mapping at a caller-chosen or kernel-chosen IOVA)."""
        hit = self.overlaps(iova, size)
        if hit is not None:
            raise VfioError(errno.EEXIST, "IOVA allocation", f"{iova:#x}+{size:#x} overlaps the mapping at "
                                                             f"{hit[0]:#x}+{hit[1]:#x}")
        bisect.insort(self._starts, iova)
        self._sizes[iova] = size

    def release(self, iova: int) -> None:
        if iova in self._sizes:
            del self._sizes[iova]
            self._starts.remove(iova)

    def allocate(self, size: int, ranges: Sequence[IovaRange], *, align: int = PAGE_SIZE,
                 lo: int = DEFAULT_IOVA_BASE, hi: Optional[int] = None) -> int:
        """The lowest ``align``-aligned IOVA in ``[lo, hi)`` where ``size`` bytes fit in one usable range.

        ``hi`` is exclusive: pass ``1 << 28`` for a device with a 28-bit DMA
        mask.  ``ENOSPC`` when nothing fits, naming the ranges searched.
        """
        if size <= 0 or align <= 0 or align & (align - 1):
            raise ValueError(f"bad size {size:#x} or alignment {align:#x} (a power of two)")
        for r in sorted(ranges, key=lambda r: r.start):
            start = max(r.start, lo)
            end = r.last + 1 if hi is None else min(r.last + 1, hi)
            cur = (start + align - 1) // align * align
            while cur + size <= end:
                hit = self.overlaps(cur, size)
                if hit is None:
                    self.reserve(cur, size)
                    return cur
                cur = (hit[0] + hit[1] + align - 1) // align * align
        window = f"[{lo:#x}, {hi:#x})" if hi is not None else f"from {lo:#x}"
        usable = ", ".join(str(r) for r in ranges) or "none reported"
        raise VfioError(errno.ENOSPC, "IOVA allocation", f"no free {size:#x}-byte IOVA range {window} in the "
                                                         f"usable ranges ({usable})")


# ---------------------------------------------------------------------------------------------------------
# mappings and the shared mapper


class DmaMapping:
    """One live IOVA -> memory mapping made by :meth:`DmaMapper.map`.

    ``iova``/``size`` say where the device sees it; ``buffer`` (and
    ``offset``) which memory it is.  :meth:`unmap` (or leaving a ``with``
    block) removes it from the IOMMU; a mapping made by :meth:`DmaMapper.dma`
    owns its buffer and frees it after the unmap.
    """

    def __init__(self, mapper: "DmaMapper", buffer: DmaBuffer, offset: int, iova: int, size: int, *,
                 readable: bool, writable: bool, owns_buffer: bool, by_file: bool) -> None:
        self.mapper = mapper
        self.buffer = buffer
        self.offset = offset
        self.iova = iova
        self.size = size
        self.readable = readable
        self.writable = writable
        self.owns_buffer = owns_buffer
        self.by_file = by_file
        self.mapped = True

    def __repr__(self) -> str:
        state = "mapped" if self.mapped else "unmapped"
        access = ("r" if self.readable else "-") + ("w" if self.writable else "-")
        how = " by file" if self.by_file else ""
        return (f"<DmaMapping iova {self.iova:#x}+{self.size:#x} -> {self.buffer.addr + self.offset:#x} {access}"
                f"{how} {state}>")

    def __enter__(self) -> "DmaMapping":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unmap()

    @property
    def vaddr(self) -> int:
        return self.buffer.addr + self.offset

    @property
    def view(self) -> memoryview:
        """The mapped bytes as a memoryview (a slice of the buffer's view)."""
        return self.buffer.view[self.offset: self.offset + self.size]

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset + size > self.size:
            raise IndexError(f"{size} bytes at {offset:#x} are outside the {self.size:#x}-byte mapping")
        return self.buffer.read(self.offset + offset, size)

    def write(self, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise IndexError(f"{len(data)} bytes at {offset:#x} are outside the {self.size:#x}-byte mapping")
        self.buffer.write(self.offset + offset, data)

    def unmap(self) -> None:
        """Remove the mapping from the IOMMU (idempotent), then free an owned buffer."""
        if self.mapped:
            self.mapper._unmap_mapping(self, ioctl=True)
        if self.owns_buffer and not self.buffer.closed:
            self.buffer.close()

    close = unmap


@runtime_checkable
class IommuContext(Protocol):
    """What a device's DMA goes through, whichever the backend: a type1 :class:`~pyvfio.container.Container`
    or an iommufd :class:`~pyvfio.iommufd.Ioas`.  Code that only maps memory should take this type."""

    kernel: Kernel

    def map(self, buf: DmaBuffer, iova: Optional[int] = None, *, offset: int = 0, size: Optional[int] = None,
            readable: bool = True, writable: bool = True, limit: Optional[int] = None) -> DmaMapping: ...

    def dma(self, size: int, *, iova: Optional[int] = None, limit: Optional[int] = None) -> DmaMapping: ...

    def map_dma(self, vaddr: int, iova: int, size: int, *, readable: bool = True, writable: bool = True) -> None: ...

    def unmap_dma(self, iova: int, size: int) -> int: ...

    def iova_ranges(self) -> list[IovaRange]: ...


class DmaMapper:
    """The backend-independent half of an IOMMU context: safe ``map``/``dma``, IOVA allocation, bookkeeping.

    Subclasses provide :meth:`map_dma` (map by user address at a fixed IOVA),
    :meth:`unmap_dma`, :meth:`iova_ranges` and :attr:`iova_alignment`; a
    backend that can map a file (iommufd) overrides :meth:`_map_file`.
    """

    kernel: Kernel

    def __init__(self) -> None:
        self.iova_allocator = IovaAllocator()
        self._mappings: list[DmaMapping] = []

    # -- primitives a backend provides ------------------------------------------------------------------
    def map_dma(self, vaddr: int, iova: int, size: int, *, readable: bool = True, writable: bool = True) -> None:
        raise NotImplementedError

    def unmap_dma(self, iova: int, size: int) -> int:
        raise NotImplementedError

    def iova_ranges(self) -> list[IovaRange]:
        raise NotImplementedError

    @property
    def iova_alignment(self) -> int:
        return PAGE_SIZE

    def _map_file(self, fd: int, start: int, iova: int, size: int, *, readable: bool, writable: bool) -> None:
        raise VfioError(errno.EOPNOTSUPP, "map by file", f"{type(self).__name__} can only map memory by address")

    # -- the safe API ---------------------------------------------------------------------------------------
    @property
    def mappings(self) -> list[DmaMapping]:
        """The live mappings made through this context, oldest first."""
        return list(self._mappings)

    def map(self, buf: DmaBuffer, iova: Optional[int] = None, *, offset: int = 0, size: Optional[int] = None,
            readable: bool = True, writable: bool = True, limit: Optional[int] = None,
            by_file: bool = False) -> DmaMapping:
        """Map ``size`` bytes of ``buf`` from ``offset`` (default: all of it) and return the live mapping.

        ``iova=None`` picks one with the allocator inside :meth:`iova_ranges`
        (below ``limit`` when given: a device's DMA mask).  ``by_file`` maps the
        memfd itself instead of the address (iommufd ``IOAS_MAP_FILE``, what
        CPR needs).  If the map ioctl fails, nothing stays reserved.
        """
        if buf.closed:
            raise ValueError("cannot map a closed DmaBuffer")
        if size is None:
            size = buf.size - offset
        align = max(self.iova_alignment, PAGE_SIZE)
        if offset < 0 or size <= 0 or offset + size > buf.size or offset % PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"map {size:#x} bytes at offset {offset:#x} of a {buf.size:#x}-byte buffer: both must "
                             f"be page multiples inside the buffer")
        if by_file and buf.fd < 0:
            raise ValueError("by_file needs a memfd-backed DmaBuffer (memfd=True)")
        if iova is None:
            iova = self.iova_allocator.allocate(size, self.iova_ranges(), align=align, hi=limit)
        else:
            if limit is not None and iova + size > limit:
                raise ValueError(f"iova {iova:#x}+{size:#x} is beyond the limit {limit:#x}")
            self.iova_allocator.reserve(iova, size)
        try:
            if by_file:
                self._map_file(buf.fd, offset, iova, size, readable=readable, writable=writable)
            else:
                self.map_dma(buf.addr + offset, iova, size, readable=readable, writable=writable)
        except BaseException:
            self.iova_allocator.release(iova)
            raise
        m = DmaMapping(self, buf, offset, iova, size, readable=readable, writable=writable, owns_buffer=False,
                       by_file=by_file)
        self._mappings.append(m)
        return m

    def dma(self, size: int, *, iova: Optional[int] = None, limit: Optional[int] = None, memfd: bool = True,
            readable: bool = True, writable: bool = True, by_file: bool = False) -> DmaMapping:
        """A fresh :class:`DmaBuffer` of ``size`` bytes, mapped; the mapping owns it (freed on unmap)."""
        buf = DmaBuffer(size, memfd=memfd)
        try:
            m = self.map(buf, iova, readable=readable, writable=writable, limit=limit, by_file=by_file)
        except BaseException:
            buf.close()
            raise
        m.owns_buffer = True
        return m

    def _forget(self, m: DmaMapping) -> None:
        """``m`` is no longer in the IOMMU: mark it, free its IOVA, and free its buffer if it owns one."""
        m.mapped = False
        self.iova_allocator.release(m.iova)
        if m in self._mappings:
            self._mappings.remove(m)
        if m.owns_buffer and not m.buffer.closed:
            try:
                m.buffer.close()
            except BufferError as e:
                log.warning("%s", e)

    def _unmapped(self, iova: int, size: int) -> None:
        """A raw unmap of ``[iova, iova + size)`` succeeded: forget the mappings and IOVA ranges it covered.

        Backends call this from :meth:`unmap_dma`, so unmapping by address
        keeps the :class:`DmaMapping` objects and the allocator truthful.
        """
        end = iova + size
        for m in list(self._mappings):
            if iova <= m.iova and m.iova + m.size <= end:
                self._forget(m)
        for start, length in self.iova_allocator.used():
            if iova <= start and start + length <= end:
                self.iova_allocator.release(start)

    def _unmap_mapping(self, m: DmaMapping, *, ioctl: bool) -> None:
        """Forget ``m``; with ``ioctl`` remove it from the IOMMU first (if that fails it stays mapped)."""
        if not m.mapped:
            return
        if ioctl:
            self.unmap_dma(m.iova, m.size)
        self._forget(m)

    def _release_mappings(self, *, ioctl: bool) -> None:
        """At close: unmap (or, when the kernel object is going away anyway, just forget) every mapping."""
        for m in reversed(list(self._mappings)):
            try:
                self._unmap_mapping(m, ioctl=ioctl)
            except OSError as e:
                log.warning("unmapping %r at close failed: %s", m, e)
                self._forget(m)
