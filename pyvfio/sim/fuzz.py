"""A seeded random-ioctl fuzzer for the simulated kernel.

It drives the surface the way a buggy or hostile program would -- random
requests on random descriptors, with argument sizes, flags, ids, addresses
and descriptors drawn near the interesting edges -- and checks after every
call that nothing but ``OSError`` escaped and that the model's invariants
hold (no overlapping mappings, consistent counts, no dangling objects).  At
the end every descriptor is closed and nothing may be left open.

Addresses handed to the kernel are only ever inside buffers the fuzzer owns
or provably unmapped (non-canonical), because the simulated kernel writes
through them into this very process -- exactly as the real one would.

usage: python -m pyvfio.sim.fuzz [--calls 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import random
import re
import sys
import time
from typing import Any, Optional

from ..uapi import iommufd as ui
from ..uapi import vfio as uv
from ..uapi.struct import alloc_flex, flex_field
from .kernel import Kernel

_STRUCT = re.compile(r"struct (\w+)")
NONCANONICAL = 0x8000_0000_0000_0000
PAGE = 4096


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_NORESERVE = 0x4000


class GuardedBuffer:
    """``size`` usable bytes followed by 64 GiB of inaccessible address space.

    The kernel under test writes through addresses the fuzzer hands it (DMA, dirty bitmaps, range
    arrays) at offsets it computes itself, possibly gigabytes past the start.  Behind the buffer every
    address faults (PROT_NONE, reserved but never backed), so a wrong offset ends in EFAULT -- the
    answer the real kernel would give -- instead of silently corrupting this process's own heap.
    """

    RESERVE = 64 << 30

    def __init__(self, size: int) -> None:
        self.size = size
        addr = _libc.mmap(None, self.RESERVE, 0,  # PROT_NONE
                          mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of the guard reservation failed")
        self.addr = int(addr)
        if _libc.mprotect(self.addr, size, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")

    def close(self) -> None:
        _libc.munmap(self.addr, self.RESERVE)


def _arg_struct(text: str) -> Optional[type]:
    m = _STRUCT.match(text)
    if not m:
        return None
    return getattr(uv, m.group(1), None) or getattr(ui, m.group(1), None)


class Fuzzer:
    """One seeded run; :meth:`step` makes one random call."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kernel = Kernel()
        self.baseline_fds = len(os.listdir("/proc/self/fd"))
        self.devices = [self.kernel.add_device("edu"), self.kernel.add_device("edu", group=0),
                        self.kernel.add_device("mtty")]
        self.fds: list[int] = []
        self.eventfds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(4)]
        self.memfds = []
        for _ in range(2):
            fd = os.memfd_create("pyvfio-fuzz", os.MFD_CLOEXEC)
            os.ftruncate(fd, 16 * PAGE)
            self.memfds.append(fd)
        self.buffers = [GuardedBuffer(64 * PAGE) for _ in range(3)]
        self.addrs = [b.addr for b in self.buffers]
        self.requests = [d.request for d in (*uv.IOCTLS, *ui.IOCTLS)]
        self.args = {r: [d.arg for d in (*uv.IOCTLS, *ui.IOCTLS) if d.request == r] for r in self.requests}
        self.calls = 0
        self.errors = 0
        self.succeeded: set[int] = set()  # request numbers that got past every check at least once

    # -- value generators -------------------------------------------------------------------
    def address(self) -> int:
        r = self.rng.random()
        if r < 0.7:
            base = self.rng.choice(self.addrs)
            return base + self.rng.choice([0, PAGE, 8 * PAGE, 63 * PAGE, 1, 7])
        return self.rng.choice([0, NONCANONICAL, NONCANONICAL + PAGE, (1 << 64) - PAGE])

    def fd(self) -> int:
        pool = self.fds + self.eventfds + self.memfds + [-1, 9999]
        return self.rng.choice(pool)

    def number(self, size: int, name: str) -> int:
        rng = self.rng
        mask = (1 << (8 * size)) - 1
        if name in ("vaddr", "user_va", "data_uptr", "allowed_iovas", "data", "uptr", "token_uuid_ptr"):
            return self.address() & mask
        if name in ("fd", "iommufd", "eventfd") or name.endswith("_fd"):
            return self.fd() & mask
        if "id" in name:
            return rng.choice([0, 1, 2, 3, 4, 5, 100, mask]) & mask
        if name in ("iova", "start", "src_iova", "dst_iova"):
            return rng.choice([0, PAGE, 0x10000, 0x123, 0xFEE00000, (1 << 48) - PAGE, mask]) & mask
        if name in ("size", "length", "count", "num_iovas", "nr_areas", "page_size", "pgsize"):
            return rng.choice([0, 1, PAGE, 2 * PAGE, 16 * PAGE, 0x1001, mask]) & mask
        if name == "flags":
            return rng.choice([0, 1, 2, 3, 4, 6, 7, 1 << rng.randrange(8 * size)]) & mask
        return rng.choice([0, 1, 2, rng.getrandbits(8 * size)]) & mask

    def fill(self, obj: Any, cls: type, nominal: int) -> None:
        for entry in cls._fields_:  # type: ignore[attr-defined]
            name, ctype = entry[0], entry[1]
            if name.startswith("_") and name in getattr(cls, "_anonymous_", ()):
                continue
            if isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
                self.fill(getattr(obj, name), ctype, nominal)
                continue
            if not (isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData)):
                continue
            size = ctypes.sizeof(ctype)
            if name in ("argsz", "size") and cls._fields_[0][0] == name:  # type: ignore[attr-defined]
                value = self.rng.choice([nominal, nominal, nominal, 0, nominal - 4, nominal + 8, 16])
            else:
                value = self.number(size, name)
            if ctype in (ctypes.c_int32, ctypes.c_int64, ctypes.c_int16, ctypes.c_int8):
                value = value - (1 << (8 * size)) if value >= 1 << (8 * size - 1) else value
            try:
                setattr(obj, name, value)
            except (TypeError, ValueError):
                pass

    def argument(self, request: int) -> Any:
        kinds = self.args.get(request, ["none"])
        kind = self.rng.choice(kinds)
        if self.rng.random() < 0.05 or kind.startswith("none") or "by value" in kind:
            return self.rng.choice([0, 1, 3, 8, 9, 10, 0xFFFFFFFF])
        if kind.startswith("__s32 *") or kind.startswith("__u32 *"):
            return ctypes.c_int32(self.fd() if self.rng.random() < 0.8 else self.rng.choice([0, -1, 1 << 20]))
        if kind.startswith("char *"):
            names = [d.address for d in self.devices] + ["", "0000:00:99.0", "x" * 300]
            return ctypes.create_string_buffer(self.rng.choice(names).encode())
        cls = _arg_struct(kind)
        if cls is None:
            return 0
        try:
            flex_field(cls)
            obj: Any = alloc_flex(cls, self.rng.choice([0, 1, 4, 16]))
        except TypeError:
            obj = cls()
        self.fill(obj, cls, ctypes.sizeof(obj))
        return obj

    # -- one call --------------------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        k = self.kernel
        r = rng.random()
        self.calls += 1
        try:
            if r < 0.03:
                self.setup()
            elif len(self.fds) > 40 or (r < 0.12 and len(self.fds) > 16):
                fd = self.fds.pop(rng.randrange(len(self.fds)))  # keep the descriptor table small
                k.close(fd)
            elif r < 0.08 or not self.fds:
                paths = ["/dev/vfio/vfio", "/dev/iommu", "/dev/vfio/0", "/dev/vfio/1", "/dev/vfio/7",
                         "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio2", "/dev/vfio/devices/vfio9"]
                self.fds.append(k.open(rng.choice(paths)))
            elif r < 0.12:
                fd = self.fds.pop(rng.randrange(len(self.fds)))
                k.close(fd)
            elif r < 0.17:
                fd = rng.choice(self.fds)
                offset = (rng.choice([0, 1, 2, 7, 8]) << 40) + rng.choice([0, 4, 0x10, 0x98, 0x40000])
                if rng.random() < 0.5:
                    k.pread(fd, rng.choice([1, 2, 4, 8]), offset)
                else:
                    k.pwrite(fd, rng.getrandbits(32).to_bytes(4, "little"), offset)
            else:
                fd = rng.choice(self.fds)
                request = self.request_for(fd)
                k.ioctl(fd, request, self.argument(request))
                self.succeeded.add(request)
        except OSError:
            self.errors += 1
        self.adopt_returned_fds()
        k.check_invariants()

    def request_for(self, fd: int) -> int:
        """Mostly a request meant for this kind of descriptor, sometimes any, rarely a random number."""
        r = self.rng.random()
        file = self.kernel._lookup(fd)
        if file is not None and r < 0.85:
            fitting = [d.request for d in (*uv.IOCTLS, *ui.IOCTLS) if d.fd.startswith(file.kind)]
            if fitting:
                return self.rng.choice(fitting)
        return self.rng.choice(self.requests) if r < 0.98 else self.rng.getrandbits(16)

    def setup(self) -> None:
        """A legitimate opening sequence, so random calls also land on bound, attached, mapped state."""
        k, rng = self.kernel, self.rng
        dev = rng.choice(self.devices)
        if rng.random() < 0.5:
            container = k.open("/dev/vfio/vfio")
            self.fds.append(container)
            group = k.open(f"/dev/vfio/{dev.group_id}")
            self.fds.append(group)
            k.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
            k.ioctl(container, uv.VFIO_SET_IOMMU, rng.choice([uv.VFIO_TYPE1v2_IOMMU, uv.VFIO_TYPE1_IOMMU]))
            self.fds.append(k.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD,
                                    ctypes.create_string_buffer(dev.address.encode())))
            m = uv.vfio_iommu_type1_dma_map(argsz=32, flags=3, vaddr=self.rng.choice(self.addrs),
                                            iova=PAGE * rng.randrange(16), size=PAGE * rng.choice([1, 4]))
            k.ioctl(container, uv.VFIO_IOMMU_MAP_DMA, m)
        else:
            ictx = k.open("/dev/iommu")
            self.fds.append(ictx)
            ioas = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
            k.ioctl(ictx, ui.IOMMU_IOAS_ALLOC, ioas)
            cdev = k.open(dev.cdev)
            self.fds.append(cdev)
            k.ioctl(cdev, uv.VFIO_DEVICE_BIND_IOMMUFD, uv.vfio_device_bind_iommufd(
                argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=ictx))
            k.ioctl(cdev, uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT, uv.vfio_device_attach_iommufd_pt(
                argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt), pt_id=ioas.out_ioas_id))
            m2 = ui.iommu_ioas_map(size=ctypes.sizeof(ui.iommu_ioas_map), flags=7, ioas_id=ioas.out_ioas_id,
                                   user_va=self.rng.choice(self.addrs), length=PAGE * 4, iova=PAGE * rng.randrange(16))
            k.ioctl(ictx, ui.IOMMU_IOAS_MAP, m2)

    def adopt_returned_fds(self) -> None:
        """Descriptors the kernel handed out (device fds, data_fd, fault fds) join the pool.

        Only those the kernel gave the caller: the model's own duplicates of the caller's descriptors
        (an eventfd or memfd it keeps) are the model's to close, never the fuzzer's.
        """
        known = set(self.fds)
        self.fds.extend(sorted(self.kernel.descriptors() - known))

    def finish(self) -> None:
        for fd in self.fds:
            try:
                self.kernel.close(fd)
            except OSError:
                pass
        self.fds.clear()
        leaked = self.kernel.open_files()
        assert not leaked, f"files still open after closing every descriptor: {leaked}"
        self.kernel.check_invariants()
        for fd in self.eventfds + self.memfds:
            os.close(fd)
        for b in self.buffers:
            b.close()
        now = len(os.listdir("/proc/self/fd"))
        assert now <= self.baseline_fds, f"descriptors leaked: {now} open, {self.baseline_fds} before"


def run(calls: int, seed: int) -> Fuzzer:
    fz = Fuzzer(seed)
    try:
        for _ in range(calls):
            fz.step()
    except Exception as e:
        raise AssertionError(f"seed {seed}, call {fz.calls}: {type(e).__name__}: {e}") from e
    fz.finish()
    return fz


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyvfio.sim.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    fz = run(args.calls, args.seed)
    dt = time.perf_counter() - t0
    print(f"{fz.calls} calls, seed {args.seed}: {fz.calls - fz.errors} succeeded, {fz.errors} failed with OSError, "
          f"nothing else escaped; invariants held after every call; no leaks ({dt:.1f} s, {fz.calls / dt:.0f} calls/s); "
          f"{len(fz.succeeded)} distinct request numbers succeeded at least once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
