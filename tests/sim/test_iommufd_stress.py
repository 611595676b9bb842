"""A seeded random walk over IOAS and device operations, checked against a shadow model.

Each step maps (user memory or a memfd), copies, unmaps, attaches, replaces
or detaches, predicts the outcome from SEMANTICS 2.2/2.4 with a few lines of
plain Python, and compares: the same success or errno, the same bytes
unmapped, and device DMA (through the model) reading exactly the memory the
shadow says backs each IOVA.  After every step the model's invariants hold
and at the end nothing is left open.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import mmap
import os
import random
from typing import Any, Optional

import pytest

import pyvfio.sim
from pyvfio.uapi import vfio as uv

from test_iommufd import PAGE, U64_MAX, Ictx, addr_of, check_model, memfd, proc_fds
from test_iommufd_device import Cdev

Area = tuple[int, int, str, int]  # iova, length, backing ("va" | "file"), byte offset in the backing


class Shadow:
    """What the IOASes should contain: sorted areas per IOAS."""

    def __init__(self) -> None:
        self.areas: dict[int, list[Area]] = {}

    def overlaps(self, ioas: int, iova: int, length: int) -> bool:
        return any(a[0] < iova + length and iova < a[0] + a[1] for a in self.areas[ioas])

    def unmap(self, ioas: int, iova: int, length: int) -> tuple[int, int]:
        """(errno or 0, bytes removed), removing whole areas in order until one sticks out."""
        last = iova + length - 1
        removed = 0
        for a in sorted(self.areas[ioas]):
            if a[0] > last or a[0] + a[1] - 1 < iova:
                continue
            if a[0] < iova or a[0] + a[1] - 1 > last:
                return errno.ENOENT, removed
            self.areas[ioas].remove(a)
            removed += a[1]
        return (0 if removed else errno.ENOENT), removed

    def find(self, ioas: int, iova: int) -> Optional[Area]:
        for a in self.areas[ioas]:
            if a[0] <= iova < a[0] + a[1]:
                return a
        return None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_walk_matches_shadow(seed: int) -> None:
    """SEMANTICS 2.2/2.4 end to end: map/map_file/copy/unmap/attach/replace/detach agree with the shadow."""
    rng = random.Random(seed)
    k = pyvfio.sim.Kernel()
    dev = k.add_device("edu")
    fds_before = proc_fds()
    mem = mmap.mmap(-1, 64 * PAGE)
    va = addr_of(mem)
    mem[:] = bytes(rng.randrange(256) for _ in range(64 * PAGE))
    mfd = memfd(64)
    os.pwrite(mfd, bytes(rng.randrange(256) for _ in range(64 * PAGE)), 0)
    ictx = Ictx(k)
    cdev = Cdev(k, dev.cdev)
    cdev.bind(ictx.fd)
    ioases = [ictx.ioas(), ictx.ioas()]
    shadow = Shadow()
    for i in ioases:
        shadow.areas[i] = []
    attached: Optional[int] = None
    vdev = k.devices[dev.address]
    done: collections.Counter[str] = collections.Counter()

    def backing(area: Area, iova: int, n: int) -> bytes:
        off = area[3] + iova - area[0]
        return bytes(mem[off: off + n]) if area[2] == "va" else os.pread(mfd, n, off)

    for _ in range(400):
        op = rng.choice(["map", "map", "file", "copy", "unmap", "unmap", "attach", "detach", "dma", "dma"])
        ioas = rng.choice(ioases)
        iova = rng.randrange(64) * PAGE
        length = rng.randrange(1, 5) * PAGE
        off = rng.randrange(60) * PAGE
        try:
            if op in ("map", "file"):
                ok = not shadow.overlaps(ioas, iova, length)
                try:
                    if op == "map":
                        ictx.map(ioas, va + off, length, iova)
                    else:
                        ictx.map_file(ioas, mfd, off, length, iova)
                    assert ok, "map over an existing area succeeded"
                    shadow.areas[ioas].append((iova, length, "va" if op == "map" else "file", off))
                    done[op] += 1
                except OSError as e:
                    assert not ok and e.errno == errno.EEXIST, e
            elif op == "copy":
                src = rng.choice(shadow.areas[ioas]) if shadow.areas[ioas] else None
                dst = ioases[1 - ioases.index(ioas)]
                if src is None:
                    continue
                cut = rng.randrange(src[1] // PAGE) * PAGE
                n = rng.randrange(1, (src[1] - cut) // PAGE + 1) * PAGE
                ok = not shadow.overlaps(dst, iova, n)
                from pyvfio.uapi import iommufd as ui

                c = ui.iommu_ioas_copy(size=ctypes.sizeof(ui.iommu_ioas_copy), flags=ui.IOMMU_IOAS_MAP_FIXED_IOVA | 6,
                                       dst_ioas_id=dst, src_ioas_id=ioas, length=n, src_iova=src[0] + cut,
                                       dst_iova=iova)
                try:
                    ictx.ioctl(ui.IOMMU_IOAS_COPY, c)
                    assert ok
                    shadow.areas[dst].append((iova, n, src[2], src[3] + cut))
                    done["copy"] += 1
                except OSError as e:
                    assert not ok and e.errno == errno.EEXIST, e
            elif op == "unmap":
                if rng.random() < 0.1:
                    want, removed = 0, sum(a[1] for a in shadow.areas[ioas])
                    shadow.areas[ioas] = []
                    assert ictx.unmap(ioas, 0, U64_MAX) == removed
                    continue
                want, removed = shadow.unmap(ioas, iova, length * 2)
                try:
                    got = ictx.unmap(ioas, iova, length * 2)
                    assert want == 0 and got == removed
                    done["unmap"] += 1
                except OSError as e:
                    assert want == e.errno, e
                    done["unmap-enoent"] += 1
            elif op == "attach":
                try:
                    cdev.attach(ioas)
                    attached = ioas
                except OSError as e:  # an IOAS with sub-page areas cannot take the domain
                    raise AssertionError(f"attach failed: {e}")
            elif op == "detach":
                cdev.detach()
                attached = None
            elif op == "dma" and attached is not None and shadow.areas[attached]:
                area = rng.choice(shadow.areas[attached])
                n = rng.randrange(1, 64)
                iova = area[0] + rng.randrange(area[1] - n)
                assert shadow.find(attached, iova) == area
                assert vdev.dma_read(iova, n) == backing(area, iova, n)
                done["dma"] += 1
        finally:
            check_model(k)
        if attached is not None:
            assert vdev.domain is not None
        else:
            assert vdev.domain is None
    assert min(done[x] for x in ("map", "file", "copy", "unmap", "unmap-enoent", "dma")) >= 5, done
    cdev.close()
    ictx.close()
    os.close(mfd)
    assert k.open_files() == []
    assert proc_fds() == fds_before


def test_huge_pages_off_refused_once_domain_has_mappings() -> None:
    """SEMANTICS 2.2 (iopt_disable_large_pages): SET HUGE_PAGES=0 on an IOAS whose domain holds mappings
    -> EINVAL; without mappings it is accepted."""
    from pyvfio.uapi import iommufd as ui

    from test_iommufd import expect

    k = pyvfio.sim.Kernel()
    dev = k.add_device("edu")
    ictx = Ictx(k)
    cdev = Cdev(k, dev.cdev)
    cdev.bind(ictx.fd)
    ioas = ictx.ioas()
    cdev.attach(ioas)
    mem = mmap.mmap(-1, PAGE)
    ictx.map(ioas, addr_of(mem), PAGE, 0x10000)
    HP, SET = ui.IOMMU_OPTION_HUGE_PAGES, ui.IOMMU_OPTION_OP_SET
    expect(errno.EINVAL, ictx.option, HP, SET, ioas, 0)
    ictx.unmap(ioas, 0, U64_MAX)
    ictx.option(HP, SET, ioas, 0)
    assert ictx.option(HP, ui.IOMMU_OPTION_OP_GET, ioas) == 0
    cdev.close()
    ictx.close()
    assert k.open_files() == []


def test_bind_blocks_group_and_unbound_io_einval(kernel: Any, edu: Any) -> None:
    """SEMANTICS 2.4 corrected (device_cdev.c: vfio_device_block_group is called from BIND, not open): an
    open cdev does not block the group, but BIND while the group is open -> EBUSY and a bound cdev makes
    the group open EBUSY.  Before BIND, read/write -> EINVAL."""
    if edu.cdev is None:
        pytest.skip("no VFIO cdev")
    from test_iommufd import expect

    ictx = Ictx(kernel)
    fd = kernel.open(edu.cdev)
    expect(errno.EINVAL, kernel.pread, fd, 4, uv.VFIO_PCI_CONFIG_REGION_INDEX << 40)
    expect(errno.EINVAL, kernel.pwrite, fd, b"\0\0", uv.VFIO_PCI_CONFIG_REGION_INDEX << 40)
    group = kernel.open(f"/dev/vfio/{edu.group}")
    cdev = Cdev.__new__(Cdev)
    cdev.k, cdev.fd = kernel, fd
    expect(errno.EBUSY, cdev.bind, ictx.fd)
    kernel.close(group)
    cdev.bind(ictx.fd)
    expect(errno.EBUSY, kernel.open, f"/dev/vfio/{edu.group}")
    kernel.close(fd)
    kernel.close(kernel.open(f"/dev/vfio/{edu.group}"))
    ictx.close()
    check_model(kernel)
