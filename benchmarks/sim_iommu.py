"""Simulated-kernel IOMMU figures: map+unmap pairs per second, and IOVA translations per second.

Run: python3 benchmarks/sim_iommu.py [--mappings 65536]

* map+unmap: VFIO_IOMMU_MAP_DMA + VFIO_IOMMU_UNMAP_DMA (type1v2) and IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP
  (iommufd) of one 4 KiB page, through the whole surface (argument copy, checks, pinning probe).
* translations: the domain's IOVA -> (mapping, offset) lookup that every simulated DMA does, with N
  4 KiB mappings in place, at random IOVAs; measured at several N to show the O(log n) growth.
  "cold" flushes the simulated IOTLB before each run, so every lookup walks the mapping tree (a binary
  search, O(log n)) and refills it; "warm" is the steady state once the IOTLB holds the pages.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyvfio.sim import Kernel, vfio_iommu_type1  # noqa: E402
from pyvfio.uapi import iommufd as ui  # noqa: E402
from pyvfio.uapi import vfio as uv  # noqa: E402

PAGE = 4096
REPEATS = 5


def type1_setup(k: Kernel) -> tuple[int, int, object]:
    dev = k.add_device("edu")
    container = k.open("/dev/vfio/vfio")
    group = k.open(f"/dev/vfio/{dev.group_id}")
    k.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
    k.ioctl(container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    device = k.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(dev.address.encode()))
    return container, device, dev


def bench_type1_map_unmap(k: Kernel, container: int, addr: int, n: int) -> float:
    m = uv.vfio_iommu_type1_dma_map(argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                    vaddr=addr, iova=0x100000, size=PAGE)
    u = uv.vfio_iommu_type1_dma_unmap(argsz=24, iova=0x100000, size=PAGE)
    t0 = time.perf_counter()
    for _ in range(n):
        k.ioctl(container, uv.VFIO_IOMMU_MAP_DMA, m)
        u.size = PAGE
        k.ioctl(container, uv.VFIO_IOMMU_UNMAP_DMA, u)
    return n / (time.perf_counter() - t0)


def bench_iommufd_map_unmap(k: Kernel, addr: int, n: int) -> float:
    ictx = k.open("/dev/iommu")
    alloc = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
    k.ioctl(ictx, ui.IOMMU_IOAS_ALLOC, alloc)
    flags = ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE | ui.IOMMU_IOAS_MAP_WRITEABLE
    m = ui.iommu_ioas_map(size=ctypes.sizeof(ui.iommu_ioas_map), flags=flags, ioas_id=alloc.out_ioas_id,
                          user_va=addr, length=PAGE, iova=0x100000)
    u = ui.iommu_ioas_unmap(size=ctypes.sizeof(ui.iommu_ioas_unmap), ioas_id=alloc.out_ioas_id,
                            iova=0x100000, length=PAGE)
    t0 = time.perf_counter()
    for _ in range(n):
        k.ioctl(ictx, ui.IOMMU_IOAS_MAP, m)
        u.length = PAGE
        k.ioctl(ictx, ui.IOMMU_IOAS_UNMAP, u)
    rate = n / (time.perf_counter() - t0)
    k.close(ictx)
    return rate


def bench_translations(k: Kernel, container: int, domain: object, addr: int, total: int,
                       checkpoints: list[int], lookups: int) -> list[tuple[int, str, float, float]]:
    m = uv.vfio_iommu_type1_dma_map(argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                    vaddr=addr, iova=0, size=PAGE)
    translate = domain._translate  # type: ignore[attr-defined]
    rng = random.Random(1)
    out = []
    mapped = 0
    for target in checkpoints:
        while mapped < target:
            m.vaddr = addr + mapped * PAGE
            m.iova = 0x1000000 + mapped * 2 * PAGE  # a hole between mappings: no merging, n distinct entries
            k.ioctl(container, uv.VFIO_IOMMU_MAP_DMA, m)
            mapped += 1
        iovas = [0x1000000 + rng.randrange(mapped) * 2 * PAGE + rng.randrange(PAGE - 8) for _ in range(lookups)]
        for cold in (True, False):
            rates = []
            for _ in range(REPEATS):  # best and median of several runs, as timeit does: this machine is shared
                if cold:
                    domain.iotlb.clear()  # type: ignore[attr-defined]  # every lookup walks the mapping tree
                t0 = time.perf_counter()
                for iova in iovas:
                    translate(iova, 8, uv.VFIO_DMA_MAP_FLAG_READ)
                rates.append(lookups / (time.perf_counter() - t0))
            out.append((mapped, "cold" if cold else "warm", max(rates), statistics.median(rates)))
    assert len(domain.mappings()) == total  # type: ignore[attr-defined]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mappings", type=int, default=65536)
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--lookups", type=int, default=200000)
    args = parser.parse_args()
    vfio_iommu_type1.dma_entry_limit = max(vfio_iommu_type1.dma_entry_limit, args.mappings + 1)
    buf = mmap.mmap(-1, args.mappings * PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    k = Kernel()
    container, device, dev = type1_setup(k)
    print(f"type1v2   map+unmap pairs/s: {bench_type1_map_unmap(k, container, addr, args.pairs):>10,.0f}")
    print(f"iommufd   map+unmap pairs/s: {bench_iommufd_map_unmap(k, addr, args.pairs):>10,.0f}")
    checkpoints = sorted({min(n, args.mappings) for n in (1024, 8192, args.mappings)})
    t0 = time.perf_counter()
    results = bench_translations(k, container, dev.domain, addr, args.mappings, checkpoints, args.lookups)
    print(f"(mapped {args.mappings} pages one ioctl each in {time.perf_counter() - t0:.1f} s incl. lookups)")
    for n, kind, best, median in results:
        print(f"translations/s with {n:>6} mappings, IOTLB {kind}: {best:>12,.0f} best, {median:>12,.0f} median "
              f"of {REPEATS}")
    k.close(device)
    k.close(container)
    return 0


if __name__ == "__main__":
    sys.exit(main())
