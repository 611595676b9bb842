"""Real-kernel figures in the VM lane's guest: pyvfio against a small C program, loop for loop.

Run on the host, from the repository root, as root (it boots the lane's QEMU guest)::

    PYVFIO_VM_KERNEL=... PYVFIO_VM_MODULES=... python3 benchmarks/vm_map_unmap.py [--seconds 0.5] [--rounds 3] [--anon]

Loops (each runs for ``--seconds``, in batches of 16; ``--rounds`` rounds with the sides interleaved,
the best round kept; operations per second):

* map+unmap of 4 KiB, then of 2 MiB: type1v2 (``VFIO_IOMMU_MAP_DMA`` + ``VFIO_IOMMU_UNMAP_DMA`` on a
  container with the edu's group) and iommufd (``IOMMU_IOAS_MAP`` + ``IOMMU_IOAS_UNMAP`` on an IOAS the
  edu's cdev is attached to), so every map reaches the emulated Intel IOMMU's page table;
* region reads: a 4-byte ``pread`` of edu's BAR0 offset 0 (the ident register, a trip into QEMU) and of
  config-space offset 0 (vfio-pci's emulated config, no trip into QEMU).

The Python side goes through ``pyvfio.kernel.Linux()`` with the ``pyvfio.uapi`` structs built once, as a
careful pyvfio user would; a third column calls libc's ioctl through ctypes directly (the floor for any
Python caller).  The C side (``benchmarks/c/vfio_bench.c``, compiled here with gcc against the
Linux 7.3 UAPI headers that ``tools/fetch-uapi-headers.sh`` fetches) does the same calls with the same
arguments.  The mapped memory is 2 MiB on a 2 MiB boundary with ``MADV_HUGEPAGE``: one memfd both sides
map (so both pin the same physical pages), or with ``--anon`` each side's own anonymous memory; whether
THP backs it and how many physically contiguous runs it has are reported.  The guest is TCG-emulated:
absolute figures are far below a real machine's; the ratio is the figure to read, and even it is
pessimistic for Python (the interpreter is emulated too, the kernel's share is not the same as on hardware).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

C_SOURCE = REPO / "benchmarks" / "c" / "vfio_bench.c"
SZ_4K, SZ_2M = 4096, 2 << 20
IOVA = 0x200000
BATCH = 16
EDU_ID = ("0x1234", "0x11e8")
ORDER = ["type1.map_unmap.4k", "type1.map_unmap.2m", "iommufd.map_unmap.4k", "iommufd.map_unmap.2m",
         "region.bar0_ident", "region.config"]


# ---------------------------------------------------------------------------------------------------------
# guest side


def find_edu() -> tuple[str, int, Optional[str]]:
    """(PCI address, IOMMU group, cdev path or None) of the first edu bound to vfio-pci."""
    for dev in sorted(Path("/sys/bus/pci/devices").iterdir()):
        try:
            ids = ((dev / "vendor").read_text().strip(), (dev / "device").read_text().strip())
            driver = os.path.basename(os.readlink(dev / "driver"))
        except OSError:
            continue
        if ids == EDU_ID and driver == "vfio-pci":
            group = int(os.path.basename(os.readlink(dev / "iommu_group")))
            cdevs = sorted((dev / "vfio-dev").glob("vfio*")) if (dev / "vfio-dev").is_dir() else []
            return dev.name, group, f"/dev/vfio/devices/{cdevs[0].name}" if cdevs else None
    raise SystemExit("no edu device bound to vfio-pci: run this through the VM lane")


class Buffer:
    """2 MiB on a 2 MiB boundary, THP requested, populated.

    Shared (default): a memfd mapped MAP_SHARED, whose descriptor the C program maps too, so both sides
    pin the very same physical pages -- how scattered those are decides how many IOMMU map calls a 2 MiB
    map takes, which would otherwise differ per process.  ``anon``: MAP_PRIVATE | MAP_ANONYMOUS memory
    of this process (the C program then takes its own).
    """

    def __init__(self, shared: bool = True) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        self.fd = -1
        if shared:
            self.fd = os.memfd_create("pyvfio-bench", 0)  # inheritable: the C program maps it
            os.ftruncate(self.fd, SZ_2M)
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        base = libc.mmap(None, 2 * SZ_2M, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        aligned = (base + SZ_2M - 1) & ~(SZ_2M - 1)
        map_fixed = 0x10
        if shared:
            got = libc.mmap(aligned, SZ_2M, rw, mmap.MAP_SHARED | map_fixed, self.fd, 0)
        else:
            got = libc.mmap(aligned, SZ_2M, rw, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_fixed, -1, 0)
        if got != aligned:
            raise OSError(ctypes.get_errno(), "mmap of the 2 MiB buffer")
        self.addr: int = aligned
        self.madvise = "MADV_HUGEPAGE accepted"
        if libc.madvise(ctypes.c_void_p(aligned), ctypes.c_size_t(SZ_2M), 14) != 0:  # MADV_HUGEPAGE
            # EINVAL: a kernel built without CONFIG_TRANSPARENT_HUGEPAGE
            self.madvise = f"MADV_HUGEPAGE refused ({os.strerror(ctypes.get_errno())}): no THP, 4 KiB pages"
        ctypes.memset(aligned, 0x5A, SZ_2M)

    def phys_runs(self) -> int:
        """Physically contiguous runs in the buffer (/proc/self/pagemap; the IOMMU maps one run per call)."""
        with open("/proc/self/pagemap", "rb") as f:
            raw = os.pread(f.fileno(), SZ_2M // SZ_4K * 8, self.addr // SZ_4K * 8)
        pfns = [int.from_bytes(raw[i:i + 8], "little") & ((1 << 55) - 1) for i in range(0, len(raw), 8)]
        return 1 + sum(1 for a, b in zip(pfns, pfns[1:]) if b != a + 1)

    def thp_kib(self) -> int:
        """Huge-page-mapped KiB of the mapping holding the buffer (anonymous or shmem), from /proc/self/smaps."""
        inside, kib = False, 0
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split()[0]
                if "-" in head and not head.endswith(":"):
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo <= self.addr < hi
                elif inside and head in ("AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:"):
                    kib += int(line.split()[1])
        return kib


def timed(step: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Run ``step`` in batches until ``seconds`` have passed: (iterations, elapsed)."""
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(BATCH):
            step()
        n += BATCH
        t = time.perf_counter() - t0
        if t >= seconds:
            return n, t


def python_type1(k: Any, group: int, bdf: str, buf: Buffer, seconds: float) -> dict[str, tuple[int, float]]:
    from pyvfio.uapi import vfio as uv

    out: dict[str, tuple[int, float]] = {}
    container = k.open("/dev/vfio/vfio")
    grp = k.open(f"/dev/vfio/{group}")
    dev = -1
    try:
        k.ioctl(grp, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        k.ioctl(container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        dev = k.ioctl(grp, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(bdf.encode()))
        for size, name in ((SZ_4K, "type1.map_unmap.4k"), (SZ_2M, "type1.map_unmap.2m")):
            m = uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
                                            flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                            vaddr=buf.addr, iova=IOVA, size=size)
            u = uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap),
                                              iova=IOVA, size=size)

            def step(m: Any = m, u: Any = u) -> None:
                k.ioctl(container, uv.VFIO_IOMMU_MAP_DMA, m)
                k.ioctl(container, uv.VFIO_IOMMU_UNMAP_DMA, u)

            out[name] = timed(step, seconds)
        for index, name in ((uv.VFIO_PCI_BAR0_REGION_INDEX, "region.bar0_ident"),
                            (uv.VFIO_PCI_CONFIG_REGION_INDEX, "region.config")):
            info = uv.vfio_region_info(argsz=ctypes.sizeof(uv.vfio_region_info), index=index)
            k.ioctl(dev, uv.VFIO_DEVICE_GET_REGION_INFO, info)
            off = int(info.offset)
            if name == "region.bar0_ident":
                ident = int.from_bytes(k.pread(dev, 4, off), "little")
                assert ident & 0xFFFF == 0xED, f"edu ident register reads {ident:#x}"
            out[name] = timed(functools.partial(k.pread, dev, 4, off), seconds)
    finally:
        if dev >= 0:
            k.close(dev)
        k.close(grp)
        k.close(container)
    return out


def python_iommufd(k: Any, cdev: str, buf: Buffer, seconds: float) -> dict[str, tuple[int, float]]:
    from pyvfio.uapi import iommufd as ui
    from pyvfio.uapi import vfio as uv

    out: dict[str, tuple[int, float]] = {}
    fd = k.open("/dev/iommu")
    dev = -1
    try:
        alloc = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
        k.ioctl(fd, ui.IOMMU_IOAS_ALLOC, alloc)
        dev = k.open(cdev)
        k.ioctl(dev, uv.VFIO_DEVICE_BIND_IOMMUFD,
                uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=fd))
        k.ioctl(dev, uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt),
                                                 pt_id=alloc.out_ioas_id))
        flags = ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE | ui.IOMMU_IOAS_MAP_WRITEABLE
        for size, name in ((SZ_4K, "iommufd.map_unmap.4k"), (SZ_2M, "iommufd.map_unmap.2m")):
            m = ui.iommu_ioas_map(size=ctypes.sizeof(ui.iommu_ioas_map), flags=flags, ioas_id=alloc.out_ioas_id,
                                  user_va=buf.addr, length=size, iova=IOVA)
            u = ui.iommu_ioas_unmap(size=ctypes.sizeof(ui.iommu_ioas_unmap), ioas_id=alloc.out_ioas_id,
                                    iova=IOVA, length=size)

            def step(m: Any = m, u: Any = u) -> None:
                k.ioctl(fd, ui.IOMMU_IOAS_MAP, m)
                k.ioctl(fd, ui.IOMMU_IOAS_UNMAP, u)

            out[name] = timed(step, seconds)
    finally:
        if dev >= 0:
            k.close(dev)
        k.close(fd)
    return out


def raw_ctypes(buf: Buffer, group: int, bdf: str, cdev: Optional[str], seconds: float) -> dict[str, tuple[int, float]]:
    """The floor for any Python: libc's ioctl through ctypes with pre-built arguments, os.pread for reads.

    Separates what pyvfio's ``Linux.ioctl`` adds (errno translation, argument dispatch) from what calling
    the kernel from CPython costs at all.
    """
    import ctypes.util

    from pyvfio.uapi import iommufd as ui
    from pyvfio.uapi import vfio as uv

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ioctl = libc.ioctl
    out: dict[str, tuple[int, float]] = {}
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    grp = os.open(f"/dev/vfio/{group}", os.O_RDWR)
    ioctl(grp, ctypes.c_ulong(uv.VFIO_GROUP_SET_CONTAINER), ctypes.byref(ctypes.c_int32(container)))
    ioctl(container, ctypes.c_ulong(uv.VFIO_SET_IOMMU), ctypes.c_ulong(uv.VFIO_TYPE1v2_IOMMU))
    dev = ioctl(grp, ctypes.c_ulong(uv.VFIO_GROUP_GET_DEVICE_FD), ctypes.create_string_buffer(bdf.encode()))
    assert dev >= 0, os.strerror(ctypes.get_errno())
    req_map, req_unmap = ctypes.c_ulong(uv.VFIO_IOMMU_MAP_DMA), ctypes.c_ulong(uv.VFIO_IOMMU_UNMAP_DMA)
    for size, name in ((SZ_4K, "type1.map_unmap.4k"), (SZ_2M, "type1.map_unmap.2m")):
        m = ctypes.byref(uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
                                                     flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                                     vaddr=buf.addr, iova=IOVA, size=size))
        u = ctypes.byref(uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap),
                                                       iova=IOVA, size=size))

        def step(m: Any = m, u: Any = u) -> None:
            if ioctl(container, req_map, m) or ioctl(container, req_unmap, u):
                raise OSError(ctypes.get_errno(), "raw map/unmap")

        out[name] = timed(step, seconds)
    for index, name in ((uv.VFIO_PCI_BAR0_REGION_INDEX, "region.bar0_ident"),
                        (uv.VFIO_PCI_CONFIG_REGION_INDEX, "region.config")):
        info = uv.vfio_region_info(argsz=ctypes.sizeof(uv.vfio_region_info), index=index)
        ioctl(dev, ctypes.c_ulong(uv.VFIO_DEVICE_GET_REGION_INFO), ctypes.byref(info))
        out[name] = timed(functools.partial(os.pread, dev, 4, int(info.offset)), seconds)
    for fd in (dev, grp, container):
        os.close(fd)
    if cdev is None or not os.path.exists("/dev/iommu"):
        return out
    fd = os.open("/dev/iommu", os.O_RDWR)
    dev = os.open(cdev, os.O_RDWR)
    alloc = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
    ioctl(fd, ctypes.c_ulong(ui.IOMMU_IOAS_ALLOC), ctypes.byref(alloc))
    ioctl(dev, ctypes.c_ulong(uv.VFIO_DEVICE_BIND_IOMMUFD),
          ctypes.byref(uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=fd)))
    ioctl(dev, ctypes.c_ulong(uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT),
          ctypes.byref(uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt),
                                                        pt_id=alloc.out_ioas_id)))
    req_map, req_unmap = ctypes.c_ulong(ui.IOMMU_IOAS_MAP), ctypes.c_ulong(ui.IOMMU_IOAS_UNMAP)
    flags = ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE | ui.IOMMU_IOAS_MAP_WRITEABLE
    for size, name in ((SZ_4K, "iommufd.map_unmap.4k"), (SZ_2M, "iommufd.map_unmap.2m")):
        m = ctypes.byref(ui.iommu_ioas_map(size=ctypes.sizeof(ui.iommu_ioas_map), flags=flags,
                                           ioas_id=alloc.out_ioas_id, user_va=buf.addr, length=size, iova=IOVA))
        u = ctypes.byref(ui.iommu_ioas_unmap(size=ctypes.sizeof(ui.iommu_ioas_unmap), ioas_id=alloc.out_ioas_id,
                                             iova=IOVA, length=size))

        def step2(m: Any = m, u: Any = u) -> None:
            if ioctl(fd, req_map, m) or ioctl(fd, req_unmap, u):
                raise OSError(ctypes.get_errno(), "raw IOAS map/unmap")

        out[name] = timed(step2, seconds)
    os.close(dev)
    os.close(fd)
    return out


def run_c(argv: list[str], facts: dict[str, Any]) -> dict[str, tuple[int, float]]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, close_fds=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "RESULT":
            out[parts[1]] = (int(parts[2]), float(parts[3]))
        elif parts and parts[0] == "PHYSRUNS":
            facts.setdefault("phys_runs_c_buffer", []).append(int(parts[1]))
    return out


def guest_main(cbin: str, seconds: float, shared: bool, rounds: int) -> int:
    from pyvfio.kernel import Linux

    k = Linux()
    bdf, group, cdev = find_edu()
    buf = Buffer(shared)
    fd_arg = [str(buf.fd)] if shared else []
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    facts: dict[str, Any] = {"kernel": os.uname().release, "edu": bdf, "group": group, "cdev": cdev,
                             "thp_setting": thp.read_text().strip() if thp.exists() else "no THP in this kernel",
                             "memory": "one memfd, MAP_SHARED by both sides" if shared else
                             "MAP_PRIVATE|MAP_ANONYMOUS per process", "madvise": buf.madvise,
                             "thp_kib_python_buffer": buf.thp_kib(), "seconds_per_loop": seconds, "rounds": rounds}
    print(f"guest: {facts}", flush=True)
    iommufd = cdev is not None and os.path.exists("/dev/iommu")
    if not iommufd:
        facts["iommufd"] = "skipped: no /dev/iommu or no VFIO cdev in this kernel"
    # best of ROUNDS, the three sides interleaved: the 2-core host runs other work, and TCG turns any
    # host contention into guest slowness; the best round is the one least disturbed
    best: dict[str, dict[str, float]] = {"python": {}, "c": {}, "ctypes": {}}

    def keep(side: str, got: dict[str, tuple[int, float]]) -> None:
        for name, (n, t) in got.items():
            best[side][name] = max(best[side].get(name, 0.0), n / t)

    for r in range(rounds):
        keep("python", python_type1(k, group, bdf, buf, seconds))
        keep("c", run_c([cbin, "type1", f"/dev/vfio/{group}", bdf, str(seconds), *fd_arg], facts))
        if iommufd:
            assert cdev is not None
            keep("python", python_iommufd(k, cdev, buf, seconds))
            keep("c", run_c([cbin, "iommufd", cdev, str(seconds), *fd_arg], facts))
        keep("ctypes", raw_ctypes(buf, group, bdf, cdev, seconds))
        print(f"round {r + 1}/{rounds} done", flush=True)
    facts["phys_runs_python_buffer"] = buf.phys_runs()
    rows = {name: {"python_ops_s": best["python"][name], "c_ops_s": best["c"][name],
                   "ctypes_ops_s": best["ctypes"].get(name, 0.0)}
            for name in ORDER if name in best["python"] and name in best["c"]}
    out = Path(os.environ.get("PYVFIO_VM_OUT", "."))
    (out / "bench.json").write_text(json.dumps({"facts": facts, "rows": rows}, indent=2) + "\n")
    print(table(facts, rows), flush=True)
    return 0


def table(facts: dict[str, Any], rows: dict[str, dict[str, float]]) -> str:
    lines = [f"kernel {facts.get('kernel')} under QEMU TCG (emulated CPU: absolute figures are far below "
             f"hardware); best of {facts.get('rounds')} rounds of {facts.get('seconds_per_loop')} s per loop and side",
             f"memory: {facts.get('memory')}; THP: {facts.get('thp_setting')}; {facts.get('madvise')}; "
             f"the 2 MiB buffer is backed by "
             f"{facts.get('thp_kib_python_buffer', 0)} KiB of huge pages; physically contiguous runs in it: "
             f"pyvfio's {facts.get('phys_runs_python_buffer')}, "
             f"C's {sorted(set(facts.get('phys_runs_c_buffer') or []))} "
             f"(one IOMMU map call per run)",
             f"{'loop':<22} {'pyvfio ops/s':>13} {'C ops/s':>11} {'pyvfio/C time':>14} {'raw ctypes ops/s':>17}",
             "-" * 81]
    for name, r in rows.items():
        ratio = r["c_ops_s"] / r["python_ops_s"]
        lines.append(f"{name:<22} {r['python_ops_s']:>13,.0f} {r['c_ops_s']:>11,.0f} {ratio:>13.2f}x"
                     f" {r.get('ctypes_ops_s', 0.0):>17,.0f}" + ("" if ratio <= 1.3 else "  (goal 1.3x)"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# host side


def uapi_include() -> Path:
    """The Linux 7.3 UAPI headers: ``$PYVFIO_UAPI_INCLUDE``, else fetched by ``tools/fetch-uapi-headers.sh``."""
    env = os.environ.get("PYVFIO_UAPI_INCLUDE")
    if env and (Path(env) / "linux" / "iommufd.h").is_file():
        return Path(env)
    r = subprocess.run([str(REPO / "tools" / "fetch-uapi-headers.sh"), str(REPO / ".cache" / "uapi")],
                       capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"cannot fetch the UAPI headers: {r.stderr.strip()[-500:]}")
    return Path(r.stdout.strip())


def compile_c(cache: Path) -> Path:
    """Build benchmarks/c/vfio_bench.c into the lane's cache (the guest sees it; /tmp is private there)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is not installed")
    out = cache / "bench" / "vfio_bench"
    out.parent.mkdir(parents=True, exist_ok=True)
    # the raw (not headers_install'ed) UAPI headers still carry the __user annotation
    cmd = [gcc, "-O2", "-Wall", "-D__user=", "-D__EXPORTED_HEADERS__", "-I", str(uapi_include()),
           "-o", str(out), str(C_SOURCE)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gcc failed:\n{r.stderr}")
    return out


def host_main(seconds: float, shared: bool, rounds: int) -> int:
    from tests.vm.harness import default_cache_dir, run_in_vm

    cache = default_cache_dir()
    cbin = compile_c(cache)
    print(f"compiled {C_SOURCE.relative_to(REPO)} -> {cbin}", flush=True)
    argv = [str(Path(sys.executable).resolve()), str(Path(__file__).resolve()), "--guest", "--cbin", str(cbin),
            "--seconds", str(seconds), "--rounds", str(rounds), *([] if shared else ["--anon"])]
    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    result = run_in_vm(argv, cwd=REPO, echo=echo, log=lambda m: print(f"[vm] {m}", flush=True))
    print(result.summary())
    if result.status != "passed" or result.out_dir is None:
        if result.console_tail:
            print(result.console_tail)
        return 2 if result.status == "error" else (0 if result.status == "skipped" else 1)
    data = json.loads((result.out_dir / "bench.json").read_text())
    print()
    print(table(data["facts"], data["rows"]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per loop, side and round (default 0.5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides interleaved; the best is kept "
                                                              "(default 3)")
    parser.add_argument("--anon", action="store_true",
                        help="each side maps its own MAP_ANONYMOUS memory instead of one shared memfd (the 2 MiB "
                             "rows then also compare two physical page layouts)")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cbin", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.guest:
        return guest_main(opts.cbin, opts.seconds, not opts.anon, opts.rounds)
    return host_main(opts.seconds, not opts.anon, opts.rounds)


if __name__ == "__main__":
    sys.exit(main())
