"""pyvfio.info: the argsz retry and the capability chain, shared by every INFO ioctl.

The retry is tested against a kernel that demands more room (as a real one does for region and IOMMU
info with capabilities); the chain parser against hand-built chains -- typed ids per domain, an unknown
id kept raw, and corrupt chains refused with EPROTO rather than half-parsed.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

import pytest

from objects_support import SparseKernel
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.errors import VfioError
from pyvfio.info import (
    DOMAIN_DEVICE, DOMAIN_IOMMU, DOMAIN_REGION, DmaAvailCap, IovaRange, IovaRangeCap, MigrationCap,
    MsixMappableCap, PciAtomicCompCap, RawCap, RegionTypeCap, SparseMmapCap, flag_names, parse_caps, query_info,
)
from pyvfio.uapi import vfio as uv

HDR = ctypes.sizeof(uv.vfio_info_cap_header)


@pytest.fixture
def sim() -> Any:
    """A fresh simulated machine (these tests plug in devices only the simulation has)."""
    from pyvfio.sim import Kernel

    return Kernel()


def chain(base: int, *caps: bytes) -> bytes:
    """Caps laid out back to back from ``base``, each header's ``next`` patched to the following one."""
    out = bytearray()
    for i, cap in enumerate(caps):
        c = bytearray(cap)
        nxt = base + len(out) + len(c) if i + 1 < len(caps) else 0
        c[4:8] = nxt.to_bytes(4, "little")
        out += c
    return bytes(out)


def hdr(cap_id: int, version: int = 1) -> uv.vfio_info_cap_header:
    return uv.vfio_info_cap_header(id=cap_id, version=version)


def test_region_caps_are_typed() -> None:
    sparse = uv.vfio_region_info_cap_sparse_mmap(header=hdr(uv.VFIO_REGION_INFO_CAP_SPARSE_MMAP), nr_areas=2)
    areas = bytes(uv.vfio_region_sparse_mmap_area(offset=0, size=0x1000)) + \
        bytes(uv.vfio_region_sparse_mmap_area(offset=0x3000, size=0x2000))
    rtype = uv.vfio_region_info_cap_type(header=hdr(uv.VFIO_REGION_INFO_CAP_TYPE), type=0x80008086, subtype=1)
    base = 32
    buf = bytes(base) + chain(base, bytes(sparse) + areas, bytes(rtype), bytes(hdr(3)))
    caps = parse_caps(buf, base, DOMAIN_REGION, fixed_size=32)
    assert caps == (SparseMmapCap(1, 1, ((0, 0x1000), (0x3000, 0x2000))), RegionTypeCap(2, 1, 0x80008086, 1),
                    MsixMappableCap(3, 1))
    assert caps[1].is_pci_vendor and "PCI vendor 0x8086" in caps[1].describe()
    assert "0x3000+0x2000" in caps[0].describe()


def test_iommu_caps_are_typed() -> None:
    rng = uv.vfio_iommu_type1_info_cap_iova_range(header=hdr(uv.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE), nr_iovas=2)
    ranges = bytes(uv.vfio_iova_range(start=0, end=0xFEDFFFFF)) + bytes(uv.vfio_iova_range(start=0xFEF00000,
                                                                                         end=(1 << 48) - 1))
    mig = uv.vfio_iommu_type1_info_cap_migration(header=hdr(2), pgsize_bitmap=0x1000, max_dirty_bitmap_size=1 << 28)
    avail = uv.vfio_iommu_type1_info_dma_avail(header=hdr(3), avail=65535)
    base = 24
    caps = parse_caps(bytes(base) + chain(base, bytes(mig), bytes(avail), bytes(rng) + ranges), base, DOMAIN_IOMMU)
    assert caps[0] == MigrationCap(2, 1, 0, 0x1000, 1 << 28)
    assert caps[1] == DmaAvailCap(3, 1, 65535)
    assert caps[2] == IovaRangeCap(1, 1, (IovaRange(0, 0xFEDFFFFF), IovaRange(0xFEF00000, (1 << 48) - 1)))
    assert 0xFEE00000 not in caps[2].ranges[0] and caps[2].ranges[1].size == (1 << 48) - 0xFEF00000


def test_same_id_means_different_things_per_domain() -> None:
    comp = uv.vfio_device_info_cap_pci_atomic_comp(header=hdr(uv.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP),
                                                   flags=uv.VFIO_PCI_ATOMIC_COMP32 | uv.VFIO_PCI_ATOMIC_COMP64)
    buf = bytes(24) + bytes(comp)
    assert parse_caps(buf, 24, DOMAIN_DEVICE) == (PciAtomicCompCap(5, 1, 3),)
    raw = parse_caps(buf, 24, DOMAIN_REGION)[0]  # id 5 in a region chain is the deprecated NVLink2 speed
    assert type(raw).__name__ == "Nvlink2LnkspdCap"
    assert "COMP32|COMP64" in parse_caps(buf, 24, DOMAIN_DEVICE)[0].describe()


def test_unknown_ids_are_kept_raw_with_their_bytes() -> None:
    unknown = bytes(hdr(0x42, version=7)) + b"\x01\x02\x03\x04\x05\x06\x07\x08"
    buf = bytes(24) + chain(24, unknown, bytes(hdr(uv.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)) + bytes(8))
    caps = parse_caps(buf, 24, DOMAIN_IOMMU)
    assert caps[0] == RawCap(0x42, 7, DOMAIN_IOMMU, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    assert isinstance(caps[1], DmaAvailCap)
    assert "unknown iommu capability id 66 v7: 8 bytes" == caps[0].describe()


@pytest.mark.parametrize("case", ["loop", "past-end", "into-fixed", "flex-past-end"])
def test_corrupt_chains_are_eproto(case: str) -> None:
    base = 24
    if case == "loop":
        buf = bytes(base) + bytes(uv.vfio_info_cap_header(id=0x42, version=1, next=base))
    elif case == "past-end":
        buf = bytes(base) + bytes(uv.vfio_info_cap_header(id=0x42, version=1, next=4096))
    elif case == "into-fixed":
        buf = bytes(base) + bytes(uv.vfio_info_cap_header(id=0x42, version=1, next=8))
    else:
        cap = uv.vfio_iommu_type1_info_cap_iova_range(header=hdr(1), nr_iovas=1000)
        buf = bytes(base) + bytes(cap)
    with pytest.raises(VfioError) as e:
        parse_caps(buf, base, DOMAIN_IOMMU, fixed_size=base, ioctl="VFIO_IOMMU_GET_INFO")
    assert e.value.errno == errno.EPROTO
    assert "VFIO_IOMMU_GET_INFO" in str(e.value) and "malformed capability chain" in str(e.value)


def test_flag_names() -> None:
    assert flag_names(uv.VfioDeviceFlag, uv.VFIO_DEVICE_FLAGS_PCI | uv.VFIO_DEVICE_FLAGS_RESET) == "RESET|PCI"
    assert flag_names(uv.VfioRegionInfoFlag, 0) == "0"
    assert flag_names(uv.VfioRegionInfoFlag, 0x1 | 0x100) == "READ|0x100"


class CountingKernel:
    """Records the argsz each GET_REGION_INFO call passes (and forwards everything)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.argsz: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        if request == uv.VFIO_DEVICE_GET_REGION_INFO:
            self.argsz.append(int(arg.argsz))
        return int(self.inner.ioctl(fd, request, arg))


def test_argsz_retry_fetches_the_chain(sim: Any) -> None:
    sim.add_device("pci", msix=8, msix_bar=0)  # BAR0 holds the MSI-X table: MSIX_MAPPABLE cap
    name = next(iter(sim.devices))
    counting = CountingKernel(sim)
    with Container(counting) as c:
        dev = c.group(sim.devices[name].group_id).device(name)
        got = query_info(counting, dev.fd, uv.VFIO_DEVICE_GET_REGION_INFO, uv.vfio_region_info,
                         domain=DOMAIN_REGION, ioctl="VFIO_DEVICE_GET_REGION_INFO", index=0)
        fixed = ctypes.sizeof(uv.vfio_region_info)
        assert counting.argsz == [fixed, fixed + HDR]  # too small, then exactly what the kernel asked for
        assert got.caps == (MsixMappableCap(3, 1),) and got.cap(MsixMappableCap) is not None
        assert got.struct.cap_offset == fixed and got.struct.flags & uv.VFIO_REGION_INFO_FLAG_CAPS
        assert got.cap(SparseMmapCap) is None and len(got.raw) == fixed + HDR
        counting.argsz.clear()
        assert dev.region(7).caps == () and counting.argsz == [fixed]  # no chain: one call


def test_region_sees_an_injected_sparse_chain_and_unknown_cap(sim: Any) -> None:
    sim.add_device("pci", bars=[{"index": 0, "size": 0x4000}])
    vdev = next(iter(sim.devices.values()))
    sk = SparseKernel(sim, 0, [(0, 0x1000), (0x3000, 0x1000)], extra_unknown_cap=True)
    with Container(sk) as c:
        dev: Device = c.group(vdev.group_id).device(vdev.address)
        bar0 = dev.region(0)
        assert sk.region_info_calls == 2  # the retry happened
        assert isinstance(bar0.caps[0], SparseMmapCap) and bar0.caps[1] == RawCap(0x77, 3, DOMAIN_REGION,
                                                                                    b"\xab\xcd\xef\x01")
        assert bar0.mmap_areas == [(0, 0x1000), (0x3000, 0x1000)]
