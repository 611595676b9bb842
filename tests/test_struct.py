"""Flexible-array allocation: sizes, argsz/size bookkeeping, shared memory, bad input."""

from __future__ import annotations

import ctypes

import pytest

from pyvfio.uapi import iommufd, vfio
from pyvfio.uapi.struct import alloc_flex, flex_array, flex_field, struct_bytes


def test_irq_set_with_trailing_eventfds() -> None:
    s = alloc_flex(vfio.vfio_irq_set, 8, index=vfio.VFIO_PCI_MSIX_IRQ_INDEX, count=2)
    assert ctypes.sizeof(s) == s.argsz == 28
    data = flex_array(s)
    assert len(data) == 8
    fds = (ctypes.c_int32 * 2).from_buffer(data)
    fds[0], fds[1] = 7, -1
    raw = struct_bytes(s)
    assert raw[20:24] == (7).to_bytes(4, "little") and raw[24:28] == b"\xff" * 4
    assert s.index == vfio.VFIO_PCI_MSIX_IRQ_INDEX and s.count == 2


def test_no_flex_header_and_struct_elements() -> None:
    r = alloc_flex(vfio.vfio_iommu_type1_dma_unmap, 0)
    assert r.argsz == ctypes.sizeof(vfio.vfio_iommu_type1_dma_unmap) == 24
    # iommufd.h has no flexible arrays: variable data goes through user pointers
    assert iommufd.iommu_ioas_allow_iovas.allowed_iovas.size == 8
    sparse = alloc_flex(vfio.vfio_region_info_cap_sparse_mmap, 3, nr_areas=3)
    areas = flex_array(sparse)
    assert len(areas) == 3 and ctypes.sizeof(sparse) == 16 + 3 * 16
    areas[2].offset, areas[2].size = 0x1000, 0x2000
    assert struct_bytes(sparse)[48:64] == (0x1000).to_bytes(8, "little") + (0x2000).to_bytes(8, "little")
    # no argsz/size as first field: nothing is set behind the caller's back
    assert sparse.header.id == 0


def test_flex_array_bounds_and_errors() -> None:
    s = alloc_flex(vfio.vfio_device_feature, 4)
    assert len(flex_array(s, 2)) == 2
    with pytest.raises(ValueError):
        flex_array(s, 5)
    with pytest.raises(ValueError):
        alloc_flex(vfio.vfio_device_feature, -1)
    with pytest.raises(TypeError):
        flex_field(vfio.vfio_region_info)
    with pytest.raises(TypeError):
        alloc_flex(vfio.vfio_region_info, 1)


def test_repr_names_every_field() -> None:
    text = repr(vfio.vfio_region_info(argsz=32, index=1, size=0x1000))
    assert text.startswith("vfio_region_info(argsz=0x20, flags=0, index=1")
    assert "size=0x1000" in text
