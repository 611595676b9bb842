"""iommufd without devices: SEMANTICS 2.1-2.3 through the syscall surface (``/dev/iommu`` + uapi structs).

Every rule gets a test naming it; every bad input checks the errno and that
nothing was left behind (the model's invariants, descriptors back to the
baseline).  Rules come from the kernel source (drivers/iommu/iommufd/*.c);
where the digest differed the test docstring says so.  Tests run on the
simulated kernel by default and on a real one with PYVFIO_KERNEL=real;
the few that reach into the model are skipped there.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import struct
from typing import Any, Callable, Iterator, Optional

import pytest

import pyvfio.sim
from pyvfio.sim.errno import KernelError
from pyvfio.uapi import iommufd as ui
from pyvfio.uapi import vfio as uv

PAGE = 4096
R, W, FIXED = ui.IOMMU_IOAS_MAP_READABLE, ui.IOMMU_IOAS_MAP_WRITEABLE, ui.IOMMU_IOAS_MAP_FIXED_IOVA
RW = R | W
U64_MAX = (1 << 64) - 1
NONCANONICAL = 0x8000_0000_0000_0000


def mk(cls: type, **fields: Any) -> Any:
    """A uapi struct with ``size`` set to its own length (the normal call)."""
    return cls(size=ctypes.sizeof(cls), **fields)


def addr_of(buf: Any) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def expect(err: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn`` fails with ``err`` (an OSError from the surface or a KernelError from a model call)."""
    with pytest.raises((OSError, KernelError)) as e:
        fn(*args, **kwargs)
    got: Optional[int] = getattr(e.value, "errno", None)
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got or 0)}: {e.value}"
    return e.value


def is_sim(k: Any) -> bool:
    return isinstance(k, pyvfio.sim.Kernel)


def check_model(k: Any) -> None:
    """The model's invariants for every open iommufd (simulated kernel only)."""
    if not is_sim(k):
        return
    for f in k.open_files():
        if f.kind == "iommufd":
            f.check_invariants()


def proc_fds() -> set[str]:
    """This process's open descriptors, without the one the listing itself used (closed by now)."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        out.add(name)
    return out


class Ictx:
    """One open ``/dev/iommu`` with helpers for the common commands."""

    def __init__(self, k: Any) -> None:
        self.k = k
        self.fd = k.open("/dev/iommu")

    def ioctl(self, request: int, arg: Any) -> int:
        return int(self.k.ioctl(self.fd, request, arg))

    def ioas(self) -> int:
        a = mk(ui.iommu_ioas_alloc)
        self.ioctl(ui.IOMMU_IOAS_ALLOC, a)
        return int(a.out_ioas_id)

    def map(self, ioas: int, va: int, length: int, iova: Optional[int] = None, flags: int = RW) -> int:
        m = mk(ui.iommu_ioas_map, ioas_id=ioas, user_va=va, length=length, flags=flags,
               iova=iova if iova is not None else 0)
        if iova is not None:
            m.flags |= FIXED
        self.ioctl(ui.IOMMU_IOAS_MAP, m)
        return int(m.iova)

    def map_file(self, ioas: int, fd: int, start: int, length: int, iova: Optional[int] = None,
                 flags: int = RW) -> int:
        m = mk(ui.iommu_ioas_map_file, ioas_id=ioas, fd=fd, start=start, length=length, flags=flags,
               iova=iova if iova is not None else 0)
        if iova is not None:
            m.flags |= FIXED
        self.ioctl(ui.IOMMU_IOAS_MAP_FILE, m)
        return int(m.iova)

    def unmap(self, ioas: int, iova: int, length: int) -> int:
        u = mk(ui.iommu_ioas_unmap, ioas_id=ioas, iova=iova, length=length)
        self.ioctl(ui.IOMMU_IOAS_UNMAP, u)
        return int(u.length)

    def ranges(self, ioas: int) -> tuple[list[tuple[int, int]], int]:
        r = mk(ui.iommu_ioas_iova_ranges, ioas_id=ioas)
        try:
            self.ioctl(ui.IOMMU_IOAS_IOVA_RANGES, r)
        except OSError as e:
            assert e.errno == errno.EMSGSIZE
        arr = (ui.iommu_iova_range * r.num_iovas)()
        r = mk(ui.iommu_ioas_iova_ranges, ioas_id=ioas, num_iovas=len(arr), allowed_iovas=ctypes.addressof(arr))
        self.ioctl(ui.IOMMU_IOAS_IOVA_RANGES, r)
        return [(int(x.start), int(x.last)) for x in arr], int(r.out_iova_alignment)

    def destroy(self, obj_id: int) -> None:
        self.ioctl(ui.IOMMU_DESTROY, mk(ui.iommu_destroy, id=obj_id))

    def option(self, option_id: int, op: int, object_id: int = 0, val: int = 0) -> int:
        o = mk(ui.iommu_option, option_id=option_id, op=op, object_id=object_id, val64=val)
        self.ioctl(ui.IOMMU_OPTION, o)
        return int(o.val64)

    def close(self) -> None:
        self.k.close(self.fd)


@pytest.fixture
def env(kernel: Any) -> Iterator[tuple[Any, Ictx, mmap.mmap, int]]:
    """A kernel, one iommufd, and 64 pages of this process's memory (2 MiB aligned) to map."""
    big = mmap.mmap(-1, 4 << 20)
    base = addr_of(big)
    off = (-base) % (2 << 20)
    ictx = Ictx(kernel)
    yield kernel, ictx, big, base + off
    check_model(kernel)
    try:
        ictx.close()
    except OSError:
        pass
    if is_sim(kernel):
        assert kernel.open_files() == [], "descriptors left open"


def memfd(pages: int = 16, data: bytes = b"") -> int:
    fd = os.memfd_create("pyvfio-test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, pages * PAGE)
    if data:
        os.pwrite(fd, data, 0)
    return fd


# == SEMANTICS general: the ioctl size protocol ====================================================
ALL_COMMANDS = [
    (ui.IOMMU_DESTROY, ui.iommu_destroy, "id"),
    (ui.IOMMU_IOAS_ALLOC, ui.iommu_ioas_alloc, "out_ioas_id"),
    (ui.IOMMU_IOAS_ALLOW_IOVAS, ui.iommu_ioas_allow_iovas, "allowed_iovas"),
    (ui.IOMMU_IOAS_COPY, ui.iommu_ioas_copy, "src_iova"),
    (ui.IOMMU_IOAS_IOVA_RANGES, ui.iommu_ioas_iova_ranges, "out_iova_alignment"),
    (ui.IOMMU_IOAS_MAP, ui.iommu_ioas_map, "iova"),
    (ui.IOMMU_IOAS_UNMAP, ui.iommu_ioas_unmap, "length"),
    (ui.IOMMU_OPTION, ui.iommu_option, "val64"),
    (ui.IOMMU_VFIO_IOAS, ui.iommu_vfio_ioas, "__reserved"),
    (ui.IOMMU_HWPT_ALLOC, ui.iommu_hwpt_alloc, "__reserved"),
    (ui.IOMMU_GET_HW_INFO, ui.iommu_hw_info, "__reserved"),
    (ui.IOMMU_HWPT_SET_DIRTY_TRACKING, ui.iommu_hwpt_set_dirty_tracking, "__reserved"),
    (ui.IOMMU_HWPT_GET_DIRTY_BITMAP, ui.iommu_hwpt_get_dirty_bitmap, "data"),
    (ui.IOMMU_HWPT_INVALIDATE, ui.iommu_hwpt_invalidate, "__reserved"),
    (ui.IOMMU_FAULT_QUEUE_ALLOC, ui.iommu_fault_alloc, "out_fault_fd"),
    (ui.IOMMU_IOAS_MAP_FILE, ui.iommu_ioas_map_file, "iova"),
    (ui.IOMMU_VIOMMU_ALLOC, ui.iommu_viommu_alloc, "out_viommu_id"),
    (ui.IOMMU_VDEVICE_ALLOC, ui.iommu_vdevice_alloc, "virt_id"),
    (ui.IOMMU_IOAS_CHANGE_PROCESS, ui.iommu_ioas_change_process, "__reserved"),
    (ui.IOMMU_VEVENTQ_ALLOC, ui.iommu_veventq_alloc, "out_veventq_fd"),
    (ui.IOMMU_HW_QUEUE_ALLOC, ui.iommu_hw_queue_alloc, "length"),
]


def _min_size(cls: type, last: str) -> int:
    f = getattr(cls, last)
    return int(f.offset + f.size)


@pytest.mark.parametrize("request_, cls, last", ALL_COMMANDS, ids=[c[1].__name__ for c in ALL_COMMANDS])
def test_size_below_minimum_einval(env: Any, request_: int, cls: type, last: str) -> None:
    """SEMANTICS general: ``size`` below the end of the last mandatory field -> EINVAL (main.c min_size)."""
    k, ictx, _, _ = env
    arg = cls(size=_min_size(cls, last) - 1)
    expect(errno.EINVAL, ictx.ioctl, request_, arg)


@pytest.mark.parametrize("request_, cls, last", ALL_COMMANDS, ids=[c[1].__name__ for c in ALL_COMMANDS])
def test_nonzero_bytes_past_struct_e2big(env: Any, request_: int, cls: type, last: str) -> None:
    """SEMANTICS general: non-zero bytes past the struct the kernel knows -> E2BIG (copy_struct_from_user)."""
    k, ictx, _, _ = env
    n = ctypes.sizeof(cls)
    buf = (ctypes.c_uint8 * (n + 8))()
    struct.pack_into("<I", buf, 0, n + 8)
    buf[n + 3] = 1
    expect(errno.E2BIG, ictx.ioctl, request_, buf)


def test_zero_bytes_past_struct_accepted(env: Any) -> None:
    """SEMANTICS general: a larger struct whose extra bytes are zero is accepted (forward compatibility)."""
    k, ictx, _, _ = env
    n = ctypes.sizeof(ui.iommu_ioas_alloc)
    buf = (ctypes.c_uint8 * (n + 64))()
    struct.pack_into("<I", buf, 0, n + 64)
    ictx.ioctl(ui.IOMMU_IOAS_ALLOC, buf)
    assert struct.unpack_from("<I", buf, 8)[0] >= 1


def test_minimum_size_reads_missing_fields_as_zero(env: Any) -> None:
    """SEMANTICS general: a short (but >= minimum) size works; fields past it count as zero."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    arg = ui.iommu_ioas_iova_ranges(size=_min_size(ui.iommu_ioas_iova_ranges, "out_iova_alignment"), ioas_id=ioas)
    expect(errno.EMSGSIZE, ictx.ioctl, ui.IOMMU_IOAS_IOVA_RANGES, arg)
    assert arg.num_iovas == 1


def test_size_claims_unmapped_memory_efault(env: Any) -> None:
    """SEMANTICS general: when ``size`` reaches unreadable memory the zero check faults -> EFAULT."""
    k, ictx, _, _ = env
    mem = mmap.mmap(-1, 2 * PAGE)
    va = addr_of(mem)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(va + PAGE, PAGE, 0) == 0
    at = va + PAGE - ctypes.sizeof(ui.iommu_ioas_alloc)
    struct.pack_into("<III", mem, at - va, ctypes.sizeof(ui.iommu_ioas_alloc) + 64, 0, 0)
    expect(errno.EFAULT, ictx.ioctl, ui.IOMMU_IOAS_ALLOC, at)
    libc.mprotect(va + PAGE, PAGE, 3)


def test_argument_by_address(env: Any) -> None:
    """SEMANTICS general: the argument is a user pointer; passing the struct's address as an int works."""
    k, ictx, _, _ = env
    a = mk(ui.iommu_ioas_alloc)
    ictx.ioctl(ui.IOMMU_IOAS_ALLOC, ctypes.addressof(a))
    assert a.out_ioas_id >= 1


def test_unknown_command_enotty(env: Any) -> None:
    """SEMANTICS general: ENOTTY = ioctl not supported (numbers outside the table or mis-encoded)."""
    k, ictx, _, _ = env
    a = mk(ui.iommu_ioas_alloc)
    expect(errno.ENOTTY, ictx.ioctl, ui.IOMMU_IOAS_ALLOC + 0x80, a)       # nr past the table
    expect(errno.ENOTTY, ictx.ioctl, ui.IOMMU_IOAS_ALLOC | (12 << 16), a)  # a size-encoded variant
    expect(errno.ENOTTY, ictx.ioctl, uv.VFIO_IOMMU_DIRTY_PAGES, a)        # VFIO number iommufd does not emulate


# == 2.1 object model: DESTROY and ids ==============================================================
def test_destroy_unknown_id_enoent(env: Any) -> None:
    """SEMANTICS 2.1: IOMMU_DESTROY of an unknown id -> ENOENT."""
    k, ictx, _, _ = env
    expect(errno.ENOENT, ictx.destroy, 1)
    expect(errno.ENOENT, ictx.destroy, 0xFFFFFFFF)


def test_destroy_ioas_then_enoent_and_id_reused(env: Any) -> None:
    """SEMANTICS 2.1: destroyed objects are gone (ENOENT) and ids are u32s handed out lowest-free first."""
    k, ictx, _, _ = env
    a, b = ictx.ioas(), ictx.ioas()
    assert (a, b) == (1, 2)
    ictx.destroy(a)
    expect(errno.ENOENT, ictx.destroy, a)
    assert ictx.ioas() == a


def test_destroy_ioas_unmaps_everything(env: Any) -> None:
    """SEMANTICS 2.1: IOAS destroy runs iopt_unmap_all -- the memfd the mapping held is released."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    fd = memfd()
    before = proc_fds()
    ictx.map_file(ioas, fd, 0, PAGE)
    os.close(fd)
    ictx.destroy(ioas)
    assert proc_fds() <= before


def test_ioas_alloc_flags_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: IOAS_ALLOC with flags != 0 -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_ALLOC, mk(ui.iommu_ioas_alloc, flags=1))
    check_model(k)


# == 2.2 IOVA_RANGES ================================================================================
def test_iova_ranges_fresh_ioas_whole_space(env: Any) -> None:
    """SEMANTICS 2.2: a fresh IOAS reports [0, ULONG_MAX] with out_iova_alignment 1."""
    k, ictx, _, _ = env
    assert ictx.ranges(ictx.ioas()) == ([(0, U64_MAX)], 1)


def test_iova_ranges_emsgsize_retry_protocol(env: Any) -> None:
    """SEMANTICS 2.2: too small an array -> EMSGSIZE with num_iovas set to the total (struct still written)."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    r = mk(ui.iommu_ioas_iova_ranges, ioas_id=ioas, num_iovas=0)
    expect(errno.EMSGSIZE, ictx.ioctl, ui.IOMMU_IOAS_IOVA_RANGES, r)
    assert r.num_iovas == 1 and r.out_iova_alignment == 1


def test_iova_ranges_reserved_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: IOVA_RANGES with __reserved set -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    r = mk(ui.iommu_ioas_iova_ranges, ioas_id=ictx.ioas())
    setattr(r, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_IOVA_RANGES, r)


def test_iova_ranges_bad_ioas_enoent(env: Any) -> None:
    """SEMANTICS 2.1: an id that is no IOAS -> ENOENT."""
    k, ictx, _, _ = env
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_IOVA_RANGES, mk(ui.iommu_ioas_iova_ranges, ioas_id=7))


def test_iova_ranges_bad_pointer_efault(env: Any) -> None:
    """SEMANTICS 2.2: the ranges are written to the allowed_iovas user pointer -> EFAULT when unmapped."""
    k, ictx, _, _ = env
    r = mk(ui.iommu_ioas_iova_ranges, ioas_id=ictx.ioas(), num_iovas=1, allowed_iovas=NONCANONICAL)
    expect(errno.EFAULT, ictx.ioctl, ui.IOMMU_IOAS_IOVA_RANGES, r)


# == 2.2 ALLOW_IOVAS ================================================================================
def allow(ictx: Ictx, ioas: int, ranges: list[tuple[int, int]], ptr: Optional[int] = None) -> None:
    arr = (ui.iommu_iova_range * max(1, len(ranges)))(*[ui.iommu_iova_range(s, l) for s, l in ranges])
    a = mk(ui.iommu_ioas_allow_iovas, ioas_id=ioas, num_iovas=len(ranges),
           allowed_iovas=ctypes.addressof(arr) if ptr is None else ptr)
    ictx.ioctl(ui.IOMMU_IOAS_ALLOW_IOVAS, a)


def test_allow_iovas_start_not_below_last_einval(env: Any) -> None:
    """SEMANTICS 2.2: ALLOW_IOVAS range with start >= last -> EINVAL (one-byte ranges too)."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    expect(errno.EINVAL, allow, ictx, ioas, [(0x2000, 0x1000)])
    expect(errno.EINVAL, allow, ictx, ioas, [(0x2000, 0x2000)])


def test_allow_iovas_overlap_einval(env: Any) -> None:
    """SEMANTICS 2.2: overlapping ranges in the input -> EINVAL."""
    k, ictx, _, _ = env
    expect(errno.EINVAL, allow, ictx, ictx.ioas(), [(0x1000, 0x2fff), (0x2000, 0x4fff)])


def test_allow_iovas_reserved_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: ALLOW_IOVAS with __reserved set -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    a = mk(ui.iommu_ioas_allow_iovas, ioas_id=ictx.ioas())
    setattr(a, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_ALLOW_IOVAS, a)


def test_allow_iovas_bad_ioas_enoent_and_bad_pointer_efault(env: Any) -> None:
    """SEMANTICS 2.1/2.2: unknown IOAS -> ENOENT; unreadable range array -> EFAULT."""
    k, ictx, _, _ = env
    expect(errno.ENOENT, allow, ictx, 99, [(0x1000, 0x1fff)])
    expect(errno.EFAULT, allow, ictx, ictx.ioas(), [(0x1000, 0x1fff)], NONCANONICAL)


def test_allow_iovas_bound_automatic_iova(env: Any) -> None:
    """SEMANTICS 2.2: automatic IOVA choice stays inside the allowed ranges; none fits -> ENOSPC."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    allow(ictx, ioas, [(0x40_0000, 0x40_ffff)])
    iova = ictx.map(ioas, va, 0x8000)
    assert 0x40_0000 <= iova and iova + 0x8000 - 1 <= 0x40_ffff
    expect(errno.ENOSPC, ictx.map, ioas, va, 0x2_0000)
    allow(ictx, ioas, [])  # zero ranges clear the list
    ictx.map(ioas, va, 0x2_0000)
    check_model(k)


def test_allow_iovas_do_not_limit_fixed_iova(env: Any) -> None:
    """SEMANTICS 2.2 (from iopt_check_iova): FIXED_IOVA checks reserved ranges and areas, not allowed ones."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    allow(ictx, ioas, [(0x40_0000, 0x40_ffff)])
    assert ictx.map(ioas, va, PAGE, iova=0x100_0000) == 0x100_0000


# == 2.2 MAP ========================================================================================
def map_arg(ioas: int, va: int, length: int, flags: int = RW, iova: int = 0) -> Any:
    return mk(ui.iommu_ioas_map, ioas_id=ioas, user_va=va, length=length, flags=flags, iova=iova)


def test_map_unknown_flag_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: IOAS_MAP with an unknown flag -> EOPNOTSUPP."""
    k, ictx, _, va = env
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_MAP, map_arg(ictx.ioas(), va, PAGE, RW | 8))


def test_map_reserved_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: IOAS_MAP with __reserved set -> EOPNOTSUPP."""
    k, ictx, _, va = env
    m = map_arg(ictx.ioas(), va, PAGE)
    setattr(m, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_MAP, m)


def test_map_u64_max_eoverflow(env: Any) -> None:
    """SEMANTICS 2.2: iova >= ULONG_MAX or length >= ULONG_MAX -> EOVERFLOW."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_MAP, map_arg(ioas, va, U64_MAX))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_MAP, map_arg(ioas, va, PAGE, RW | FIXED, U64_MAX))


def test_map_no_access_einval(env: Any) -> None:
    """SEMANTICS 2.2: neither READABLE nor WRITEABLE -> EINVAL (checked before the IOAS id)."""
    k, ictx, _, va = env
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_MAP, map_arg(99, va, PAGE, FIXED))


def test_map_bad_ioas_enoent(env: Any) -> None:
    """SEMANTICS 2.2: IOAS_MAP on an unknown IOAS -> ENOENT."""
    k, ictx, _, va = env
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_MAP, map_arg(99, va, PAGE))


def test_map_length_zero_einval(env: Any) -> None:
    """SEMANTICS 2.2: length 0 -> EINVAL."""
    k, ictx, _, va = env
    expect(errno.EINVAL, ictx.map, ictx.ioas(), va, 0)


def test_map_user_va_overflow_eoverflow(env: Any) -> None:
    """SEMANTICS 2.2 (iopt_alloc_user_pages): user_va + length wrapping -> EOVERFLOW."""
    k, ictx, _, _ = env
    expect(errno.EOVERFLOW, ictx.map, ictx.ioas(), U64_MAX - PAGE + 1, 2 * PAGE)


def test_map_fixed_overlap_eexist(env: Any) -> None:
    """SEMANTICS 2.2: FIXED_IOVA over an existing area -> EEXIST; the first mapping is untouched."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    ictx.map(ioas, va, 4 * PAGE, iova=0x10_0000)
    expect(errno.EEXIST, ictx.map, ioas, va, PAGE, 0x10_3000)
    expect(errno.EEXIST, ictx.map, ioas, va, 8 * PAGE, 0x10_0000 - PAGE)
    assert ictx.unmap(ioas, 0, U64_MAX) == 4 * PAGE


def test_map_fixed_iova_overflow_eoverflow(env: Any) -> None:
    """SEMANTICS 2.2: FIXED_IOVA where iova + length - 1 overflows -> EOVERFLOW."""
    k, ictx, _, va = env
    expect(errno.EOVERFLOW, ictx.map, ictx.ioas(), va, 2 * PAGE, U64_MAX - PAGE)


def test_map_kernel_picks_iova(env: Any) -> None:
    """SEMANTICS 2.2: without FIXED_IOVA the kernel picks and returns an IOVA: never 0, free, keeping the
    page offset of user_va and its alignment up to 2 MiB."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    first = ictx.map(ioas, va, 1 << 20)
    assert first != 0 and first % (1 << 20) == 0
    second = ictx.map(ioas, va + 0x123, PAGE)
    assert second % PAGE == 0x123
    assert not (first <= second < first + (1 << 20))
    assert ictx.unmap(ioas, 0, U64_MAX) == (1 << 20) + PAGE
    check_model(k)


def test_map_bogus_memory_accepted_without_domain(env: Any) -> None:
    """SEMANTICS 2.2: pages are pinned only once a domain exists -- a bare IOAS accepts unmapped user_va."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    assert ictx.map(ioas, NONCANONICAL, PAGE, iova=PAGE) == PAGE


def test_map_alignment_when_huge_pages_disabled(env: Any) -> None:
    """SEMANTICS 2.2: length % iova_alignment -> EINVAL; a FIXED iova off the alignment -> EINVAL; user_va
    off the page -> EINVAL (alignment PAGE_SIZE after HUGE_PAGES=0)."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    ictx.option(ui.IOMMU_OPTION_HUGE_PAGES, ui.IOMMU_OPTION_OP_SET, ioas, 0)
    assert ictx.ranges(ioas)[1] == PAGE
    expect(errno.EINVAL, ictx.map, ioas, va, PAGE + 0x800)
    expect(errno.EINVAL, ictx.map, ioas, va, PAGE, 0x1800)
    expect(errno.EINVAL, ictx.map, ioas, va + 0x10, PAGE, 0x1000)
    assert ictx.map(ioas, va, PAGE, 0x1000) == 0x1000


# == 2.2 MAP_FILE ===================================================================================
def map_file_arg(ioas: int, fd: int, length: int, flags: int = RW, start: int = 0, iova: int = 0) -> Any:
    return mk(ui.iommu_ioas_map_file, ioas_id=ioas, fd=fd, length=length, flags=flags, start=start, iova=iova)


def test_map_file_bad_fd_ebadf(env: Any) -> None:
    """SEMANTICS 2.2: MAP_FILE with a bad fd -> EBADF."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    expect(errno.EBADF, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, -1, PAGE))
    expect(errno.EBADF, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, 1000, PAGE))


def test_map_file_checks_like_map(env: Any) -> None:
    """SEMANTICS 2.2: MAP_FILE takes MAP's checks: EOPNOTSUPP flags, EOVERFLOW, EINVAL no access, ENOENT."""
    k, ictx, _, _ = env
    fd = memfd()
    ioas = ictx.ioas()
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, fd, PAGE, RW | 16))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, fd, U64_MAX))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, fd, PAGE, 0))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(99, fd, PAGE))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_MAP_FILE, map_file_arg(ioas, fd, 0))
    os.close(fd)


def test_map_file_write_on_readonly_fd_eperm(env: Any) -> None:
    """SEMANTICS 2.2: WRITEABLE on a read-only descriptor -> EPERM; READABLE alone works; no dup leaks."""
    k, ictx, _, _ = env
    fd = memfd()
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
    ioas = ictx.ioas()
    before = proc_fds()
    expect(errno.EPERM, ictx.map_file, ioas, ro, 0, PAGE)
    assert proc_fds() == before
    ictx.map_file(ioas, ro, 0, PAGE, flags=R)
    os.close(ro)
    os.close(fd)


def test_map_file_write_on_sealed_memfd_eperm(env: Any) -> None:
    """SEMANTICS 2.2: WRITEABLE on a memfd sealed against writes -> EPERM."""
    k, ictx, _, _ = env
    fd = memfd()
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    expect(errno.EPERM, ictx.map_file, ictx.ioas(), fd, 0, PAGE)
    os.close(fd)


def test_map_file_keeps_its_own_reference(env: Any) -> None:
    """SEMANTICS 2.2: the mapping holds the file; closing our descriptor keeps it, unmapping releases it."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    before = proc_fds()
    fd = memfd()
    iova = ictx.map_file(ioas, fd, PAGE, 2 * PAGE)
    os.close(fd)
    assert ictx.unmap(ioas, iova, 2 * PAGE) == 2 * PAGE
    assert proc_fds() == before


def test_map_file_kernel_iova_keeps_file_offset(env: Any) -> None:
    """SEMANTICS 2.2: automatic IOVA for a file keeps the offset's in-page position."""
    k, ictx, _, _ = env
    fd = memfd()
    iova = ictx.map_file(ictx.ioas(), fd, 0x2040, PAGE)
    assert iova % PAGE == 0x40
    os.close(fd)


# == 2.2 COPY =======================================================================================
def copy_arg(dst: int, src: int, length: int, src_iova: int, flags: int = RW, dst_iova: int = 0) -> Any:
    return mk(ui.iommu_ioas_copy, dst_ioas_id=dst, src_ioas_id=src, length=length, src_iova=src_iova,
              dst_iova=dst_iova, flags=flags)


def test_copy_argument_checks(env: Any) -> None:
    """SEMANTICS 2.2: COPY -> EOPNOTSUPP unknown flags, EOVERFLOW U64_MAX fields, EINVAL no access."""
    k, ictx, _, _ = env
    a, b = ictx.ioas(), ictx.ioas()
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0, RW | 8))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, U64_MAX, 0))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, U64_MAX))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0, RW, U64_MAX))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0, FIXED))


def test_copy_source_checks(env: Any) -> None:
    """SEMANTICS 2.2: COPY -> ENOENT bad source IOAS, EINVAL length 0, ENOENT range not fully mapped,
    ENOENT bad destination IOAS (checked after the source)."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    ictx.map(a, va, 2 * PAGE, 0x10000)
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, 99, PAGE, 0x10000))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, 0, 0x10000))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, 3 * PAGE, 0x10000))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0x20000))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(99, a, PAGE, 0x10000))
    check_model(k)


def test_copy_destination_overlap_eexist(env: Any) -> None:
    """SEMANTICS 2.2: COPY then behaves as MAP into the destination: FIXED over a mapping -> EEXIST."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    ictx.map(a, va, PAGE, 0x10000)
    ictx.map(b, va, PAGE, 0x50000)
    expect(errno.EEXIST, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0x10000, RW | FIXED, 0x50000))


def test_copy_cannot_add_write_eperm(env: Any) -> None:
    """SEMANTICS 2.2 (iopt_insert_area): copying read-only pages as WRITEABLE -> EPERM."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    ictx.map(a, va, PAGE, 0x10000, flags=R)
    expect(errno.EPERM, ictx.ioctl, ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0x10000))
    c = copy_arg(b, a, PAGE, 0x10000, R)
    ictx.ioctl(ui.IOMMU_IOAS_COPY, c)
    assert c.dst_iova != 0


def test_copy_spans_contiguous_mappings(env: Any) -> None:
    """SEMANTICS 2.2: the source range may be any sub-range covered without gaps; each source mapping
    becomes its own destination mapping, sharing the pages (the digest's "exactly one MAP" is the uapi
    comment; the code accepts more)."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    ictx.map(a, va, 2 * PAGE, 0x10000)
    ictx.map(a, va + 2 * PAGE, 2 * PAGE, 0x12000)
    c = copy_arg(b, a, 2 * PAGE, 0x11000, RW | FIXED, 0x80000)
    ictx.ioctl(ui.IOMMU_IOAS_COPY, c)
    assert c.dst_iova == 0x80000
    assert ictx.unmap(b, 0x80000, PAGE) == PAGE  # two mappings of a page each: no split was needed
    ictx.destroy(a)  # the destination keeps the shared pages
    assert ictx.unmap(b, 0x81000, PAGE) == PAGE
    check_model(k)


# == 2.2 UNMAP ======================================================================================
def test_unmap_bad_ioas_enoent(env: Any) -> None:
    """SEMANTICS 2.2: UNMAP of an unknown IOAS -> ENOENT (checked before anything else)."""
    k, ictx, _, _ = env
    expect(errno.ENOENT, ictx.unmap, 42, 0, U64_MAX)


def test_unmap_overflow_and_zero_length(env: Any) -> None:
    """SEMANTICS 2.2: UNMAP iova/length U64_MAX (other than unmap-all) -> EOVERFLOW; length 0 -> EINVAL;
    iova + length - 1 wrapping -> EOVERFLOW."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    expect(errno.EOVERFLOW, ictx.unmap, ioas, U64_MAX, 1)
    expect(errno.EOVERFLOW, ictx.unmap, ioas, PAGE, U64_MAX)
    expect(errno.EINVAL, ictx.unmap, ioas, PAGE, 0)
    expect(errno.EOVERFLOW, ictx.unmap, ioas, U64_MAX - PAGE, 2 * PAGE)


def test_unmap_empty_range_enoent(env: Any) -> None:
    """SEMANTICS 2.2 / vm NOTES: a non-all UNMAP that finds nothing -> ENOENT (type1 says 0)."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    expect(errno.ENOENT, ictx.unmap, ioas, 0x10000, PAGE)
    ictx.map(ioas, va, PAGE, 0x10000)
    expect(errno.ENOENT, ictx.unmap, ioas, 0x20000, PAGE)


def test_unmap_partial_enoent_after_earlier_areas(env: Any) -> None:
    """SEMANTICS 2.2 / pitfall 1: an area sticking out -> ENOENT; whole areas before it are already gone,
    the length is not reported, and no area is split."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    ictx.map(ioas, va, PAGE, 0x10000)
    ictx.map(ioas, va, 2 * PAGE, 0x11000)
    u = mk(ui.iommu_ioas_unmap, ioas_id=ioas, iova=0x10000, length=2 * PAGE)
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_IOAS_UNMAP, u)
    assert u.length == 2 * PAGE  # not written back
    expect(errno.ENOENT, ictx.unmap, ioas, 0x10000, PAGE)  # the first one is gone
    assert ictx.unmap(ioas, 0, U64_MAX) == 2 * PAGE  # the cut one is whole
    check_model(k)


def test_unmap_all_empty_succeeds_and_counts(env: Any) -> None:
    """SEMANTICS 2.2: iova 0 + length U64_MAX = unmap all: success when empty, else the bytes unmapped."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    assert ictx.unmap(ioas, 0, U64_MAX) == 0
    ictx.map(ioas, va, PAGE, 0x10000)
    ictx.map(ioas, va, 3 * PAGE, 0x40000)
    assert ictx.unmap(ioas, 0, U64_MAX) == 4 * PAGE


def test_unmap_superset_range(env: Any) -> None:
    """SEMANTICS 2.2: a range covering whole areas (and holes) unmaps them and returns their total."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    ictx.map(ioas, va, PAGE, 0x10000)
    ictx.map(ioas, va, PAGE, 0x30000)
    assert ictx.unmap(ioas, 0x8000, 0x40000) == 2 * PAGE


# == 2.2 CHANGE_PROCESS =============================================================================
def test_change_process_reserved_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: CHANGE_PROCESS with __reserved set -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    c = mk(ui.iommu_ioas_change_process)
    setattr(c, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_IOAS_CHANGE_PROCESS, c)


def test_change_process_user_va_mapping_einval(env: Any) -> None:
    """SEMANTICS 2.2 / vm NOTES: any user-VA mapping in any IOAS -> EINVAL, also from the same process."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    fd = memfd()
    ictx.map_file(a, fd, 0, PAGE)
    ictx.map(b, va, PAGE)
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))
    os.close(fd)


def test_change_process_copied_user_pages_einval(env: Any) -> None:
    """SEMANTICS 2.2: a COPY of user-VA pages is still user-VA backed -> EINVAL once the original is gone."""
    k, ictx, _, va = env
    a, b = ictx.ioas(), ictx.ioas()
    ictx.map(a, va, PAGE, 0x10000)
    ictx.ioctl(ui.IOMMU_IOAS_COPY, copy_arg(b, a, PAGE, 0x10000))
    ictx.destroy(a)
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))


def test_change_process_file_only_succeeds(env: Any) -> None:
    """SEMANTICS 2.2 / vm NOTES: with only MAP_FILE mappings (or none) it succeeds; the same process is a
    no-op success and the mappings stay."""
    k, ictx, _, _ = env
    ictx.ioctl(ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))
    ioas = ictx.ioas()
    fd = memfd()
    ictx.map_file(ioas, fd, 0, 2 * PAGE, iova=0x10000)
    ictx.ioctl(ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))
    assert ictx.unmap(ioas, 0x10000, 2 * PAGE) == 2 * PAGE
    os.close(fd)


# == 2.2 OPTION =====================================================================================
def test_option_reserved_and_unknown_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: OPTION __reserved set or unknown option_id -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    o = mk(ui.iommu_option, option_id=ui.IOMMU_OPTION_RLIMIT_MODE, op=ui.IOMMU_OPTION_OP_GET)
    setattr(o, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_OPTION, o)
    expect(errno.EOPNOTSUPP, ictx.option, 7, ui.IOMMU_OPTION_OP_GET)


def test_option_rlimit_mode(env: Any) -> None:
    """SEMANTICS 2.2: RLIMIT_MODE object_id != 0 -> EOPNOTSUPP; GET 0 by default; SET 1 then GET 1;
    SET 2 -> EINVAL; bad op -> EOPNOTSUPP; SET on a non-empty ctx -> EBUSY."""
    k, ictx, _, _ = env
    RL, GET, SET = ui.IOMMU_OPTION_RLIMIT_MODE, ui.IOMMU_OPTION_OP_GET, ui.IOMMU_OPTION_OP_SET
    expect(errno.EOPNOTSUPP, ictx.option, RL, GET, 1)
    assert ictx.option(RL, GET) == 0
    ictx.option(RL, SET, 0, 1)
    assert ictx.option(RL, GET) == 1
    expect(errno.EINVAL, ictx.option, RL, SET, 0, 2)
    expect(errno.EOPNOTSUPP, ictx.option, RL, 2)
    ictx.ioas()
    expect(errno.EBUSY, ictx.option, RL, SET, 0, 0)


def test_option_huge_pages(env: Any) -> None:
    """SEMANTICS 2.2: HUGE_PAGES object_id is an IOAS (ENOENT otherwise); GET 1 by default; SET 0 then
    GET 0; SET 2 -> EINVAL; bad op -> EOPNOTSUPP; val64 is written back."""
    k, ictx, _, _ = env
    HP, GET, SET = ui.IOMMU_OPTION_HUGE_PAGES, ui.IOMMU_OPTION_OP_GET, ui.IOMMU_OPTION_OP_SET
    expect(errno.ENOENT, ictx.option, HP, GET, 9)
    ioas = ictx.ioas()
    assert ictx.option(HP, GET, ioas) == 1
    assert ictx.option(HP, SET, ioas, 0) == 0
    assert ictx.option(HP, GET, ioas) == 0
    expect(errno.EINVAL, ictx.option, HP, SET, ioas, 2)
    expect(errno.EOPNOTSUPP, ictx.option, HP, 5, ioas)
    ictx.option(HP, SET, ioas, 1)
    assert ictx.ranges(ioas)[1] == 1


def test_option_huge_pages_off_with_unaligned_area_eaddrinuse(env: Any) -> None:
    """SEMANTICS 2.2: disabling huge pages raises the alignment; existing unaligned areas -> EADDRINUSE."""
    k, ictx, _, va = env
    ioas = ictx.ioas()
    ictx.map(ioas, va, 0x800, 0x10000)
    expect(errno.EADDRINUSE, ictx.option, ui.IOMMU_OPTION_HUGE_PAGES, ui.IOMMU_OPTION_OP_SET, ioas, 0)
    assert ictx.option(ui.IOMMU_OPTION_HUGE_PAGES, ui.IOMMU_OPTION_OP_GET, ioas) == 1


# == 2.2 VFIO_IOAS ==================================================================================
def vfio_ioas(ictx: Ictx, op: int, ioas: int = 0) -> int:
    v = mk(ui.iommu_vfio_ioas, op=op, ioas_id=ioas)
    ictx.ioctl(ui.IOMMU_VFIO_IOAS, v)
    return int(v.ioas_id)


def test_vfio_ioas_get_set_clear(env: Any) -> None:
    """SEMANTICS 2.2: VFIO_IOAS GET without a compat IOAS -> ENODEV; SET an unknown id -> ENOENT; SET then
    GET returns it; CLEAR; destroying the IOAS clears it too."""
    k, ictx, _, _ = env
    expect(errno.ENODEV, vfio_ioas, ictx, ui.IOMMU_VFIO_IOAS_GET)
    expect(errno.ENOENT, vfio_ioas, ictx, ui.IOMMU_VFIO_IOAS_SET, 5)
    ioas = ictx.ioas()
    vfio_ioas(ictx, ui.IOMMU_VFIO_IOAS_SET, ioas)
    assert vfio_ioas(ictx, ui.IOMMU_VFIO_IOAS_GET) == ioas
    vfio_ioas(ictx, ui.IOMMU_VFIO_IOAS_CLEAR)
    expect(errno.ENODEV, vfio_ioas, ictx, ui.IOMMU_VFIO_IOAS_GET)
    vfio_ioas(ictx, ui.IOMMU_VFIO_IOAS_SET, ioas)
    ictx.destroy(ioas)
    expect(errno.ENODEV, vfio_ioas, ictx, ui.IOMMU_VFIO_IOAS_GET)


def test_vfio_ioas_bad_op_and_reserved_eopnotsupp(env: Any) -> None:
    """SEMANTICS 2.2: VFIO_IOAS unknown op or __reserved set -> EOPNOTSUPP."""
    k, ictx, _, _ = env
    expect(errno.EOPNOTSUPP, vfio_ioas, ictx, 3)
    v = mk(ui.iommu_vfio_ioas, op=ui.IOMMU_VFIO_IOAS_CLEAR)
    setattr(v, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_VFIO_IOAS, v)


def test_vfio_container_ioctls_on_iommufd(env: Any) -> None:
    """vfio_compat.c: an iommufd answers the type1 container ioctls on its compat IOAS -- API version 0,
    TYPE1v2 yes, UPDATE_VADDR no, SET_IOMMU/MAP without a compat IOAS -> ENODEV, unmap of nothing -> ENOENT."""
    k, ictx, _, va = env
    assert ictx.ioctl(uv.VFIO_GET_API_VERSION, 0) == 0
    assert ictx.ioctl(uv.VFIO_CHECK_EXTENSION, uv.VFIO_TYPE1v2_IOMMU) == 1
    assert ictx.ioctl(uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0
    expect(errno.ENODEV, ictx.ioctl, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    ioas = ictx.ioas()
    vfio_ioas(ictx, ui.IOMMU_VFIO_IOAS_SET, ioas)
    expect(errno.EINVAL, ictx.ioctl, uv.VFIO_SET_IOMMU, 5)
    ictx.ioctl(uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    m = uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
                                    flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                    vaddr=va, iova=0x100000, size=2 * PAGE)
    ictx.ioctl(uv.VFIO_IOMMU_MAP_DMA, m)
    assert ictx.ranges(ioas)[0] == [(0, U64_MAX)]
    u = uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap), iova=0x100000,
                                      size=2 * PAGE)
    ictx.ioctl(uv.VFIO_IOMMU_UNMAP_DMA, u)
    assert u.size == 2 * PAGE
    expect(errno.ENOENT, ictx.ioctl, uv.VFIO_IOMMU_UNMAP_DMA, u)
    m.argsz = 8
    expect(errno.EINVAL, ictx.ioctl, uv.VFIO_IOMMU_MAP_DMA, m)


# == 2.3 commands that need a device: the argument checks that come first ============================
def test_hwpt_alloc_argument_checks(env: Any) -> None:
    """SEMANTICS 2.3: HWPT_ALLOC __reserved -> EOPNOTSUPP; data_type/data_len disagreeing -> EINVAL;
    unknown dev_id -> ENOENT."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    h = mk(ui.iommu_hwpt_alloc, dev_id=5, pt_id=ioas)
    setattr(h, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HWPT_ALLOC, h)
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_HWPT_ALLOC, mk(ui.iommu_hwpt_alloc, dev_id=5, pt_id=ioas, data_len=8))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_HWPT_ALLOC,
           mk(ui.iommu_hwpt_alloc, dev_id=5, pt_id=ioas, data_type=ui.IOMMU_HWPT_DATA_VTD_S1))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_HWPT_ALLOC, mk(ui.iommu_hwpt_alloc, dev_id=5, pt_id=ioas))


def test_get_hw_info_argument_checks(env: Any) -> None:
    """SEMANTICS 2.3: GET_HW_INFO unknown flags or __reserved -> EOPNOTSUPP; unknown dev_id -> ENOENT."""
    k, ictx, _, _ = env
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_GET_HW_INFO, mk(ui.iommu_hw_info, flags=2, dev_id=1))
    h = mk(ui.iommu_hw_info, dev_id=1)
    getattr(h, "__reserved")[1] = 1
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_GET_HW_INFO, h)
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_GET_HW_INFO, mk(ui.iommu_hw_info, dev_id=1))


def test_dirty_commands_argument_checks(env: Any) -> None:
    """SEMANTICS 2.3: SET_DIRTY_TRACKING unknown flags -> EOPNOTSUPP, not a paging HWPT -> ENOENT;
    GET_DIRTY_BITMAP unknown flags or __reserved -> EOPNOTSUPP, not a paging HWPT -> ENOENT."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HWPT_SET_DIRTY_TRACKING,
           mk(ui.iommu_hwpt_set_dirty_tracking, flags=2, hwpt_id=ioas))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_HWPT_SET_DIRTY_TRACKING,
           mk(ui.iommu_hwpt_set_dirty_tracking, hwpt_id=ioas))
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HWPT_GET_DIRTY_BITMAP,
           mk(ui.iommu_hwpt_get_dirty_bitmap, flags=2, hwpt_id=ioas))
    g = mk(ui.iommu_hwpt_get_dirty_bitmap, hwpt_id=ioas)
    setattr(g, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HWPT_GET_DIRTY_BITMAP, g)
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_HWPT_GET_DIRTY_BITMAP,
           mk(ui.iommu_hwpt_get_dirty_bitmap, hwpt_id=ioas, length=PAGE, page_size=PAGE))


# == the rest of the table, on a machine without nesting or vIOMMU support ============================
def test_hwpt_invalidate(env: Any) -> None:
    """hw_pagetable.c: HWPT_INVALIDATE __reserved -> EOPNOTSUPP; entry_num without data_uptr/entry_len ->
    EINVAL; unknown id -> ENOENT; an IOAS (or paging HWPT) -> EINVAL; entry_num always comes back 0."""
    k, ictx, _, _ = env
    ioas = ictx.ioas()
    inv = mk(ui.iommu_hwpt_invalidate, hwpt_id=ioas, entry_num=3)
    setattr(inv, "__reserved", 1)
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HWPT_INVALIDATE, inv)
    assert inv.entry_num == 0
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_HWPT_INVALIDATE, mk(ui.iommu_hwpt_invalidate, hwpt_id=ioas,
                                                                  entry_num=1, entry_len=16))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_HWPT_INVALIDATE, mk(ui.iommu_hwpt_invalidate, hwpt_id=77))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_HWPT_INVALIDATE, mk(ui.iommu_hwpt_invalidate, hwpt_id=ioas))


def test_fault_queue_alloc(env: Any) -> None:
    """eventq.c: FAULT_QUEUE_ALLOC flags -> EOPNOTSUPP; success gives an object and a descriptor; the open
    descriptor makes DESTROY EBUSY; reads are whole records (ESPIPE otherwise) and empty; responses to no
    outstanding fault -> EINVAL."""
    k, ictx, _, _ = env
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_FAULT_QUEUE_ALLOC, mk(ui.iommu_fault_alloc, flags=1))
    f = mk(ui.iommu_fault_alloc)
    ictx.ioctl(ui.IOMMU_FAULT_QUEUE_ALLOC, f)
    assert f.out_fault_id >= 1 and f.out_fault_fd > 2
    expect(errno.EBUSY, ictx.destroy, f.out_fault_id)
    if is_sim(k):
        assert k.read(f.out_fault_fd, ctypes.sizeof(ui.iommu_hwpt_pgfault)) == b""
        expect(errno.ESPIPE, k.read, f.out_fault_fd, 10)
        expect(errno.EINVAL, k.write, f.out_fault_fd, bytes(ui.iommu_hwpt_page_response(cookie=5)))
    k.close(f.out_fault_fd)
    ictx.destroy(f.out_fault_id)
    expect(errno.ENOENT, ictx.destroy, f.out_fault_id)


def test_fault_fd_keeps_iommufd_alive(env: Any) -> None:
    """eventq.c: a fault descriptor holds the iommufd; closing the iommufd first releases nothing yet."""
    k, ictx, _, _ = env
    f = mk(ui.iommu_fault_alloc)
    ictx.ioctl(ui.IOMMU_FAULT_QUEUE_ALLOC, f)
    ictx.close()
    if is_sim(k):
        assert [x.kind for x in k.open_files()] == ["fault"]
    k.close(f.out_fault_fd)


def test_viommu_family_without_viommu_support(env: Any) -> None:
    """viommu.c on an IOMMU without vIOMMU support: VIOMMU_ALLOC flags/DEFAULT type -> EOPNOTSUPP, unknown
    dev_id -> ENOENT; VDEVICE/VEVENTQ/HW_QUEUE check their own fields (EOPNOTSUPP/EINVAL/EOVERFLOW) and end
    in ENOENT for the vIOMMU id."""
    k, ictx, _, _ = env
    T = ui.IOMMU_VIOMMU_TYPE_ARM_SMMUV3
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_VIOMMU_ALLOC, mk(ui.iommu_viommu_alloc, flags=1, type=T))
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_VIOMMU_ALLOC, mk(ui.iommu_viommu_alloc))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_VIOMMU_ALLOC, mk(ui.iommu_viommu_alloc, type=T, dev_id=3))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_VDEVICE_ALLOC, mk(ui.iommu_vdevice_alloc, viommu_id=1))
    VT = ui.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_VEVENTQ_ALLOC, mk(ui.iommu_veventq_alloc, type=0,
                                                                    veventq_depth=1))
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_VEVENTQ_ALLOC, mk(ui.iommu_veventq_alloc, type=VT, flags=1,
                                                                    veventq_depth=1))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_VEVENTQ_ALLOC, mk(ui.iommu_veventq_alloc, type=VT))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_VEVENTQ_ALLOC, mk(ui.iommu_veventq_alloc, type=VT, veventq_depth=4))
    QT = ui.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV
    expect(errno.EOPNOTSUPP, ictx.ioctl, ui.IOMMU_HW_QUEUE_ALLOC, mk(ui.iommu_hw_queue_alloc, length=PAGE))
    expect(errno.EINVAL, ictx.ioctl, ui.IOMMU_HW_QUEUE_ALLOC, mk(ui.iommu_hw_queue_alloc, type=QT))
    expect(errno.EOVERFLOW, ictx.ioctl, ui.IOMMU_HW_QUEUE_ALLOC,
           mk(ui.iommu_hw_queue_alloc, type=QT, length=2 * PAGE, nesting_parent_iova=U64_MAX - PAGE))
    expect(errno.ENOENT, ictx.ioctl, ui.IOMMU_HW_QUEUE_ALLOC, mk(ui.iommu_hw_queue_alloc, type=QT, length=PAGE))


def test_noiommu_get_pa(env: Any) -> None:
    """IOAS_NOIOMMU_GET_PA (model; kernel source unavailable): flags -> EOPNOTSUPP, unknown IOAS or unmapped
    IOVA -> ENOENT, a mapped IOVA -> EOPNOTSUPP (no no-IOMMU device, no physical addresses)."""
    k, ictx, _, va = env
    if not is_sim(k):
        pytest.skip("modelled without the kernel source: errnos unverified on a real kernel")
    ioas = ictx.ioas()
    ictx.map(ioas, va, PAGE, 0x10000)
    P = ui.IOMMU_IOAS_NOIOMMU_GET_PA
    expect(errno.EOPNOTSUPP, ictx.ioctl, P, mk(ui.iommu_ioas_noiommu_get_pa, flags=1, ioas_id=ioas))
    expect(errno.ENOENT, ictx.ioctl, P, mk(ui.iommu_ioas_noiommu_get_pa, ioas_id=99))
    expect(errno.ENOENT, ictx.ioctl, P, mk(ui.iommu_ioas_noiommu_get_pa, ioas_id=ioas, iova=0x20000))
    expect(errno.EOPNOTSUPP, ictx.ioctl, P, mk(ui.iommu_ioas_noiommu_get_pa, ioas_id=ioas, iova=0x10000,
                                              length=PAGE))


# == leaks ==========================================================================================
def test_close_releases_memfd_dups_and_files(kernel: Any) -> None:
    """SEMANTICS 2.1: closing the iommufd destroys every object: mappings dropped, the model's memfd
    duplicates closed, no file of the model left open."""
    before = proc_fds()
    ictx = Ictx(kernel)
    fd = memfd()
    for _ in range(3):
        ictx.map_file(ictx.ioas(), fd, 0, 4 * PAGE)
    os.close(fd)
    ictx.close()
    assert proc_fds() == before
    if is_sim(kernel):
        assert kernel.open_files() == []


def test_failed_calls_leave_nothing(kernel: Any) -> None:
    """Every failing MAP/MAP_FILE/COPY leaves no area, no object and no descriptor behind."""
    ictx = Ictx(kernel)
    ioas = ictx.ioas()
    before = proc_fds()
    fd = memfd()
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
    expect(errno.EPERM, ictx.map_file, ioas, ro, 0, PAGE)
    expect(errno.EINVAL, ictx.map_file, ioas, fd, 0, 0)
    expect(errno.ENOENT, ictx.map_file, ioas + 1, fd, 0, PAGE)
    os.close(ro)
    os.close(fd)
    assert proc_fds() == before
    assert ictx.unmap(ioas, 0, U64_MAX) == 0
    check_model(kernel)
    ictx.close()
