"""The one helper for VFIO's INFO ioctls: the ``argsz`` retry and the capability chain.

Three ioctls answer with a fixed struct followed by a variable chain of
capabilities: ``VFIO_DEVICE_GET_INFO``, ``VFIO_DEVICE_GET_REGION_INFO`` and
``VFIO_IOMMU_GET_INFO``.  The caller cannot know the chain's size in advance,
so the kernel's protocol is: call with the fixed struct; if the chain does not
fit, the call still *succeeds* but raises ``argsz`` to the size needed and
leaves ``cap_offset`` at 0; call again with a buffer that large.  Every
program that skips the second call silently loses the capabilities (a sparse
mmap layout, the usable IOVA ranges), which is why pyvfio has exactly one
implementation of it -- :func:`query_info` -- and every object uses it.

Capabilities are parsed into small frozen dataclasses chosen by the chain's
*domain* (the same id means different things in device, region and IOMMU
info) and id.  An id pyvfio does not know is kept as :class:`RawCap` with its
bytes, never dropped: a newer kernel's capability must stay visible.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass
from typing import Any, Generic, Optional, TypeVar

from .errors import VfioError
from .kernel.base import Kernel
from .uapi import vfio as uv
from .uapi.struct import offsetof

__all__ = [
    "Cap", "RawCap", "SparseMmapCap", "RegionTypeCap", "MsixMappableCap", "Nvlink2SsatgtCap", "Nvlink2LnkspdCap",
    "PciAtomicCompCap", "IovaRangeCap", "MigrationCap", "DmaAvailCap", "IovaRange", "Info", "query_info",
    "parse_caps", "flag_names", "DOMAIN_DEVICE", "DOMAIN_REGION", "DOMAIN_IOMMU",
]

DOMAIN_DEVICE = "device"
DOMAIN_REGION = "region"
DOMAIN_IOMMU = "iommu"

#: A chain longer than this is a corrupt buffer, not a device with that many capabilities.
MAX_CAPS = 64
#: How many times the argsz may grow between two calls before the helper gives up (a chain that keeps
#: growing means the kernel and the caller disagree; looping forever would hide it).
MAX_RETRIES = 4

_HDR = ctypes.sizeof(uv.vfio_info_cap_header)

_S = TypeVar("_S", bound=ctypes.Structure)
_C = TypeVar("_C", bound="Cap")


# ---------------------------------------------------------------------------------------------------------
# typed capabilities


@dataclass(frozen=True)
class Cap:
    """A capability of an INFO chain: its ``id`` and ``version`` (scoped to the chain's domain)."""

    id: int
    version: int

    def describe(self) -> str:
        """One line for a report (``python -m pyvfio info``)."""
        return f"capability id {self.id} version {self.version}"


@dataclass(frozen=True)
class RawCap(Cap):
    """A capability pyvfio has no type for: its ``domain`` and payload bytes (after the 8-byte header)."""

    domain: str = ""
    data: bytes = b""

    def describe(self) -> str:
        return f"unknown {self.domain} capability id {self.id} v{self.version}: {len(self.data)} bytes"


@dataclass(frozen=True)
class SparseMmapCap(Cap):
    """``VFIO_REGION_INFO_CAP_SPARSE_MMAP``: only these ``(offset, size)`` windows of the region may be mmapped.

    Offsets are relative to the region's start.  Everything else (typically the
    MSI-X table) must go through read/write on the device fd.
    """

    areas: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        areas = ", ".join(f"{off:#x}+{size:#x}" for off, size in self.areas) or "none"
        return f"SPARSE_MMAP: mmap only {areas}"


@dataclass(frozen=True)
class RegionTypeCap(Cap):
    """``VFIO_REGION_INFO_CAP_TYPE``: what a device-specific region (index >= 9 on PCI) is."""

    type: int = 0
    subtype: int = 0

    @property
    def is_pci_vendor(self) -> bool:
        return bool(self.type & 0x80000000)

    def describe(self) -> str:
        if self.is_pci_vendor:
            what = f"PCI vendor {self.type & uv.VFIO_REGION_TYPE_PCI_VENDOR_MASK:#06x}"
        else:
            what = {uv.VFIO_REGION_TYPE_GFX: "GFX", uv.VFIO_REGION_TYPE_CCW: "CCW",
                    uv.VFIO_REGION_TYPE_MIGRATION_DEPRECATED: "MIGRATION (v1, deprecated)"}.get(
                        self.type, f"type {self.type}")
        return f"TYPE: {what}, subtype {self.subtype}"


@dataclass(frozen=True)
class MsixMappableCap(Cap):
    """``VFIO_REGION_INFO_CAP_MSIX_MAPPABLE``: the MSI-X table's BAR may be mmapped whole (no sparse holes)."""

    def describe(self) -> str:
        return "MSIX_MAPPABLE: the MSI-X table may be mmapped with the rest of the BAR"


@dataclass(frozen=True)
class Nvlink2SsatgtCap(Cap):
    """``VFIO_REGION_INFO_CAP_NVLINK2_SSATGT`` (deprecated): the NVLink2 GPU RAM system-bus address."""

    tgt: int = 0

    def describe(self) -> str:
        return f"NVLINK2_SSATGT: target {self.tgt:#x}"


@dataclass(frozen=True)
class Nvlink2LnkspdCap(Cap):
    """``VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD`` (deprecated): the NVLink2 link speed."""

    link_speed: int = 0

    def describe(self) -> str:
        return f"NVLINK2_LNKSPD: link speed {self.link_speed}"


@dataclass(frozen=True)
class PciAtomicCompCap(Cap):
    """``VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP``: AtomicOp completer widths the path to the root supports."""

    flags: int = 0

    def describe(self) -> str:
        return f"PCI_ATOMIC_COMP: {flag_names(uv.VfioPciAtomicComp, self.flags)}"


@dataclass(frozen=True)
class IovaRange:
    """An inclusive IOVA range ``start .. last`` (both the type1 and the iommufd form end inclusively)."""

    start: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.start + 1

    def __contains__(self, iova: object) -> bool:
        return isinstance(iova, int) and self.start <= iova <= self.last

    def __str__(self) -> str:
        return f"{self.start:#x}-{self.last:#x}"


@dataclass(frozen=True)
class IovaRangeCap(Cap):
    """``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE``: where DMA may be mapped (aperture minus reserved regions)."""

    ranges: tuple[IovaRange, ...] = ()

    def describe(self) -> str:
        return "IOVA_RANGE: " + (", ".join(str(r) for r in self.ranges) or "none")


@dataclass(frozen=True)
class MigrationCap(Cap):
    """``VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION``: the container can log dirty pages, with these limits."""

    flags: int = 0
    pgsize_bitmap: int = 0
    max_dirty_bitmap_size: int = 0

    def describe(self) -> str:
        return (f"MIGRATION: dirty page sizes {self.pgsize_bitmap:#x}, "
                f"largest bitmap {self.max_dirty_bitmap_size:#x} bytes")


@dataclass(frozen=True)
class DmaAvailCap(Cap):
    """``VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL``: how many more DMA mappings the container may create."""

    avail: int = 0

    def describe(self) -> str:
        return f"DMA_AVAIL: {self.avail} more mappings"


# ---------------------------------------------------------------------------------------------------------
# flags for display


def flag_names(flag_cls: Any, value: int) -> str:
    """``value`` as ``NAME|NAME`` using an ``enum.IntFlag`` class, unknown bits in hex, ``0`` when empty."""
    names = []
    rest = value
    for member in flag_cls:
        bit = int(member)
        if bit and value & bit == bit:
            names.append(member.name)
            rest &= ~bit
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) if names else "0"


# ---------------------------------------------------------------------------------------------------------
# parsing the chain


class _ChainError(Exception):
    """The chain in the buffer is inconsistent; :func:`parse_caps` turns this into a :class:`VfioError`."""


def _read(buf: bytes, offset: int, cls: type[_S]) -> _S:
    size = ctypes.sizeof(cls)
    if offset < 0 or offset + size > len(buf):
        raise _ChainError(f"{cls.__name__} at offset {offset} runs past the {len(buf)}-byte buffer")
    return cls.from_buffer_copy(buf, offset)


def _flex(buf: bytes, offset: int, count: int, elem: type[_S]) -> list[_S]:
    size = ctypes.sizeof(elem)
    if count < 0 or offset + count * size > len(buf):
        raise _ChainError(f"{count} x {elem.__name__} at offset {offset} run past the {len(buf)}-byte buffer")
    return [elem.from_buffer_copy(buf, offset + i * size) for i in range(count)]


def _parse_one(domain: str, buf: bytes, offset: int, hdr: uv.vfio_info_cap_header, end: int) -> Cap:
    cid, ver = int(hdr.id), int(hdr.version)
    if domain == DOMAIN_REGION:
        if cid == uv.VFIO_REGION_INFO_CAP_SPARSE_MMAP:
            cap = _read(buf, offset, uv.vfio_region_info_cap_sparse_mmap)
            start = offset + offsetof(uv.vfio_region_info_cap_sparse_mmap, "areas")
            areas = _flex(buf, start, int(cap.nr_areas), uv.vfio_region_sparse_mmap_area)
            return SparseMmapCap(cid, ver, tuple((int(a.offset), int(a.size)) for a in areas))
        if cid == uv.VFIO_REGION_INFO_CAP_TYPE:
            t = _read(buf, offset, uv.vfio_region_info_cap_type)
            return RegionTypeCap(cid, ver, int(t.type), int(t.subtype))
        if cid == uv.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
            return MsixMappableCap(cid, ver)
        if cid == uv.VFIO_REGION_INFO_CAP_NVLINK2_SSATGT:
            return Nvlink2SsatgtCap(cid, ver, int(_read(buf, offset, uv.vfio_region_info_cap_nvlink2_ssatgt).tgt))
        if cid == uv.VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD:
            lnk = _read(buf, offset, uv.vfio_region_info_cap_nvlink2_lnkspd)
            return Nvlink2LnkspdCap(cid, ver, int(lnk.link_speed))
    elif domain == DOMAIN_DEVICE:
        if cid == uv.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP:
            ac = _read(buf, offset, uv.vfio_device_info_cap_pci_atomic_comp)
            return PciAtomicCompCap(cid, ver, int(ac.flags))
    elif domain == DOMAIN_IOMMU:
        if cid == uv.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
            cap_r = _read(buf, offset, uv.vfio_iommu_type1_info_cap_iova_range)
            start = offset + offsetof(uv.vfio_iommu_type1_info_cap_iova_range, "iova_ranges")
            ranges = _flex(buf, start, int(cap_r.nr_iovas), uv.vfio_iova_range)
            return IovaRangeCap(cid, ver, tuple(IovaRange(int(r.start), int(r.end)) for r in ranges))
        if cid == uv.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
            mig = _read(buf, offset, uv.vfio_iommu_type1_info_cap_migration)
            return MigrationCap(cid, ver, int(mig.flags), int(mig.pgsize_bitmap), int(mig.max_dirty_bitmap_size))
        if cid == uv.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
            return DmaAvailCap(cid, ver, int(_read(buf, offset, uv.vfio_iommu_type1_info_dma_avail).avail))
    return RawCap(cid, ver, domain, bytes(buf[offset + _HDR: end]))


def parse_caps(buf: bytes, cap_offset: int, domain: str, *, fixed_size: int = 0,
               ioctl: str = "capability chain") -> tuple[Cap, ...]:
    """Walk the chain in ``buf`` (the whole info buffer) from ``cap_offset``; ``next`` offsets are from its start.

    Offsets pointing into the fixed struct (below ``fixed_size``) or past the
    buffer, and chains that loop, are refused with ``EPROTO``: they mean the
    buffer is not what the kernel wrote, and guessing would hand the caller
    wrong mmap windows or IOVA ranges.
    """
    caps: list[Cap] = []
    seen: set[int] = set()
    offset = cap_offset
    try:
        while offset:
            if offset in seen or len(caps) >= MAX_CAPS:
                raise _ChainError(f"the chain loops back to offset {offset}")
            if offset < fixed_size:
                raise _ChainError(f"capability offset {offset} points into the {fixed_size}-byte fixed struct")
            seen.add(offset)
            hdr = _read(buf, offset, uv.vfio_info_cap_header)
            nxt = int(hdr.next)
            end = nxt if nxt > offset else len(buf)
            caps.append(_parse_one(domain, buf, offset, hdr, end))
            offset = nxt
    except _ChainError as e:
        raise VfioError(errno.EPROTO, ioctl, f"malformed capability chain: {e}") from None
    return tuple(caps)


# ---------------------------------------------------------------------------------------------------------
# the query


@dataclass(frozen=True)
class Info(Generic[_S]):
    """An INFO ioctl's answer: the fixed struct, its parsed capabilities and the raw bytes it came from."""

    struct: _S
    caps: tuple[Cap, ...]
    raw: bytes

    def cap(self, kind: type[_C]) -> Optional[_C]:
        """The first capability of type ``kind``, or None."""
        for c in self.caps:
            if isinstance(c, kind):
                return c
        return None


def query_info(kernel: Kernel, fd: int, request: int, cls: type[_S], *, domain: str, ioctl: str,
               **fields: Any) -> Info[_S]:
    """Run an INFO ioctl with the argsz retry, then parse its capability chain.

    ``cls`` is the fixed struct (``vfio_device_info``, ``vfio_region_info``,
    ``vfio_iommu_type1_info``); ``fields`` are its inputs (``index=``).  The
    first call passes the fixed struct; when the kernel answers with a larger
    ``argsz`` the struct is grown to that size and the call repeated.  The
    chain is parsed only when ``cap_offset`` is set, i.e. when it arrived.
    Failures of the ioctl itself propagate as the kernel wrapper raised them
    (a :class:`VfioError` naming ``ioctl``).
    """
    size = ctypes.sizeof(cls)
    obj = cls(**fields)
    for _ in range(MAX_RETRIES + 1):
        if size > ctypes.sizeof(cls):
            ctypes.resize(obj, size)
        setattr(obj, "argsz", size)
        kernel.ioctl(fd, request, obj)
        needed = int(getattr(obj, "argsz"))
        if needed <= size:
            raw = ctypes.string_at(ctypes.addressof(obj), size)
            fixed = cls.from_buffer_copy(raw[:ctypes.sizeof(cls)])
            cap_offset = int(getattr(fixed, "cap_offset", 0))
            caps = parse_caps(raw, cap_offset, domain, fixed_size=ctypes.sizeof(cls), ioctl=ioctl) \
                if cap_offset else ()
            return Info(fixed, caps, raw)
        # the chain did not fit: start again from the inputs in a buffer as large as the kernel asked for
        obj = cls(**fields)
        size = needed
    raise VfioError(errno.EPROTO, ioctl, f"argsz kept growing past {size} bytes over {MAX_RETRIES} retries")
