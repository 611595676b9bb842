"""Dirty page tracking, in the three forms the kernel offers, and a fast bitmap scanner.

Every form hands back the same thing: a bitmap, one bit per page from some
base IOVA, bit ``i`` in 64-bit little-endian word ``i // 64`` -- so the byte
``i // 8``, bit ``i % 8``.  What differs is who tracks:

- :class:`DeviceDmaLog` -- the device itself logs its DMA writes
  (``VFIO_DEVICE_FEATURE_DMA_LOGGING_START/REPORT/STOP``, mlx5, pds, mtty's
  stubs).  START names the IOVA ranges; the driver may change the page size.
- :class:`HwptDirtyTracker` -- the IOMMU's page tables do (iommufd:
  ``IOMMU_HWPT_SET_DIRTY_TRACKING``, ``IOMMU_HWPT_GET_DIRTY_BITMAP`` with
  optional ``NO_CLEAR``), on a HWPT allocated with ``DIRTY_TRACKING``.
- :class:`Type1DirtyTracker` -- the legacy type1 container does
  (``VFIO_IOMMU_DIRTY_PAGES``), which on real hardware marks every pinned page
  dirty unless all devices are mdevs that report their own pins.

:func:`dirty_ranges` turns a bitmap into ``(iova, length)`` runs without a
Python loop per bit: zero words are skipped in C (``itertools.compress``) and
inside a non-zero word runs are peeled off with integer bit tricks, so the
Python work is proportional to the number of runs.
"""

from __future__ import annotations

import ctypes
from itertools import compress
from typing import Any, Optional

from ..uapi import iommufd as ui
from ..uapi import vfio as uv
from ..uapi.struct import alloc_flex
from .device import feature

__all__ = [
    "dirty_ranges", "count_dirty", "bitmap_bytes", "DeviceDmaLog", "HwptDirtyTracker", "Type1DirtyTracker",
]


def bitmap_bytes(length: int, page_size: int) -> int:
    """Bytes of bitmap for ``length`` bytes of IOVA, rounded up to whole u64 words (what the kernel writes)."""
    if page_size <= 0:
        raise ValueError(f"page size {page_size} cannot size a dirty bitmap")
    pages = (length + page_size - 1) // page_size
    return ((pages + 63) // 64) * 8


def dirty_page_runs(bitmap: "bytes | bytearray | memoryview") -> list[tuple[int, int]]:
    """Runs of dirty pages as (first page, count), in order, merged across word boundaries.

    The bitmap is read as native u64 words (what the kernel writes).
    ``itertools.compress`` picks the non-zero words in C, so clean memory
    costs nothing in Python; inside a word each run is peeled off with two
    bit tricks (``w & -w`` finds the next set bit, ``~w & (w + 1)`` the end
    of the run), so the Python work grows with the number of runs, not bits.
    """
    raw = memoryview(bitmap).cast("B")
    if len(raw) % 8:
        raw = memoryview(bytes(raw) + bytes(8 - len(raw) % 8))
    words = raw.cast("Q")
    out: list[tuple[int, int]] = []
    end = -1
    for index in compress(range(len(words)), words):
        w = words[index]
        pos = index * 64
        while w:
            low = (w & -w).bit_length() - 1
            w >>= low
            pos += low
            run = (~w & (w + 1)).bit_length() - 1
            if pos == end:
                first, count = out[-1]
                out[-1] = (first, count + run)
            else:
                out.append((pos, run))
            w >>= run
            pos += run
            end = pos
    return out


def dirty_ranges(bitmap: "bytes | bytearray | memoryview", base_iova: int, page_size: int,
                 length: Optional[int] = None) -> list[tuple[int, int]]:
    """``(iova, length)`` of each run of dirty pages; bits past ``length`` (word padding) are ignored."""
    limit = None if length is None else (length + page_size - 1) // page_size
    out = []
    for page, n in dirty_page_runs(bitmap):
        if limit is not None:
            if page >= limit:
                break
            n = min(n, limit - page)
        out.append((base_iova + page * page_size, n * page_size))
    return out


def count_dirty(bitmap: "bytes | bytearray | memoryview") -> int:
    """Number of set bits (pages dirty)."""
    return int.from_bytes(bytes(bitmap), "little").bit_count()


def _buffer(nbytes: int) -> "ctypes.Array[ctypes.c_char]":
    # The kernel only ever sets bits: the buffer must start zeroed.
    return ctypes.create_string_buffer(max(nbytes, 8))


class DeviceDmaLog:
    """Device DMA logging on one device fd (``VFIO_DEVICE_FEATURE_DMA_LOGGING_*``)."""

    def __init__(self, kernel: Any, device_fd: int) -> None:
        self.kernel = kernel
        self.fd = device_fd
        self.page_size = 0
        self.started = False

    def __enter__(self) -> "DeviceDmaLog":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.stop()

    def supported(self) -> bool:
        """QEMU's probe: ``PROBE | SET | DMA_LOGGING_START`` succeeds."""
        try:
            feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_PROBE | uv.VFIO_DEVICE_FEATURE_SET
                    | uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)
        except OSError:
            return False
        return True

    def start(self, ranges: list[tuple[int, int]], page_size: int = 4096) -> int:
        """Start logging writes to ``ranges`` ((iova, length) pairs); returns the page size the driver chose."""
        n = len(ranges)
        array = (uv.vfio_device_feature_dma_logging_range * max(n, 1))()
        for i, (iova, length) in enumerate(ranges):
            array[i].iova = iova
            array[i].length = length
        control = uv.vfio_device_feature_dma_logging_control(page_size=page_size, num_ranges=n,
                                                             ranges=ctypes.addressof(array))
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_SET | uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                control)
        self.page_size = int(control.page_size)
        self.started = True
        return self.page_size

    def report(self, iova: int, length: int, page_size: Optional[int] = None) -> bytes:
        """The dirty bitmap of ``[iova, iova + length)`` (and the device's log of it is cleared)."""
        ps = page_size or self.page_size or 4096
        buf = _buffer(bitmap_bytes(length, ps))
        rep = uv.vfio_device_feature_dma_logging_report(iova=iova, length=length, page_size=ps,
                                                        bitmap=ctypes.addressof(buf))
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, rep)
        return buf.raw[: bitmap_bytes(length, ps)]

    def stop(self) -> None:
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_SET | uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)
        self.started = False


class HwptDirtyTracker:
    """iommufd dirty tracking on a paging HWPT allocated with ``IOMMU_HWPT_ALLOC_DIRTY_TRACKING``."""

    def __init__(self, kernel: Any, iommufd: int, hwpt_id: int) -> None:
        self.kernel = kernel
        self.fd = iommufd
        self.hwpt_id = hwpt_id
        self.enabled = False

    def __enter__(self) -> "HwptDirtyTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.set_tracking(False)

    def set_tracking(self, enable: bool) -> None:
        """Enable (which starts from a clean slate) or disable tracking."""
        cmd = ui.iommu_hwpt_set_dirty_tracking(size=ctypes.sizeof(ui.iommu_hwpt_set_dirty_tracking),
                                               flags=ui.IOMMU_HWPT_DIRTY_TRACKING_ENABLE if enable else 0,
                                               hwpt_id=self.hwpt_id)
        self.kernel.ioctl(self.fd, ui.IOMMU_HWPT_SET_DIRTY_TRACKING, cmd)
        self.enabled = enable

    def get_bitmap(self, iova: int, length: int, page_size: int = 4096, *, no_clear: bool = False) -> bytes:
        """The dirty bitmap of ``[iova, iova + length)``; ``no_clear`` leaves the IOMMU's dirty bits set."""
        buf = _buffer(bitmap_bytes(length, page_size))
        cmd = ui.iommu_hwpt_get_dirty_bitmap(size=ctypes.sizeof(ui.iommu_hwpt_get_dirty_bitmap),
                                             hwpt_id=self.hwpt_id,
                                             flags=ui.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR if no_clear else 0,
                                             iova=iova, length=length, page_size=page_size,
                                             data=ctypes.addressof(buf))
        self.kernel.ioctl(self.fd, ui.IOMMU_HWPT_GET_DIRTY_BITMAP, cmd)
        return buf.raw[: bitmap_bytes(length, page_size)]


class Type1DirtyTracker:
    """Legacy ``VFIO_IOMMU_DIRTY_PAGES`` on a type1v2 container fd."""

    def __init__(self, kernel: Any, container_fd: int) -> None:
        self.kernel = kernel
        self.fd = container_fd
        self.started = False

    def __enter__(self) -> "Type1DirtyTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.stop()

    def _simple(self, flag: int) -> None:
        arg = uv.vfio_iommu_type1_dirty_bitmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap), flags=flag)
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_DIRTY_PAGES, arg)

    def start(self) -> None:
        self._simple(uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
        self.started = True

    def stop(self) -> None:
        self._simple(uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)
        self.started = False

    def get_bitmap(self, iova: int, size: int, page_size: int = 4096) -> bytes:
        """The dirty bitmap of ``[iova, iova + size)``, which must cover whole mappings; reading clears it."""
        nbytes = bitmap_bytes(size, page_size)
        buf = _buffer(nbytes)
        get = uv.vfio_iommu_type1_dirty_bitmap_get(iova=iova, size=size)
        get.bitmap.pgsize = page_size
        get.bitmap.size = nbytes
        get.bitmap.data = ctypes.cast(ctypes.addressof(buf), ctypes.POINTER(ctypes.c_ulong))
        arg = alloc_flex(uv.vfio_iommu_type1_dirty_bitmap, ctypes.sizeof(get),
                         flags=uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)
        ctypes.memmove(ctypes.addressof(arg) + ctypes.sizeof(uv.vfio_iommu_type1_dirty_bitmap),
                       ctypes.addressof(get), ctypes.sizeof(get))
        self.kernel.ioctl(self.fd, uv.VFIO_IOMMU_DIRTY_PAGES, arg)
        return buf.raw[:nbytes]
