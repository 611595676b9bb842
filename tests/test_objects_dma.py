"""pyvfio.dma: buffers that own their memory, the IOVA allocator, and mappings that undo themselves.

The mapping tests run through both IOMMU backends with one body (the ``ctx`` fixture yields a type1
container or an iommufd IOAS with the edu attached), on the kernel the fixtures give.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Iterator

import pytest

from conftest import EduDevice
from objects_support import open_fds
from pyvfio.discovery import OpenDevice, iommufd_available, open_device
from pyvfio.dma import DEFAULT_IOVA_BASE, DmaBuffer, DmaMapper, IommuContext, IovaAllocator, page_align
from pyvfio.errors import VfioError
from pyvfio.info import IovaRange

PAGE = 4096


# ---------------------------------------------------------------------------------------------------------
# DmaBuffer


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "anonymous"])
def test_buffer_owns_page_aligned_memory(memfd: bool) -> None:
    before = open_fds()
    with DmaBuffer(5000, memfd=memfd) as buf:
        assert buf.size == 2 * PAGE and len(buf) == 2 * PAGE
        assert buf.addr % PAGE == 0
        assert (buf.fd >= 0) == memfd
        if memfd:
            assert os.readlink(f"/proc/self/fd/{buf.fd}").startswith("/memfd:pyvfio-dma")
        buf.view[10:14] = b"abcd"
        assert buf.read(10, 4) == b"abcd" and buf.mmap[10:14] == b"abcd"
        buf.write(PAGE, b"xyz")
        assert bytes(buf.view[PAGE:PAGE + 3]) == b"xyz"
        buf.fill(0xAA)
        assert buf.read(0, 2) == b"\xaa\xaa"
        assert "DmaBuffer 0x2000 bytes" in repr(buf)
    assert buf.closed and open_fds() == before and repr(buf) == "<DmaBuffer closed, 0x2000 bytes>"
    buf.close()  # idempotent
    with pytest.raises(ValueError):
        buf.read(0, 1)


def test_buffer_refuses_to_free_memory_a_view_still_uses() -> None:
    buf = DmaBuffer(PAGE)
    part = buf.view[0:8]
    with pytest.raises(BufferError, match="still alive"):
        buf.close()
    assert not buf.closed and buf.fd == -1  # the fd is gone already; the memory stays until the view goes
    part.release()
    buf.close()
    assert buf.closed


def test_buffer_bounds_and_size() -> None:
    with pytest.raises(ValueError):
        DmaBuffer(0)
    with DmaBuffer(PAGE) as buf:
        with pytest.raises(IndexError):
            buf.read(PAGE - 2, 4)
        with pytest.raises(IndexError):
            buf.write(-1, b"x")
    assert page_align(1) == PAGE and page_align(PAGE) == PAGE and page_align(0x1001, 0x1000) == 0x2000


# ---------------------------------------------------------------------------------------------------------
# IovaAllocator

RANGES = [IovaRange(0, 0xFEDFFFFF), IovaRange(0xFEF00000, (1 << 48) - 1)]


def test_allocator_first_fit_above_the_floor() -> None:
    a = IovaAllocator()
    first = a.allocate(PAGE, RANGES)
    assert first == DEFAULT_IOVA_BASE
    second = a.allocate(3 * PAGE, RANGES)
    assert second == first + PAGE
    a.release(first)
    assert a.allocate(PAGE, RANGES) == first  # the hole is reused
    assert a.allocate(PAGE, RANGES, align=0x10000) % 0x10000 == 0
    assert len(a) == 3 and a.used()[0] == (first, PAGE)


def test_allocator_skips_the_reserved_window_and_honours_limits() -> None:
    a = IovaAllocator()
    # just below the MSI window: 1 MiB does not fit before 0xFEE00000 after lo, so it lands above the window
    iova = a.allocate(0x100000, RANGES, lo=0xFED80000)
    assert iova == 0xFEF00000
    with pytest.raises(VfioError) as e:
        a.allocate(0x100000, RANGES, lo=0xFED80000, hi=0xFEF00000)
    assert e.value.errno == errno.ENOSPC and "IOVA allocation" in str(e.value) and "0xfef00000" in str(e.value)
    assert a.allocate(PAGE, RANGES, hi=1 << 28) < 1 << 28


def test_allocator_reserve_detects_overlap() -> None:
    a = IovaAllocator()
    a.reserve(0x200000, 2 * PAGE)
    with pytest.raises(VfioError) as e:
        a.reserve(0x201000, PAGE)
    assert e.value.errno == errno.EEXIST
    assert a.overlaps(0x1FF000, 2 * PAGE) == (0x200000, 2 * PAGE)
    assert a.overlaps(0x202000, PAGE) is None
    assert a.allocate(0x100000, [IovaRange(0x200000, 0x3FFFFF)], lo=0) == 0x202000  # right after the reserved part
    with pytest.raises(VfioError):  # and no second MiB fits in what is left
        a.allocate(0x100000, [IovaRange(0x200000, 0x3FFFFF)], lo=0)
    with pytest.raises(ValueError):
        a.allocate(PAGE, RANGES, align=3)


# ---------------------------------------------------------------------------------------------------------
# mappings, both backends


@pytest.fixture(params=["iommufd", "type1"])
def od(request: pytest.FixtureRequest, kernel: Any, edu: EduDevice) -> Iterator[OpenDevice]:
    if request.param == "iommufd" and (edu.cdev is None or not iommufd_available(kernel)):
        pytest.skip("no iommufd on this kernel")
    with open_device(kernel, edu.address, backend=request.param) as opened:
        yield opened


def test_both_backends_are_iommu_contexts(od: OpenDevice) -> None:
    assert isinstance(od.iommu, IommuContext) and isinstance(od.iommu, DmaMapper)
    assert od.iommu.iova_alignment >= 1


def test_map_and_unmap_by_with_block(od: OpenDevice) -> None:
    ctx = od.iommu
    with DmaBuffer(4 * PAGE) as buf:
        with ctx.map(buf) as m:
            assert m.mapped and m.size == 4 * PAGE and m.iova == DEFAULT_IOVA_BASE
            assert ctx.mappings == [m] and "mapped" in repr(m)
            with pytest.raises(OSError) as e:  # the IOMMU refuses an overlap: EEXIST on both backends
                ctx.map_dma(buf.addr, m.iova + PAGE, PAGE)
            assert e.value.errno == errno.EEXIST
        assert not m.mapped and ctx.mappings == [] and "unmapped" in repr(m)
        m.unmap()  # idempotent
        again = ctx.map(buf, m.iova)  # the IOVA is free again in the allocator and in the kernel
        again.unmap()


def test_dma_owns_its_buffer(od: OpenDevice) -> None:
    before = open_fds()
    m = od.iommu.dma(PAGE, limit=1 << 28)
    assert not m.buffer.closed and m.owns_buffer
    m.view[0:3] = b"abc"
    assert m.read(0, 3) == b"abc" and m.vaddr == m.buffer.addr
    m.unmap()
    assert m.buffer.closed and open_fds() == before


def test_map_arguments_are_checked_before_the_kernel(od: OpenDevice) -> None:
    with DmaBuffer(2 * PAGE) as buf:
        with pytest.raises(ValueError):
            od.iommu.map(buf, offset=100)
        with pytest.raises(ValueError):
            od.iommu.map(buf, size=3 * PAGE)
        with pytest.raises(ValueError):
            od.iommu.map(buf, 0x10000000, limit=0x10000000)
    with pytest.raises(ValueError, match="closed"):
        od.iommu.map(buf)


def test_a_failed_map_releases_its_iova(od: OpenDevice) -> None:
    ctx = od.iommu
    with DmaBuffer(PAGE) as buf:
        with pytest.raises(OSError) as e:  # the MSI window is reserved: the kernel refuses the fixed IOVA
            ctx.map(buf, 0xFEE00000)
        assert e.value.errno == errno.EINVAL
        assert ctx.iova_allocator.overlaps(0xFEE00000, PAGE) is None and ctx.mappings == []


def test_closing_the_context_unmaps_and_frees_owned_buffers(kernel: Any, edu: EduDevice) -> None:
    before = open_fds()
    with open_device(kernel, edu.address) as opened:
        owned = opened.dma(2 * PAGE)
        buf = DmaBuffer(PAGE)
        borrowed = opened.map(buf)
    assert not owned.mapped and owned.buffer.closed
    assert not borrowed.mapped and not buf.closed  # a caller's buffer stays the caller's
    buf.close()
    assert open_fds() == before


def test_map_by_file_on_iommufd(kernel: Any, edu: EduDevice) -> None:
    if edu.cdev is None or not iommufd_available(kernel):
        pytest.skip("no iommufd on this kernel")
    with open_device(kernel, edu.address, backend="iommufd") as opened:
        assert opened.iommufd is not None
        with opened.dma(PAGE, by_file=True) as m:
            assert m.by_file and "by file" in repr(m)
            opened.iommufd.change_process()  # only file mappings: allowed
        with opened.dma(PAGE) as m2:
            with pytest.raises(OSError) as e:
                opened.iommufd.change_process()
            assert e.value.errno == errno.EINVAL and "only IOAS_MAP_FILE" in str(e.value)
        with DmaBuffer(PAGE, memfd=False) as anon:
            with pytest.raises(ValueError, match="memfd"):
                opened.map(anon, by_file=True)
    assert not m2.mapped


def test_map_by_file_is_refused_on_type1(kernel: Any, edu: EduDevice) -> None:
    with open_device(kernel, edu.address, backend="type1") as opened, DmaBuffer(PAGE) as buf:
        with pytest.raises(VfioError) as e:
            opened.map(buf, by_file=True)
        assert e.value.errno == errno.EOPNOTSUPP
        assert opened.iommu.mappings == [] and opened.iommu.iova_allocator.used() == []


def test_buffer_creation_failure_closes_the_memfd(monkeypatch: pytest.MonkeyPatch) -> None:
    before = open_fds()

    def no_room(fd: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "no room for the memfd")

    monkeypatch.setattr(os, "ftruncate", no_room)
    with pytest.raises(OSError) as e:
        DmaBuffer(PAGE)
    assert e.value.errno == errno.ENOSPC and open_fds() == before


def test_a_raw_unmap_keeps_the_mapping_objects_truthful(od: OpenDevice) -> None:
    before = open_fds()
    ctx = od.iommu
    a = ctx.dma(PAGE)
    b = ctx.dma(PAGE)
    assert ctx.unmap_dma(a.iova, a.size) == PAGE  # by address, not through the mapping object
    assert not a.mapped and a.buffer.closed and ctx.mappings == [b]
    assert ctx.iova_allocator.overlaps(a.iova, PAGE) is None
    a.unmap()  # nothing left to do: no second unmap reaches the kernel (which would refuse it on iommufd)
    b.unmap()
    assert open_fds() == before
