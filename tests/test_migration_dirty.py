"""Dirty tracking (pyvfio.migration.dirty): the bitmap scanner and the three kernel forms.

Rules: SEMANTICS 1.5 (type1 VFIO_IOMMU_DIRTY_PAGES), 2.3 (iommufd HWPT dirty
tracking, NO_CLEAR), 7.3 (device DMA logging).  The simulated devices DMA with
``VfioDevice.dma_write`` (the model's DMA path, which is what trackers see).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import random
from typing import Any, Iterator

import pytest

from pyvfio.migration.dirty import (
    DeviceDmaLog, HwptDirtyTracker, Type1DirtyTracker, bitmap_bytes, count_dirty, dirty_page_runs, dirty_ranges,
)
from pyvfio.sim import Kernel
from pyvfio.sim import vfio_iommu_type1 as type1
from pyvfio.uapi import iommufd as ui
from pyvfio.uapi import vfio as uv

from test_migration_device import open_mtty

PAGE = 4096
IOVA = 0x100000


def naive_runs(bitmap: bytes) -> list[tuple[int, int]]:
    """The obvious per-bit reference."""
    bits = [(bitmap[i // 8] >> (i % 8)) & 1 for i in range(len(bitmap) * 8)]
    out: list[tuple[int, int]] = []
    for i, b in enumerate(bits):
        if b:
            if out and out[-1][0] + out[-1][1] == i:
                out[-1] = (out[-1][0], out[-1][1] + 1)
            else:
                out.append((i, 1))
    return out


def expect(err: int, fn: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    assert e.value.errno == err, e.value


# --- the scanner ---------------------------------------------------------------------------------

@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.5, 0.97, 1.0])
def test_scanner_matches_per_bit_reference(density: float) -> None:
    rng = random.Random(int(density * 1000))
    for nbytes in (8, 64, 1000, 4096 + 3):
        bm = bytes(sum(1 << b for b in range(8) if rng.random() < density) for _ in range(nbytes))
        assert dirty_page_runs(bm) == naive_runs(bm)


def test_scanner_runs_cross_word_boundaries() -> None:
    bm = bytes(7) + b"\x80" + b"\xff" * 16 + b"\x01" + bytes(7)
    assert dirty_page_runs(bm) == [(63, 1 + 128 + 1)]


def test_dirty_ranges_iova_and_length_clip() -> None:
    assert dirty_ranges(bytes([0b1110, 0, 0xFF]), 0x10000, PAGE) == [(0x11000, 3 * PAGE), (0x20000, 8 * PAGE)]
    assert dirty_ranges(b"\xff" * 8, 0, PAGE, length=3 * PAGE) == [(0, 3 * PAGE)]
    assert count_dirty(b"\x0f\x01") == 5
    assert bitmap_bytes(PAGE, PAGE) == 8 and bitmap_bytes(65 * PAGE, PAGE) == 16


def test_scanner_on_a_128_gib_guest_bitmap() -> None:
    """128 GiB of guest at 4 KiB pages (4 MiB bitmap), 0.1% dirty: every dirty page in exactly one run.

    Speed is measured by ``python3 -m pyvfio.migration.bench``, not here."""
    rng = random.Random(1)
    nbits = (4 << 20) * 8
    bm = bytearray(4 << 20)
    for i in rng.sample(range(nbits), nbits // 1000):
        bm[i >> 3] |= 1 << (i & 7)
    runs = dirty_page_runs(bytes(bm))
    assert sum(n for _, n in runs) == nbits // 1000
    assert all(a + n < b for (a, n), (b, _) in zip(runs, runs[1:]))  # ordered, disjoint, merged


# --- device DMA logging --------------------------------------------------------------------------

@pytest.fixture
def logdev() -> Iterator[Any]:
    """mtty with a hardware-style tracker, its container mapping 16 pages at IOVA."""
    k = Kernel()
    o = open_mtty(k, dma_logging="tracker")
    mem = mmap.mmap(-1, 16 * PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    m = uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
                                    flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                    vaddr=addr, iova=IOVA, size=16 * PAGE)
    k.ioctl(o.fds[0], uv.VFIO_IOMMU_MAP_DMA, m)
    yield o
    o.close()


def test_dma_log_reports_device_writes(logdev: Any) -> None:
    log = DeviceDmaLog(logdev.k, logdev.fds[2])
    assert log.supported()
    assert log.start([(IOVA, 8 * PAGE), (IOVA + 12 * PAGE, 4 * PAGE)], PAGE) == PAGE
    logdev.vdev.dma_write(IOVA + PAGE + 5, b"x" * PAGE)      # pages 1-2
    logdev.vdev.dma_write(IOVA + 10 * PAGE, b"y")            # untracked page 10
    logdev.vdev.dma_write(IOVA + 15 * PAGE, b"z")            # page 15
    bm = log.report(IOVA, 16 * PAGE)
    assert dirty_ranges(bm, IOVA, PAGE) == [(IOVA + PAGE, 2 * PAGE), (IOVA + 15 * PAGE, PAGE)]
    assert count_dirty(log.report(IOVA, 16 * PAGE)) == 0  # the report cleared the log
    with log:
        pass
    assert not log.started


def test_dma_log_negative(logdev: Any) -> None:
    """SEMANTICS 7.3: no ranges / unaligned / overlapping -> EINVAL; double start (mlx5 rules) -> EINVAL;
    report page size below 4 KiB -> EINVAL; too many ranges -> E2BIG."""
    log = DeviceDmaLog(logdev.k, logdev.fds[2])
    expect(errno.EINVAL, log.start, [], PAGE)
    expect(errno.EINVAL, log.start, [(IOVA + 1, PAGE)], PAGE)
    expect(errno.EINVAL, log.start, [(IOVA, 2 * PAGE), (IOVA + PAGE, PAGE)], PAGE)
    expect(errno.E2BIG, log.start, [(i * PAGE, PAGE) for i in range(257)], PAGE)
    expect(errno.EINVAL, log.report, IOVA, PAGE)  # not started (mlx5 rules)
    log.start([(IOVA, PAGE)], PAGE)
    expect(errno.EINVAL, log.start, [(IOVA, PAGE)], PAGE)
    expect(errno.EINVAL, log.report, IOVA, PAGE, 1024)
    log.stop()


def test_dma_log_not_on_edu() -> None:
    k = Kernel()
    e = open_mtty(k, "edu")
    log = DeviceDmaLog(k, e.fds[2])
    assert not log.supported()
    expect(errno.ENOTTY, log.start, [(IOVA, PAGE)], PAGE)
    e.close()


# --- type1 --------------------------------------------------------------------------------------

def test_type1_dirty_pages(logdev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # opt in to the simulation's precise type1 dirty log (the default, like 7.3.4, reports every mapped page)
    monkeypatch.setattr(type1, "precise_dirty_tracking", True)
    t1 = Type1DirtyTracker(logdev.k, logdev.fds[0])
    expect(errno.EINVAL, t1.get_bitmap, IOVA, 16 * PAGE)  # tracking off
    with t1:
        t1.start()
        logdev.vdev.dma_write(IOVA + 3 * PAGE, b"a" * (2 * PAGE))
        bm = t1.get_bitmap(IOVA, 16 * PAGE)
        assert dirty_ranges(bm, IOVA, PAGE) == [(IOVA + 3 * PAGE, 2 * PAGE)]
        assert count_dirty(t1.get_bitmap(IOVA, 16 * PAGE)) == 0  # a read clears
        expect(errno.EINVAL, t1.get_bitmap, IOVA, 8 * PAGE)  # bisects the mapping
        expect(errno.EINVAL, t1.get_bitmap, IOVA, 16 * PAGE, 8192)  # not the minimum page size
    assert not t1.started


# --- iommufd HWPT --------------------------------------------------------------------------------

@pytest.fixture
def hwpt_env() -> Iterator[Any]:
    k = Kernel()
    vdev = k.add_device("edu", iommu_dirty_tracking=True)  # opt in: QEMU's intel-iommu (the default) has none
    ictx = k.open("/dev/iommu")
    dev = k.open(vdev.cdev)
    bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=ictx)
    k.ioctl(dev, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)
    ioas = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
    k.ioctl(ictx, ui.IOMMU_IOAS_ALLOC, ioas)
    mem = mmap.mmap(-1, 16 * PAGE)
    m = ui.iommu_ioas_map(size=ctypes.sizeof(ui.iommu_ioas_map), ioas_id=ioas.out_ioas_id,
                          flags=ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE
                          | ui.IOMMU_IOAS_MAP_WRITEABLE,
                          user_va=ctypes.addressof(ctypes.c_char.from_buffer(mem)), length=16 * PAGE, iova=IOVA)
    k.ioctl(ictx, ui.IOMMU_IOAS_MAP, m)
    hw = ui.iommu_hwpt_alloc(size=ctypes.sizeof(ui.iommu_hwpt_alloc), dev_id=bind.out_devid,
                             pt_id=ioas.out_ioas_id, flags=ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    k.ioctl(ictx, ui.IOMMU_HWPT_ALLOC, hw)
    plain = ui.iommu_hwpt_alloc(size=ctypes.sizeof(ui.iommu_hwpt_alloc), dev_id=bind.out_devid,
                                pt_id=ioas.out_ioas_id)
    k.ioctl(ictx, ui.IOMMU_HWPT_ALLOC, plain)
    att = uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt),
                                           pt_id=hw.out_hwpt_id)
    k.ioctl(dev, uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT, att)

    class Env:
        pass

    env = Env()
    env.k, env.vdev, env.ictx, env.hwpt, env.plain = k, vdev, ictx, int(hw.out_hwpt_id), int(plain.out_hwpt_id)
    yield env
    k.close(dev)
    k.close(ictx)


def test_hwpt_dirty_bitmap_and_no_clear(hwpt_env: Any) -> None:
    e = hwpt_env
    with HwptDirtyTracker(e.k, e.ictx, e.hwpt) as tr:
        e.vdev.dma_write(IOVA, b"before tracking")
        tr.set_tracking(True)  # enabling starts from a clean slate
        e.vdev.dma_write(IOVA + 7 * PAGE, b"q" * 10)
        e.vdev.dma_write(IOVA + 8 * PAGE + 100, b"r")
        first = tr.get_bitmap(IOVA, 16 * PAGE, no_clear=True)
        assert dirty_ranges(first, IOVA, PAGE) == [(IOVA + 7 * PAGE, 2 * PAGE)]
        assert tr.get_bitmap(IOVA, 16 * PAGE) == first  # NO_CLEAR left the bits
        assert count_dirty(tr.get_bitmap(IOVA, 16 * PAGE)) == 0  # the plain read cleared them
    assert not tr.enabled


def test_hwpt_dirty_negative(hwpt_env: Any) -> None:
    """SEMANTICS 2.3: iova not aligned to page_size -> EINVAL; a HWPT without dirty ops -> EOPNOTSUPP.
    A page size of 0 cannot size the bitmap: refused before the ioctl."""
    e = hwpt_env
    tr = HwptDirtyTracker(e.k, e.ictx, e.hwpt)
    tr.set_tracking(True)
    with pytest.raises(ValueError, match="page size 0"):
        tr.get_bitmap(IOVA, 16 * PAGE, 0)
    expect(errno.EINVAL, tr.get_bitmap, IOVA + PAGE, 2 * PAGE, 2 * PAGE)
    expect(errno.EINVAL, tr.get_bitmap, IOVA + 1, PAGE)
    plain = HwptDirtyTracker(e.k, e.ictx, e.plain)
    expect(errno.EOPNOTSUPP, plain.set_tracking, True)
    expect(errno.EOPNOTSUPP, plain.get_bitmap, IOVA, PAGE)
    tr.set_tracking(False)
