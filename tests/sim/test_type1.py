"""The type1 IOMMU backend of the simulated kernel: SEMANTICS 1.2-1.5 through the syscall surface.

Every bad input asserts the errno the kernel returns (vfio_iommu_type1.c) and
that the failed call left no mapping behind.  Positive flows map real memory
of this process and let the simulated device DMA into it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import resource
from typing import Any, Callable, Iterator, Optional

import pytest

import pyvfio.sim
from pyvfio.sim import vfio_iommu_type1 as type1
from pyvfio.sim.container import VfioContainer
from pyvfio.sim.errno import KernelError
from pyvfio.sim.vfio_iommu_type1 import VfioGroupType
from pyvfio.uapi import vfio as uv

PAGE = 4096
R, W, V = uv.VFIO_DMA_MAP_FLAG_READ, uv.VFIO_DMA_MAP_FLAG_WRITE, uv.VFIO_DMA_MAP_FLAG_VADDR
RW = R | W
MSI_LO, MSI_HI = 0xFEE00000, 0xFEEFFFFF
APERTURE_END = (1 << 39) - 1  # QEMU 7.2 intel-iommu (aw-bits 39): IOVA_RANGE ends 0x7fffffffff on 7.3.4
U64_MAX = (1 << 64) - 1
NONCANONICAL = 0x8000_0000_0000_0000


def addr_of(buf: Any) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def expect(err: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn`` fails with ``err``: an OSError from the surface, or a KernelError from a device-side model call."""
    with pytest.raises((OSError, KernelError)) as e:
        fn(*args, **kwargs)
    got: Optional[int] = getattr(e.value, "errno", None)
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got or 0)}: {e.value}"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def guarded_buffer(npages: int) -> tuple[mmap.mmap, int]:
    """``npages`` of anonymous memory followed by an inaccessible guard page, and its address."""
    mem = mmap.mmap(-1, (npages + 1) * PAGE)
    va = addr_of(mem)
    assert _libc.mprotect(va + npages * PAGE, PAGE, 0) == 0  # PROT_NONE
    return mem, va


class Env:
    """A kernel with one edu device whose group sits in a type1 container, plus 64 pages of memory to map."""

    def __init__(self, iommu_type: int = uv.VFIO_TYPE1v2_IOMMU, npages: int = 64, devices: int = 1,
                 emulated: bool = False) -> None:
        self.k = pyvfio.sim.Kernel()
        self.devs = [self.k.add_device("edu") for _ in range(devices)]
        self.dev = self.devs[0]
        if emulated:
            self.k.vfio.groups[self.dev.group_id].type = VfioGroupType.VFIO_EMULATED_IOMMU
        self.cfd = self.k.open("/dev/vfio/vfio")
        self.gfd = self.k.open(f"/dev/vfio/{self.dev.group}")
        self.k.ioctl(self.gfd, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.cfd))
        self.k.ioctl(self.cfd, uv.VFIO_SET_IOMMU, iommu_type)
        self.container = next(f for f in self.k.open_files() if isinstance(f, VfioContainer))
        self.mem, self.va = guarded_buffer(npages)
        self.extra_fds: list[int] = []

    @property
    def iommu(self) -> type1.VfioIommu:
        iommu = self.container.iommu
        assert iommu is not None
        return iommu

    def map(self, iova: int, size: int = PAGE, offset: int = 0, flags: int = RW,
            vaddr: Optional[int] = None, argsz: int = 32) -> None:
        m = uv.vfio_iommu_type1_dma_map(argsz=argsz, flags=flags, iova=iova, size=size,
                                        vaddr=self.va + offset if vaddr is None else vaddr)
        self.k.ioctl(self.cfd, uv.VFIO_IOMMU_MAP_DMA, m)

    def unmap(self, iova: int, size: int, flags: int = 0, argsz: int = 24) -> int:
        u = uv.vfio_iommu_type1_dma_unmap(argsz=argsz, flags=flags, iova=iova, size=size)
        self.k.ioctl(self.cfd, uv.VFIO_IOMMU_UNMAP_DMA, u)
        return int(u.size)

    def count(self) -> int:
        return len(self.iommu.dma_list)

    def close(self) -> None:
        self.container.check_invariants()
        for fd in self.extra_fds + [self.gfd, self.cfd]:
            self.k.close(fd)
        assert self.k.open_files() == []
        assert self.container.iommu_data is None and not self.container.group_list
        self.mem.close()


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


@pytest.fixture
def env_v1() -> Iterator[Env]:
    e = Env(uv.VFIO_TYPE1_IOMMU)
    yield e
    e.close()


# =====================================================================================================
# VFIO_IOMMU_GET_INFO (SEMANTICS "Info capability chain protocol", 1.5)
# =====================================================================================================
def get_info(env: Env, argsz: int, room: int = 256) -> Any:
    buf = (ctypes.c_uint8 * room)()
    info = uv.vfio_iommu_type1_info.from_buffer(buf)
    info.argsz = argsz
    info.cap_offset = 0xDEAD
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_GET_INFO, buf)
    return buf


def caps(buf: Any) -> list[tuple[int, int, int]]:
    """(offset, id, version) of every capability in the chain."""
    info = uv.vfio_iommu_type1_info.from_buffer(buf)
    out, off = [], info.cap_offset
    while off:
        hdr = uv.vfio_info_cap_header.from_buffer(buf, off)
        out.append((off, hdr.id, hdr.version))
        off = hdr.next
    return out


def test_get_info_short_argsz_reports_120_and_no_caps(env: Env) -> None:
    """SEMANTICS cap-chain protocol + NOTES: argsz 24 -> success, CAPS flag, argsz 120, cap_offset 0."""
    buf = get_info(env, 24)
    info = uv.vfio_iommu_type1_info.from_buffer(buf)
    assert info.argsz == 120
    assert info.flags == uv.VFIO_IOMMU_INFO_PGSIZES | uv.VFIO_IOMMU_INFO_CAPS
    assert info.iova_pgsizes == 0x40201000
    assert info.cap_offset == 0
    assert bytes(buf[24:120]) == bytes(96)


def test_get_info_minimal_argsz_copies_back_only_argsz_bytes(env: Env) -> None:
    """The fixed part is copied back with min(argsz, sizeof(info)): argsz 16 leaves cap_offset untouched."""
    buf = get_info(env, 16)
    info = uv.vfio_iommu_type1_info.from_buffer(buf)
    assert info.argsz == 120 and info.iova_pgsizes == 0x40201000
    assert info.cap_offset == 0xDEAD


def test_get_info_argsz_below_16_einval(env: Env) -> None:
    """GET_INFO: argsz < offsetofend(iova_pgsizes) -> EINVAL."""
    expect(errno.EINVAL, get_info, env, 15)


def test_get_info_struct_shorter_than_16_bytes_efault(env: Env) -> None:
    """The kernel reads 16 bytes; a caller passing 8 makes copy_from_user fault."""
    hdr = uv.vfio_info_cap_header()
    expect(errno.EFAULT, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_GET_INFO, hdr)


def test_get_info_caps_walked_migration_dma_avail_iova(env: Env) -> None:
    """SEMANTICS 1.5: caps built in order MIGRATION, DMA_AVAIL, IOVA_RANGE; iova ranges skip the MSI window."""
    env.map(0x100000)
    buf = get_info(env, 120)
    info = uv.vfio_iommu_type1_info.from_buffer(buf)
    assert info.argsz == 120 and info.cap_offset == 24
    chain = caps(buf)
    assert [(o, i) for o, i, _v in chain] == [(24, 2), (56, 3), (72, 1)]
    assert all(v == 1 for _o, _i, v in chain)
    mig = uv.vfio_iommu_type1_info_cap_migration.from_buffer(buf, 24)
    assert mig.pgsize_bitmap == PAGE and mig.max_dirty_bitmap_size == 1 << 28 and mig.flags == 0
    avail = uv.vfio_iommu_type1_info_dma_avail.from_buffer(buf, 56)
    assert avail.avail == 65535 - 1
    iova = uv.vfio_iommu_type1_info_cap_iova_range.from_buffer(buf, 72)
    assert iova.nr_iovas == 2
    ranges = (uv.vfio_iova_range * 2).from_buffer(buf, 72 + ctypes.sizeof(iova))
    assert [(r.start, r.end) for r in ranges] == [(0, MSI_LO - 1), (MSI_HI + 1, APERTURE_END)]


def test_get_info_retry_protocol_with_exact_buffer(env: Env) -> None:
    """Userspace retry: call with sizeof(info), grow to the argsz returned, call again -> chain present."""
    info = uv.vfio_iommu_type1_info(argsz=ctypes.sizeof(uv.vfio_iommu_type1_info))
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_GET_INFO, info)
    need = info.argsz
    buf = (ctypes.c_uint8 * need)()
    uv.vfio_iommu_type1_info.from_buffer(buf).argsz = need
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_GET_INFO, buf)
    assert [i for _o, i, _v in caps(buf)] == [2, 3, 1]


def test_get_info_argsz_larger_than_buffer_efault(env: Env) -> None:
    """argsz claiming 120 bytes while passing 24: copying the caps out faults (EFAULT)."""
    info = uv.vfio_iommu_type1_info(argsz=120)
    expect(errno.EFAULT, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_GET_INFO, info)


def test_get_info_dma_avail_tracks_mappings(env: Env) -> None:
    """DMA_AVAIL = dma_entry_limit - mappings."""
    for i in range(3):
        env.map(0x100000 + i * PAGE, offset=i * PAGE)
    assert uv.vfio_iommu_type1_info_dma_avail.from_buffer(get_info(env, 120), 56).avail == 65532
    env.unmap(0x100000, 3 * PAGE)
    assert uv.vfio_iommu_type1_info_dma_avail.from_buffer(get_info(env, 120), 56).avail == 65535


# =====================================================================================================
# VFIO_IOMMU_MAP_DMA (SEMANTICS 1.2)
# =====================================================================================================
BAD_MAPS = [
    # (id, errno, kwargs for Env.map)
    ("argsz_below_32", errno.EINVAL, dict(iova=0x100000, argsz=31)),
    ("argsz_zero", errno.EINVAL, dict(iova=0x100000, argsz=0)),
    ("unknown_flag_8", errno.EINVAL, dict(iova=0x100000, flags=RW | 8)),
    ("unknown_flag_high", errno.EINVAL, dict(iova=0x100000, flags=R | (1 << 31))),
    ("no_read_no_write", errno.EINVAL, dict(iova=0x100000, flags=0)),
    ("vaddr_with_read", errno.EINVAL, dict(iova=0x100000, flags=V | R)),
    ("vaddr_with_write", errno.EINVAL, dict(iova=0x100000, flags=V | W)),
    ("size_zero", errno.EINVAL, dict(iova=0x100000, size=0)),
    ("size_unaligned", errno.EINVAL, dict(iova=0x100000, size=PAGE + 1)),
    ("size_one", errno.EINVAL, dict(iova=0x100000, size=1)),
    ("iova_unaligned", errno.EINVAL, dict(iova=0x100001)),
    ("iova_half_page", errno.EINVAL, dict(iova=0x100800)),
    ("vaddr_unaligned", errno.EINVAL, dict(iova=0x100000, offset=8)),
    ("iova_wraps", errno.EINVAL, dict(iova=U64_MAX - PAGE + 1, size=2 * PAGE)),
    ("vaddr_wraps", errno.EINVAL, dict(iova=0x100000, size=2 * PAGE, vaddr=U64_MAX - PAGE + 1)),
    ("iova_in_msi_window", errno.EINVAL, dict(iova=MSI_LO)),
    ("iova_ends_in_msi_window", errno.EINVAL, dict(iova=MSI_LO - PAGE, size=2 * PAGE)),
    ("iova_spans_msi_window", errno.EINVAL, dict(iova=MSI_LO - PAGE, size=0x102000, vaddr=NONCANONICAL)),
    ("iova_above_aperture", errno.EINVAL, dict(iova=APERTURE_END + 1)),
    ("iova_crosses_aperture_end", errno.EINVAL, dict(iova=APERTURE_END + 1 - PAGE, size=2 * PAGE)),
    ("vaddr_unmapped", errno.EFAULT, dict(iova=0x100000, vaddr=NONCANONICAL)),
    ("vaddr_null", errno.EFAULT, dict(iova=0x100000, vaddr=0)),
    ("vaddr_runs_past_buffer", errno.EFAULT, dict(iova=0x100000, offset=63 * PAGE, size=2 * PAGE)),
    ("vaddr_update_nothing_mapped", errno.ENOENT, dict(iova=0x100000, flags=V)),
]


@pytest.mark.parametrize("case", BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_map_dma_bad_input(env: Env, case: tuple[str, int, dict[str, Any]]) -> None:
    """SEMANTICS 1.2: each bad MAP_DMA argument fails with the kernel's errno and maps nothing."""
    _name, err, kwargs = case
    expect(err, env.map, **kwargs)
    assert env.count() == 0
    assert env.iommu.dma_avail == 65535
    env.container.check_invariants()


def test_map_dma_argument_shorter_than_struct_efault(env: Env) -> None:
    """copy_from_user of 32 bytes from a 24-byte argument faults."""
    u = uv.vfio_iommu_type1_dma_unmap(argsz=32, flags=RW, iova=0x100000, size=PAGE)
    expect(errno.EFAULT, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_MAP_DMA, u)


def test_map_dma_by_value_efault(env: Env) -> None:
    """MAP_DMA takes a pointer; an integer argument cannot be read (EFAULT)."""
    expect(errno.EFAULT, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_MAP_DMA, 0x1000)


@pytest.mark.parametrize("iova,size", [(0x100000, PAGE), (0xFF000, 2 * PAGE), (0x101000, PAGE),
                                       (0x100000 + PAGE, 4 * PAGE), (0xF0000, 0x100000)],
                         ids=["exact", "covers_start", "inside", "overlaps_end", "contains"])
def test_map_dma_overlap_eexist(env: Env, iova: int, size: int) -> None:
    """SEMANTICS 1.2: any overlap with an existing mapping -> EEXIST; the existing one is untouched."""
    env.map(0x100000, 2 * PAGE)
    expect(errno.EEXIST, env.map, iova, size, 8 * PAGE)
    assert env.count() == 1


def test_map_dma_entry_limit_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEMANTICS 1.2: dma_entry_limit (module parameter, default 65535) reached -> ENOSPC."""
    assert type1.dma_entry_limit == 65535
    monkeypatch.setattr(type1, "dma_entry_limit", 3)
    e = Env()
    try:
        for i in range(3):
            e.map(0x100000 + i * PAGE, offset=i * PAGE)
        expect(errno.ENOSPC, e.map, 0x200000, PAGE, 4 * PAGE)
        assert uv.vfio_iommu_type1_info_dma_avail.from_buffer(get_info(e, 120), 56).avail == 0
        e.unmap(0x100000, PAGE)
        e.map(0x200000, PAGE, 4 * PAGE)
    finally:
        e.close()


@contextlib.contextmanager
def unprivileged(k: pyvfio.sim.Kernel, memlock_pages: Optional[int] = None) -> Iterator[None]:
    """Run the simulated caller without capabilities (as a non-root uid), optionally with a small RLIMIT_MEMLOCK."""
    old_uid, old_limit = k.task.uid, resource.getrlimit(resource.RLIMIT_MEMLOCK)
    k.task.uid = 1000
    if memlock_pages is not None:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock_pages * PAGE, old_limit[1]))
    try:
        yield
    finally:
        k.task.uid = old_uid
        resource.setrlimit(resource.RLIMIT_MEMLOCK, old_limit)


def test_map_dma_over_memlock_limit_enomem(env: Env) -> None:
    """SEMANTICS 1.2: pinning beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK -> ENOMEM, partial mapping removed."""
    with unprivileged(env.k, memlock_pages=8):
        env.map(0x100000, 4 * PAGE)
        expect(errno.ENOMEM, env.map, 0x200000, 8 * PAGE, 8 * PAGE)
        assert env.count() == 1
        env.map(0x200000, 4 * PAGE, 8 * PAGE)
        expect(errno.ENOMEM, env.map, 0x300000, PAGE, 16 * PAGE)
    assert type1.locked_vm(env.k.vfio, env.k.task.pid) == 8
    env.unmap(0, 1 << 40)
    assert type1.locked_vm(env.k.vfio, env.k.task.pid) == 0


def test_map_dma_cap_ipc_lock_bypasses_memlock(env: Env) -> None:
    """CAP_IPC_LOCK (root) pins past RLIMIT_MEMLOCK."""
    old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (PAGE, old[1]))
    try:
        env.map(0x100000, 16 * PAGE)
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, old)
    assert env.count() == 1


def test_map_dma_positive_records_mapping(env: Env) -> None:
    """A mapping records pid/mm, vaddr, iova, size and prot, and DMA translates through it."""
    env.map(0x100000, 4 * PAGE, flags=R)
    env.map(0x200000, 4 * PAGE, 4 * PAGE, flags=W)
    dmas = env.iommu.mappings()
    assert [(d.iova, d.size, d.vaddr, d.prot, d.pid, d.vaddr_invalid) for d in dmas] == [
        (0x100000, 4 * PAGE, env.va, type1.IOMMU_READ, env.k.task.pid, False),
        (0x200000, 4 * PAGE, env.va + 4 * PAGE, type1.IOMMU_WRITE, env.k.task.pid, False)]


def test_map_dma_adjacent_mappings_and_last_aperture_page(env: Env) -> None:
    """Back-to-back ranges are fine, and so are both edges of both usable ranges."""
    env.map(0x100000)
    env.map(0x101000, offset=PAGE)
    env.map(0x0, offset=2 * PAGE)
    env.map(MSI_LO - PAGE, offset=3 * PAGE)
    env.map(MSI_HI + 1, offset=4 * PAGE)
    env.map(APERTURE_END + 1 - PAGE, offset=5 * PAGE)
    assert env.count() == 6


# =====================================================================================================
# Device DMA through the domain (the domain object of a type1 container)
# =====================================================================================================
def test_dma_write_and_read_reach_process_memory(env: Env) -> None:
    """Device DMA translates IOVA -> vaddr and reads/writes this process's memory, across mappings."""
    env.map(0x100000, 2 * PAGE, 0)
    env.map(0x102000, 2 * PAGE, 8 * PAGE)  # IOVA-contiguous, not VA-contiguous
    data = bytes(range(256)) * 40
    env.dev.dma_write(0x100000 + 100, data)
    assert env.mem[100:100 + 2 * PAGE - 100] == data[:2 * PAGE - 100]
    assert env.mem[8 * PAGE: 8 * PAGE + len(data) - (2 * PAGE - 100)] == data[2 * PAGE - 100:]
    assert env.dev.dma_read(0x100000 + 100, len(data)) == data


def test_dma_unmapped_iova_efault(env: Env) -> None:
    """A device access to an unmapped IOVA is an IOMMU fault: EFAULT, nothing written."""
    env.map(0x100000, PAGE)
    expect(errno.EFAULT, env.dev.dma_read, 0x200000, 4)
    expect(errno.EFAULT, env.dev.dma_write, 0x100000 + PAGE - 2, b"abcd")
    assert env.mem[PAGE - 2:PAGE] == b"\0\0"


def test_dma_write_to_read_only_mapping_eperm(env: Env) -> None:
    """A device write to a mapping without WRITE is blocked: EPERM (as vfio_dma_rw answers)."""
    env.map(0x100000, PAGE, flags=R)
    env.map(0x200000, PAGE, PAGE, flags=W)
    expect(errno.EPERM, env.dev.dma_write, 0x100000, b"x")
    expect(errno.EPERM, env.dev.dma_read, 0x200000, 1)
    assert env.dev.dma_read(0x100000, 1) == b"\0"
    env.dev.dma_write(0x200000, b"y")
    assert env.mem[PAGE:PAGE + 1] == b"y"


def test_dma_blocked_without_container(env: Env) -> None:
    """After the group leaves the container its devices have no domain: DMA is refused."""
    env.map(0x100000)
    env.k.ioctl(env.gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    with pytest.raises(KernelError):
        env.dev.dma_read(0x100000, 4)
    env.k.ioctl(env.gfd, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(env.cfd))
    env.k.ioctl(env.cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)


# =====================================================================================================
# VFIO_IOMMU_UNMAP_DMA (SEMANTICS 1.3)
# =====================================================================================================
BAD_UNMAPS = [
    ("argsz_below_24", dict(iova=0x100000, size=PAGE, argsz=23)),
    ("unknown_flag_8", dict(iova=0x100000, size=PAGE, flags=8)),
    ("dirty_with_all", dict(iova=0, size=0, flags=uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
                            | uv.VFIO_DMA_UNMAP_FLAG_ALL, argsz=48)),
    ("dirty_with_vaddr", dict(iova=0x100000, size=PAGE, flags=uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
                              | uv.VFIO_DMA_UNMAP_FLAG_VADDR, argsz=48)),
    ("iova_unaligned", dict(iova=0x100800, size=PAGE)),
    ("all_with_iova", dict(iova=PAGE, size=0, flags=uv.VFIO_DMA_UNMAP_FLAG_ALL)),
    ("all_with_size", dict(iova=0, size=PAGE, flags=uv.VFIO_DMA_UNMAP_FLAG_ALL)),
    ("size_zero", dict(iova=0x100000, size=0)),
    ("size_unaligned", dict(iova=0x100000, size=PAGE + 1)),
    ("wraps", dict(iova=U64_MAX - PAGE + 1, size=2 * PAGE)),
    ("v2_starts_inside_mapping", dict(iova=0x101000, size=PAGE)),
    ("v2_ends_inside_mapping", dict(iova=0x100000, size=PAGE)),
    ("v2_covers_inside_out", dict(iova=0xFF000, size=2 * PAGE)),
    ("vaddr_starts_inside_mapping", dict(iova=0x101000, size=PAGE, flags=uv.VFIO_DMA_UNMAP_FLAG_VADDR)),
]


@pytest.mark.parametrize("case", BAD_UNMAPS, ids=[c[0] for c in BAD_UNMAPS])
def test_unmap_dma_bad_input_einval(env: Env, case: tuple[str, dict[str, Any]]) -> None:
    """SEMANTICS 1.3: bad UNMAP_DMA arguments and v2 bisections -> EINVAL, size not written back, nothing unmapped."""
    env.map(0x100000, 2 * PAGE)
    kwargs = case[1]
    u = uv.vfio_iommu_type1_dma_unmap(argsz=kwargs.get("argsz", 24), flags=kwargs.get("flags", 0),
                                      iova=kwargs["iova"], size=kwargs["size"])
    expect(errno.EINVAL, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_UNMAP_DMA, u)
    assert u.size == kwargs["size"], "the kernel copies size back only on success"
    assert env.count() == 1 and not env.iommu.vaddr_invalid_count


def test_unmap_dma_short_argument_efault(env: Env) -> None:
    """copy_from_user of the 24-byte head from a shorter argument faults."""
    expect(errno.EFAULT, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_UNMAP_DMA, ctypes.c_uint64(24))


def test_unmap_dma_whole_mappings_size_written_back(env: Env) -> None:
    """SEMANTICS 1.3: a range may cover several whole mappings; size = bytes unmapped."""
    env.map(0x100000, 2 * PAGE)
    env.map(0x104000, PAGE, 2 * PAGE)
    env.map(0x200000, PAGE, 3 * PAGE)
    assert env.unmap(0x100000, 0x10000) == 3 * PAGE
    assert [d.iova for d in env.iommu.mappings()] == [0x200000]


def test_unmap_dma_v2_empty_range_succeeds_with_zero(env: Env) -> None:
    """SEMANTICS 1.3 (v2): success with size 0 only when nothing is mapped in the range."""
    env.map(0x100000)
    assert env.unmap(0x200000, 0x10000) == 0
    assert env.count() == 1


def test_unmap_dma_v1_start_inside_mapping_unmaps_nothing(env_v1: Env) -> None:
    """SEMANTICS 1.3 (v1): a request starting inside a mapping succeeds with 0 unmapped."""
    env_v1.map(0x100000, 4 * PAGE)
    assert env_v1.unmap(0x101000, PAGE) == 0
    assert env_v1.count() == 1


def test_unmap_dma_v1_covering_first_page_unmaps_whole_mapping(env_v1: Env) -> None:
    """SEMANTICS 1.3 (v1): covering a mapping's first iova unmaps all of it; size reports the real amount."""
    env_v1.map(0x100000, 4 * PAGE)
    assert env_v1.unmap(0x100000, PAGE) == 4 * PAGE
    assert env_v1.count() == 0


def test_unmap_dma_all(env: Env) -> None:
    """SEMANTICS 1.3: FLAG_ALL with iova 0, size 0 unmaps everything (VFIO_UNMAP_ALL)."""
    for i in range(5):
        env.map(0x100000 * (i + 1), PAGE, i * PAGE)
    env.map(MSI_HI + 1, 2 * PAGE, 8 * PAGE)
    assert env.unmap(0, 0, uv.VFIO_DMA_UNMAP_FLAG_ALL) == 7 * PAGE
    assert env.count() == 0 and env.iommu.dma_avail == 65535


def test_map_unmap_round_trip_many(env: Env) -> None:
    """Map and unmap in a loop: counts, avail and pin accounting come back to zero."""
    for rnd in range(3):
        for i in range(32):
            env.map(0x100000 + i * 0x10000, PAGE, (i % 64) * PAGE, flags=R if i % 2 else RW)
        env.container.check_invariants()
        for i in range(0, 32, 2):
            assert env.unmap(0x100000 + i * 0x10000, 2 * 0x10000) == 2 * PAGE
    assert env.count() == 0
    assert type1.locked_vm(env.k.vfio, env.k.task.pid) == 0


# =====================================================================================================
# VADDR invalidation and re-registration (SEMANTICS 1.2, 1.3, 1.4; NOTES "CPR legacy interface")
# =====================================================================================================
VADDR_UNMAP = uv.VFIO_DMA_UNMAP_FLAG_VADDR


def test_vaddr_invalidate_and_reregister(env: Env) -> None:
    """UNMAP_FLAG_VADDR keeps the mapping but invalidates its vaddr; MAP_FLAG_VADDR gives it a new one."""
    env.map(0x100000, 2 * PAGE)
    assert env.unmap(0x100000, 2 * PAGE, VADDR_UNMAP) == 2 * PAGE
    assert env.count() == 1 and env.iommu.vaddr_invalid_count == 1
    env.map(0x100000, 2 * PAGE, 16 * PAGE, flags=V)
    dma = env.iommu.mappings()[0]
    assert dma.vaddr == env.va + 16 * PAGE and not dma.vaddr_invalid
    assert env.iommu.vaddr_invalid_count == 0
    env.dev.dma_write(0x100000, b"new home")
    assert env.mem[16 * PAGE:16 * PAGE + 8] == b"new home"


def test_vaddr_invalidate_all(env: Env) -> None:
    """QEMU's unmap-all-vaddr: VADDR|ALL invalidates every mapping and reports their total size."""
    env.map(0x100000, PAGE)
    env.map(0x200000, 2 * PAGE, PAGE)
    assert env.unmap(0, 0, VADDR_UNMAP | uv.VFIO_DMA_UNMAP_FLAG_ALL) == 3 * PAGE
    assert env.iommu.vaddr_invalid_count == 2
    env.map(0x100000, PAGE, flags=V)
    env.map(0x200000, 2 * PAGE, PAGE, flags=V)
    assert env.iommu.vaddr_invalid_count == 0


def test_vaddr_invalidate_twice_einval_with_rollback(env: Env) -> None:
    """SEMANTICS 1.3: meeting an already-invalid vaddr rolls back this call's invalidations -> EINVAL."""
    env.map(0x100000, PAGE)
    env.map(0x200000, PAGE, PAGE)
    env.unmap(0x200000, PAGE, VADDR_UNMAP)
    u = uv.vfio_iommu_type1_dma_unmap(argsz=24, flags=VADDR_UNMAP, iova=0, size=0x300000)
    expect(errno.EINVAL, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_UNMAP_DMA, u)
    assert u.size == 0x300000
    a, b = env.iommu.mappings()
    assert not a.vaddr_invalid and b.vaddr_invalid and env.iommu.vaddr_invalid_count == 1
    expect(errno.EINVAL, env.unmap, 0x200000, PAGE, VADDR_UNMAP)


@pytest.mark.parametrize("iova,size,err", [
    (0x100000, PAGE, errno.EINVAL),          # smaller than the mapping
    (0x100000, 4 * PAGE, errno.EINVAL),      # larger than the mapping
    (0x101000, PAGE, errno.EINVAL),          # inside, not at its start
    (0x300000, 2 * PAGE, errno.ENOENT),      # nothing there
], ids=["smaller", "larger", "offset", "absent"])
def test_map_vaddr_must_match_exactly(env: Env, iova: int, size: int, err: int) -> None:
    """SEMANTICS 1.2: MAP_FLAG_VADDR needs an exact iova/size match (EINVAL) of an existing mapping (ENOENT)."""
    env.map(0x100000, 2 * PAGE)
    env.unmap(0x100000, 2 * PAGE, VADDR_UNMAP)
    expect(err, env.map, iova, size, 8 * PAGE, V)
    assert env.iommu.vaddr_invalid_count == 1


def test_map_vaddr_on_valid_mapping_einval(env: Env) -> None:
    """SEMANTICS 1.2 / NOTES: re-registering a vaddr that is still valid -> EINVAL (also the second time)."""
    env.map(0x100000, PAGE)
    expect(errno.EINVAL, env.map, 0x100000, PAGE, PAGE, V)
    env.unmap(0x100000, PAGE, VADDR_UNMAP)
    env.map(0x100000, PAGE, PAGE, V)
    expect(errno.EINVAL, env.map, 0x100000, PAGE, PAGE, V)


def test_map_vaddr_does_not_pin_new_address(env: Env) -> None:
    """A VADDR update only records the address: no pinning, so even an unmapped one is accepted."""
    env.map(0x100000, PAGE)
    env.unmap(0x100000, PAGE, VADDR_UNMAP)
    env.map(0x100000, PAGE, vaddr=NONCANONICAL, flags=V)
    expect(errno.EFAULT, env.dev.dma_read, 0x100000, 1)


def test_unmap_of_invalid_vaddr_allowed(env: Env) -> None:
    """SEMANTICS 1.4: vfio_remove_dma drops an invalid mapping and its count; attach works again after."""
    env.map(0x100000, PAGE)
    env.unmap(0x100000, PAGE, VADDR_UNMAP)
    assert env.unmap(0x100000, PAGE) == PAGE
    assert env.iommu.vaddr_invalid_count == 0 and env.count() == 0


def test_device_dma_continues_while_vaddr_invalid(env: Env) -> None:
    """SEMANTICS 1.4 + NOTES: an invalid vaddr does not block physical device DMA; the pages stay mapped."""
    env.map(0x100000, PAGE)
    env.unmap(0x100000, PAGE, VADDR_UNMAP)
    env.dev.dma_write(0x100000, b"still here")
    assert env.mem[:10] == b"still here"
    assert env.dev.dma_read(0x100000, 10) == b"still here"


def test_attach_group_while_vaddr_invalid_ebusy() -> None:
    """SEMANTICS 1.4: vfio_iommu_type1_attach_group with vaddr_invalid_count != 0 -> EBUSY."""
    e = Env(devices=2)
    try:
        g2 = e.k.open(f"/dev/vfio/{e.devs[1].group}")
        e.extra_fds.append(g2)
        e.map(0x100000, PAGE)
        e.unmap(0x100000, PAGE, VADDR_UNMAP)
        expect(errno.EBUSY, e.k.ioctl, g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        status = uv.vfio_group_status(argsz=8)
        e.k.ioctl(g2, uv.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == uv.VFIO_GROUP_FLAGS_VIABLE, "a failed attach releases DMA ownership"
        e.map(0x100000, PAGE, flags=V)
        e.k.ioctl(g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        assert e.devs[1].domain is e.iommu
        e.devs[1].dma_write(0x100000, b"second group")
        assert e.mem[:12] == b"second group"
    finally:
        e.close()


def test_check_extension_update_vaddr_depends_on_state() -> None:
    """SEMANTICS 1.4 + NOTES: UPDATE_VADDR is 0 before SET_IOMMU, 1 after TYPE1v2 (and TYPE1); UNMAP_ALL always 1."""
    k = pyvfio.sim.Kernel()
    dev = k.add_device("edu")
    cfd = k.open("/dev/vfio/vfio")
    gfd = k.open(f"/dev/vfio/{dev.group}")
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UNMAP_ALL) == 1
    k.ioctl(gfd, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(cfd))
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0
    k.ioctl(cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 1
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UNMAP_ALL) == 1
    k.close(gfd)
    assert k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0, "last group gone: back to no backend"
    k.close(cfd)
    e = Env(uv.VFIO_TYPE1_IOMMU)
    assert e.k.ioctl(e.cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 1
    e.close()


# -- emulated-IOMMU (mdev-like) groups -------------------------------------------------------------------
@pytest.fixture
def env_mdev() -> Iterator[Env]:
    e = Env(emulated=True)
    yield e
    e.close()


def test_emulated_group_update_vaddr_extension_zero(env_mdev: Env) -> None:
    """SEMANTICS 1.4: CHECK_EXTENSION(UPDATE_VADDR) is 0 when an emulated (mdev) group is in the container."""
    assert env_mdev.k.ioctl(env_mdev.cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0
    assert env_mdev.k.ioctl(env_mdev.cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UNMAP_ALL) == 1


def test_emulated_group_unmap_vaddr_ebusy(env_mdev: Env) -> None:
    """SEMANTICS 1.3 / pitfall 2: UNMAP_FLAG_VADDR with an mdev group attached -> EBUSY (not EIO)."""
    env_mdev.map(0x100000)
    expect(errno.EBUSY, env_mdev.unmap, 0x100000, PAGE, VADDR_UNMAP)
    expect(errno.EBUSY, env_mdev.unmap, 0, 0, VADDR_UNMAP | uv.VFIO_DMA_UNMAP_FLAG_ALL)
    assert env_mdev.iommu.vaddr_invalid_count == 0


def test_emulated_only_container_has_no_iova_limits(env_mdev: Env) -> None:
    """No IOMMU domain: an empty iova list allows any iova, no IOVA_RANGE cap, pgsizes PAGE_MASK, no pinning."""
    env_mdev.map(MSI_LO)  # the MSI window is only reserved by a real IOMMU
    env_mdev.map(1 << 60, vaddr=NONCANONICAL)  # not pinned, so not checked
    info = uv.vfio_iommu_type1_info.from_buffer(get_info(env_mdev, 24))
    assert info.iova_pgsizes == 0xFFFFFFFFFFFFF000
    assert info.argsz == 24 + 32 + 16
    assert [i for _o, i, _v in caps(get_info(env_mdev, info.argsz))] == [2, 3]


def test_emulated_device_dma_rw_path(env_mdev: Env) -> None:
    """An mdev's accesses go through vfio_dma_rw: READ permission needed even to write, unmapped iova EINVAL."""
    env_mdev.map(0x100000, PAGE)
    env_mdev.map(0x200000, PAGE, PAGE, flags=W)
    env_mdev.dev.dma_write(0x100000, b"mdev")
    assert env_mdev.mem[:4] == b"mdev"
    assert env_mdev.dev.dma_read(0x100000, 4) == b"mdev"
    expect(errno.EPERM, env_mdev.dev.dma_write, 0x200000, b"x")
    expect(errno.EINVAL, env_mdev.dev.dma_read, 0x300000, 1)


def test_dma_rw_while_vaddr_invalid_ebusy(env: Env) -> None:
    """SEMANTICS 1.4: vfio_iommu_type1_dma_rw refuses (EBUSY) while any vaddr is invalid (model-level call)."""
    env.map(0x100000)
    env.unmap(0x100000, PAGE, VADDR_UNMAP)
    expect(errno.EBUSY, env.iommu.vfio_iommu_type1_dma_rw, 0x100000, bytearray(4), write=False)


def test_first_physical_group_pins_mappings_made_without_domain() -> None:
    """vfio_iommu_replay: joining an emulated-only container pins earlier mappings; a bad vaddr fails the attach."""
    e = Env(devices=2, emulated=True)
    try:
        g2 = e.k.open(f"/dev/vfio/{e.devs[1].group}")
        e.extra_fds.append(g2)
        e.map(0x100000, PAGE)
        e.map(0x200000, PAGE, vaddr=NONCANONICAL)
        expect(errno.EFAULT, e.k.ioctl, g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        e.unmap(0x200000, PAGE)
        e.map(MSI_LO, PAGE, PAGE)
        expect(errno.EINVAL, e.k.ioctl, g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        e.unmap(MSI_LO, PAGE)
        e.k.ioctl(g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        assert all(d.iommu_mapped for d in e.iommu.mappings())
        assert e.iommu.pgsize_bitmap == 0x40201000
        e.container.check_invariants()
    finally:
        e.close()


# =====================================================================================================
# VFIO_IOMMU_DIRTY_PAGES and UNMAP with GET_DIRTY_BITMAP (SEMANTICS 1.5, 1.3)
# =====================================================================================================
class DirtyGet(ctypes.Structure):
    _fields_ = [("hdr", uv.vfio_iommu_type1_dirty_bitmap), ("get", uv.vfio_iommu_type1_dirty_bitmap_get)]


class UnmapBitmap(ctypes.Structure):
    _fields_ = [("unmap", uv.vfio_iommu_type1_dma_unmap), ("bitmap", uv.vfio_bitmap)]


def dirty(env: Env, flags: int, argsz: int = 8) -> None:
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_DIRTY_PAGES, uv.vfio_iommu_type1_dirty_bitmap(argsz=argsz, flags=flags))


START, STOP, GET = (uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
                    uv.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)


def get_bitmap(env: Env, iova: int, size: int, words: int = 4, pgsize: int = PAGE,
               bsize: Optional[int] = None, data: Optional[int] = None, argsz: int = 48,
               flags: int = GET) -> list[int]:
    bits = (ctypes.c_uint64 * words)()
    arg = DirtyGet()
    arg.hdr.argsz, arg.hdr.flags = argsz, flags
    arg.get.iova, arg.get.size = iova, size
    arg.get.bitmap.pgsize = pgsize
    arg.get.bitmap.size = words * 8 if bsize is None else bsize
    arg.get.bitmap.data = ctypes.cast(ctypes.addressof(bits) if data is None else data, ctypes.POINTER(ctypes.c_uint64))
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_DIRTY_PAGES, arg)
    return list(bits)


def test_dirty_pages_v1_eacces(env_v1: Env) -> None:
    """SEMANTICS 1.5: dirty tracking on a non-v2 container -> EACCES (before any argument check)."""
    expect(errno.EACCES, dirty, env_v1, START)
    expect(errno.EACCES, dirty, env_v1, 0, 0)


@pytest.mark.parametrize("flags,argsz", [(START, 7), (8, 8), (0, 8), (START | STOP, 8), (STOP | GET, 8),
                                         (START | STOP | GET, 8)],
                         ids=["short_argsz", "unknown_flag", "no_flag", "start_stop", "stop_get", "all_three"])
def test_dirty_pages_bad_flags_einval(env: Env, flags: int, argsz: int) -> None:
    """SEMANTICS 1.5: unknown flags, short argsz, or not exactly one flag -> EINVAL."""
    expect(errno.EINVAL, dirty, env, flags, argsz)
    assert not env.iommu.dirty_page_tracking


def test_dirty_pages_start_stop_idempotent(env: Env) -> None:
    """SEMANTICS 1.5: START allocates bitmaps for every mapping (idempotent); STOP frees them (idempotent)."""
    env.map(0x100000, 4 * PAGE)
    dirty(env, STOP)
    dirty(env, START)
    dirty(env, START)
    assert env.iommu.dirty_page_tracking and env.iommu.mappings()[0].bitmap == 0
    dirty(env, STOP)
    dirty(env, STOP)
    assert not env.iommu.dirty_page_tracking and env.iommu.mappings()[0].bitmap is None


BAD_GETS = [
    ("argsz_without_range", dict(argsz=8)),
    ("argsz_short_range", dict(argsz=47)),
    ("range_overflows", dict(iova=U64_MAX - PAGE + 1, size=2 * PAGE)),
    ("pgsize_2m", dict(pgsize=0x200000)),
    ("pgsize_zero", dict(pgsize=0)),
    ("iova_unaligned", dict(iova=0x100800)),
    ("size_zero", dict(size=0)),
    ("size_unaligned", dict(size=PAGE + 8)),
    ("bitmap_size_zero", dict(bsize=0)),
    ("bitmap_too_small", dict(size=65 * PAGE, words=1)),
    ("bitmap_too_large", dict(bsize=(1 << 28) + 8)),
    ("bitmap_kernel_address", dict(data=0xFFFF_8880_0000_0000)),
    ("range_starts_inside_mapping", dict(iova=0x101000, size=PAGE)),
    ("range_ends_inside_mapping", dict(iova=0x100000, size=PAGE)),
]


@pytest.mark.parametrize("case", BAD_GETS, ids=[c[0] for c in BAD_GETS])
def test_dirty_get_bitmap_bad_input_einval(env: Env, case: tuple[str, dict[str, Any]]) -> None:
    """SEMANTICS 1.5: each bad GET_BITMAP argument -> EINVAL."""
    env.map(0x100000, 2 * PAGE)
    dirty(env, START)
    kwargs = dict(iova=0x100000, size=2 * PAGE)
    kwargs.update(case[1])
    expect(errno.EINVAL, get_bitmap, env, **kwargs)


def test_dirty_get_bitmap_tracking_off_einval(env: Env) -> None:
    """SEMANTICS 1.5: GET_BITMAP with tracking off -> EINVAL."""
    env.map(0x100000, 2 * PAGE)
    expect(errno.EINVAL, get_bitmap, env, 0x100000, 2 * PAGE)


def test_dirty_get_bitmap_unwritable_bitmap_efault(env: Env) -> None:
    """Copying bits to an unmapped (but user-range) bitmap address faults: EFAULT."""
    env.map(0x100000, 2 * PAGE)
    dirty(env, START)
    expect(errno.EFAULT, get_bitmap, env, 0x100000, 2 * PAGE, data=0x1000)


@pytest.fixture
def precise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's precise dirty tracking (opt-in): only pages simulated DMA wrote are reported dirty."""
    monkeypatch.setattr(type1, "precise_dirty_tracking", True)


def test_dirty_bitmap_after_device_dma_write_and_get_clears(env: Env, precise: None) -> None:
    """SEMANTICS 1.5 (precise model): bits for pages simulated DMA wrote, one per page from iova; a read
    clears them."""
    env.map(0x100000, 8 * PAGE)
    env.map(0x110000, 4 * PAGE, 8 * PAGE)
    dirty(env, START)
    env.dev.dma_write(0x100000 + 2 * PAGE + 10, b"x" * (PAGE + 1))  # pages 2 and 3
    env.dev.dma_write(0x110000 + 3 * PAGE, b"y")  # page 3 of the second mapping = bit 16 + 3
    env.dev.dma_read(0x100000 + 6 * PAGE, 8)  # reads do not dirty
    assert get_bitmap(env, 0x100000, 0x20000) == [(1 << 2) | (1 << 3) | (1 << 19), 0, 0, 0]
    assert get_bitmap(env, 0x100000, 0x20000) == [0, 0, 0, 0]


def test_dirty_bitmap_unaligned_mapping_offsets_merge(env: Env, precise: None) -> None:
    """update_user_bitmap: mappings sharing a u64 word of the user bitmap are OR-ed together."""
    env.map(0x100000, 3 * PAGE)
    env.map(0x103000, 2 * PAGE, 3 * PAGE)
    dirty(env, START)
    env.dev.dma_write(0x100000, b"a")
    env.dev.dma_write(0x104000, b"b")
    assert get_bitmap(env, 0x100000, 5 * PAGE, words=1) == [(1 << 0) | (1 << 4)]


def test_dirty_bitmap_mapping_created_while_tracking(env: Env, precise: None) -> None:
    """SEMANTICS 1.2: a mapping made while tracking is on gets a bitmap of its own."""
    dirty(env, START)
    env.map(0x100000, 2 * PAGE)
    env.dev.dma_write(0x101000, b"z")
    assert get_bitmap(env, 0x100000, 2 * PAGE) == [2, 0, 0, 0]


def test_dirty_bitmap_kernel_mode_reports_all_pages(env: Env) -> None:
    """By default the model behaves as 7.3.4's type1 does for a vfio-pci device (measured in the VM lane):
    every mapped page is dirty on every read, whether or not the device wrote, and reading does not clear."""
    assert type1.precise_dirty_tracking is False
    env.map(0x100000, 3 * PAGE)
    env.map(0x110000, 2 * PAGE, 3 * PAGE)
    dirty(env, START)
    assert get_bitmap(env, 0x100000, 3 * PAGE) == [0b111, 0, 0, 0]
    assert get_bitmap(env, 0x100000, 3 * PAGE) == [0b111, 0, 0, 0]
    env.dev.dma_write(0x101000, b"z")
    assert get_bitmap(env, 0x100000, 0x12000) == [0b111 | (0b11 << 16), 0, 0, 0]


def test_unmap_with_dirty_bitmap(env: Env, precise: None) -> None:
    """SEMANTICS 1.3 (precise model): GET_DIRTY_BITMAP copies the dirty bits of the unmapped range before
    removal."""
    env.map(0x100000, 4 * PAGE)
    dirty(env, START)
    env.dev.dma_write(0x100000 + 3 * PAGE, b"q")
    bits = (ctypes.c_uint64 * 1)()
    arg = UnmapBitmap()
    arg.unmap.argsz, arg.unmap.flags = 48, uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
    arg.unmap.iova, arg.unmap.size = 0x100000, 4 * PAGE
    arg.bitmap.pgsize, arg.bitmap.size = PAGE, 8
    arg.bitmap.data = ctypes.cast(ctypes.addressof(bits), ctypes.POINTER(ctypes.c_uint64))
    env.k.ioctl(env.cfd, uv.VFIO_IOMMU_UNMAP_DMA, arg)
    assert arg.unmap.size == 4 * PAGE and bits[0] == 0b1000 and env.count() == 0


@pytest.mark.parametrize("field,value,argsz,tracking", [
    ("argsz", None, 40, True),            # no room for the vfio_bitmap
    ("pgsize", 0x10000, 48, True),        # not the IOMMU page size
    ("size", 0, 48, True),                # bitmap size 0
    ("size", 8, 48, False),               # tracking off
], ids=["argsz_no_bitmap", "pgsize", "bitmap_size_zero", "tracking_off"])
def test_unmap_with_dirty_bitmap_bad_input_einval(env: Env, field: str, value: Optional[int], argsz: int,
                                                  tracking: bool) -> None:
    """SEMANTICS 1.3: GET_DIRTY_BITMAP needs room for vfio_bitmap, a right pgsize and size, and tracking on."""
    env.map(0x100000, 4 * PAGE)
    if tracking:
        dirty(env, START)
    bits = (ctypes.c_uint64 * 1)()
    arg = UnmapBitmap()
    arg.unmap.argsz, arg.unmap.flags = argsz, uv.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
    arg.unmap.iova, arg.unmap.size = 0x100000, 4 * PAGE
    arg.bitmap.pgsize, arg.bitmap.size = PAGE, 8
    arg.bitmap.data = ctypes.cast(ctypes.addressof(bits), ctypes.POINTER(ctypes.c_uint64))
    if value is not None:
        setattr(arg.bitmap, field, value)
    expect(errno.EINVAL, env.k.ioctl, env.cfd, uv.VFIO_IOMMU_UNMAP_DMA, arg)
    assert env.count() == 1


def test_detaching_a_group_while_tracking_marks_everything_dirty() -> None:
    """Removing a group that could have dirtied memory unseen marks every page dirty (populate_bitmap_full)."""
    e = Env(devices=2)
    try:
        g2 = e.k.open(f"/dev/vfio/{e.devs[1].group}")
        e.k.ioctl(g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        e.map(0x100000, 2 * PAGE)
        dirty(e, START)
        e.k.close(g2)
        assert get_bitmap(e, 0x100000, 2 * PAGE) == [0b11, 0, 0, 0]
    finally:
        e.close()


# =====================================================================================================
# Lifetime: mappings die with the container's last group
# =====================================================================================================
def test_no_mappings_left_after_container_and_group_close() -> None:
    """SEMANTICS 1.1.8: the last group detach releases type1 and every mapping; locked pages are returned."""
    e = Env()
    for i in range(8):
        e.map(0x100000 + i * PAGE, PAGE, i * PAGE)
    iommu = e.iommu
    e.k.close(e.cfd)
    assert len(iommu.dma_list) == 8, "the group still holds the container"
    e.dev.dma_write(0x100000, b"alive")
    e.k.close(e.gfd)
    assert len(iommu.dma_list) == 0 and iommu.released
    assert e.dev.domain is None
    assert e.k.open_files() == []
    assert type1.locked_vm(e.k.vfio, e.k.task.pid) == 0
    assert all(not i.dma_list for i in type1.live_iommus() if i.released)
    e.mem.close()


def test_invariants_hold_across_a_mixed_sequence(env: Env) -> None:
    """A scripted mix of successful and failing calls keeps every model invariant."""
    ops: list[Callable[[], Any]] = [
        lambda: env.map(0x100000, 4 * PAGE),
        lambda: env.map(0x102000, 4 * PAGE),
        lambda: env.unmap(0x101000, PAGE),
        lambda: env.unmap(0x100000, 4 * PAGE, VADDR_UNMAP),
        lambda: env.unmap(0x100000, 4 * PAGE, VADDR_UNMAP),
        lambda: dirty(env, START),
        lambda: env.map(0x200000, PAGE, 8 * PAGE),
        lambda: env.map(0x100000, 4 * PAGE, flags=V),
        lambda: env.unmap(0, 0, uv.VFIO_DMA_UNMAP_FLAG_ALL),
    ]
    for op in ops:
        with contextlib.suppress(OSError):
            op()
        env.container.check_invariants()
    assert env.count() == 0


# =====================================================================================================
# Model-based: random MAP / UNMAP / VADDR sequences against a shadow of the v2 rules
# =====================================================================================================
def _shadow_unmap(shadow: dict[int, list[Any]], iova: int, size: int, vaddr_only: bool) -> tuple[int, int]:
    """(errno, bytes) the v2 rules of SEMANTICS 1.3 predict for an unmap or vaddr invalidation."""
    last = iova + size - 1
    for start, (sz, _inv) in shadow.items():
        if start < iova <= start + sz - 1:
            return errno.EINVAL, 0
        if start < last < start + sz - 1:
            return errno.EINVAL, 0
    hit = sorted(s for s in shadow if iova <= s <= last)
    if vaddr_only:
        if any(shadow[s][1] for s in hit):
            return errno.EINVAL, 0
        for s in hit:
            shadow[s][1] = True
        return 0, sum(shadow[s][0] for s in hit)
    total = sum(shadow[s][0] for s in hit)
    for s in hit:
        del shadow[s]
    return 0, total


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_match_shadow_model(env: Env, seed: int) -> None:
    """1200 random calls per seed: every errno and returned size matches SEMANTICS 1.2/1.3, invariants hold."""
    import random

    rng = random.Random(seed)
    base = 0x100000
    shadow: dict[int, list[Any]] = {}  # iova -> [size, vaddr_invalid]
    for _ in range(1200):
        op = rng.random()
        iova = base + rng.randrange(48) * PAGE
        size = rng.randrange(1, 9) * PAGE
        want: tuple[int, int]
        if op < 0.4:
            overlap = any(s < iova + size and iova < s + sz for s, (sz, _i) in shadow.items())
            want = (errno.EEXIST, 0) if overlap else (0, 0)
            if not overlap:
                shadow[iova] = [size, False]
            offset = rng.randrange(64 - 8) * PAGE
            call: Callable[[], Any] = lambda: env.map(iova, size, offset)
        elif op < 0.7:
            want = _shadow_unmap(shadow, iova, size, vaddr_only=False)
            call = lambda: env.unmap(iova, size)
        elif op < 0.85:
            want = _shadow_unmap(shadow, iova, size, vaddr_only=True)
            call = lambda: env.unmap(iova, size, VADDR_UNMAP)
        else:
            hit = [s for s, (sz, _i) in shadow.items() if s < iova + size and iova < s + sz]
            if not hit:
                want = (errno.ENOENT, 0)
            elif not (hit[0] == iova and shadow[iova][0] == size and shadow[iova][1]):
                want = (errno.EINVAL, 0)
            else:
                want = (0, 0)
                shadow[iova][1] = False
            call = lambda: env.map(iova, size, 0, flags=V)
        try:
            got = (0, call() or 0)
        except OSError as e:
            got = (e.errno or 0, 0)
        assert got == want, f"op {op:.2f} iova {iova:#x} size {size:#x}: got {got}, shadow says {want}"
        env.container.check_invariants()
    assert {d.iova: [d.size, d.vaddr_invalid] for d in env.iommu.mappings()} == shadow
    env.unmap(0, 0, uv.VFIO_DMA_UNMAP_FLAG_ALL)


def test_second_group_reserved_region_narrows_iova_ranges() -> None:
    """Attach excludes each group's reserved regions; one overlapping an existing mapping refuses the attach
    (EINVAL); detaching the group gives its region back."""
    e = Env(devices=2)
    try:
        e.devs[1].ops.reserved_iova = [(MSI_LO, MSI_HI), (0x40000000, 0x400FFFFF)]  # an RMRR-like window
        g2 = e.k.open(f"/dev/vfio/{e.devs[1].group}")
        e.extra_fds.append(g2)
        e.map(0x40000000, PAGE)
        expect(errno.EINVAL, e.k.ioctl, g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        e.unmap(0x40000000, PAGE)
        e.k.ioctl(g2, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(e.cfd))
        buf = get_info(e, 24)
        need = uv.vfio_iommu_type1_info.from_buffer(buf).argsz
        assert need == 24 + 32 + 16 + 16 + 3 * 16
        buf = get_info(e, need)
        ranges = (uv.vfio_iova_range * 3).from_buffer(buf, 72 + 16)
        assert [(r.start, r.end) for r in ranges] == [(0, 0x3FFFFFFF), (0x40100000, MSI_LO - 1),
                                                      (MSI_HI + 1, APERTURE_END)]
        expect(errno.EINVAL, e.map, 0x400FF000, PAGE)
        e.k.ioctl(g2, uv.VFIO_GROUP_UNSET_CONTAINER)
        e.map(0x400FF000, PAGE)
        assert e.iommu.iova_list == [(0, MSI_LO - 1), (MSI_HI + 1, APERTURE_END)]
    finally:
        e.close()
