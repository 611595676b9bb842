"""Host side of the VM lane: boot a real Linux in QEMU, run tests in it, report.

The guest is a q35 machine under TCG (1 vCPU) with an emulated Intel IOMMU and QEMU's ``edu`` DMA device
(1234:11e8).  Its root filesystem is the host's own ``/`` shared read-only over virtio-9p under a tmpfs
overlay, so the guest runs the host's Python and this checkout by their absolute paths; a second 9p share
(read-write) is the run folder, where the guest leaves its output and exit status.  See
``tools/vm/README.md`` for the kernels and ``../shared/vm/NOTES.md`` for the measured facts behind the
choices below (TCG only, one vCPU, edu DMA < 4096 bytes).

Everything is cached under :func:`default_cache_dir` -- never under ``/tmp``, ``/run``, ``/var/tmp``,
``/dev/shm`` or ``/root/.cache``, which the guest covers with fresh tmpfs mounts.

Entry points: :func:`run_in_vm` (any command) and :func:`run_tests` (pytest on real-kernel test files).
``python3 -m tests.vm`` is the command line (:mod:`tests.vm.__main__`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INIT_SCRIPT = HERE / "init.sh"
GUEST_RUNNER = HERE / "guest.py"

#: Debian's stock 6.12 kernel (bookworm-security): the fallback when PYVFIO_VM_KERNEL is not set.
#: It has the legacy container/group/type1 path but no iommufd.  When this exact build has left the
#: archive, the newest ``linux-image-6.12.*+deb12-amd64-unsigned`` apt knows of is used instead.
DEBIAN_KERNEL_PACKAGE = "linux-image-6.12.117+deb12-amd64-unsigned"
DEBIAN_KERNEL_VERSION = "6.12.117-1~deb12u1"
DEBIAN_KERNEL_PATTERN = r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$"

#: Host packages: QEMU, a static busybox for the initramfs, kmod (depmod on the host, modprobe in the guest).
HOST_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "/bin/busybox": "busybox-static", "depmod": "kmod"}

#: The guest mounts fresh tmpfs on these (unless one holds a path the run needs).
SCRATCH_DIRS = ("/tmp", "/run", "/var/tmp", "/dev/shm", "/root/.cache")

#: Modules a modular kernel needs before /init can mount its root (with their dependencies).
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

#: The real-kernel test files the lane runs by default (relative to the repository).
DEFAULT_TEST_GLOB = "tests/test_real_kernel_*.py"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class LaneSkipped(Exception):
    """The lane cannot run on this machine (no QEMU and no way to install it); the message says why."""


class LaneError(Exception):
    """The lane could not be set up (kernel download, bad PYVFIO_VM_KERNEL...); the message says why."""


# ---------------------------------------------------------------------------------------------------------
# cache folder


def default_cache_dir() -> Path:
    """``$PYVFIO_VM_CACHE``, else ``/var/cache/pyvfio-vm`` when writable, else ``<repo>/.cache/vm``."""
    env = os.environ.get("PYVFIO_VM_CACHE")
    if env:
        path = Path(env).resolve()
    else:
        path = Path("/var/cache/pyvfio-vm")
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK):
                raise PermissionError(path)
        except OSError:
            path = REPO / ".cache" / "vm"
    for scratch in SCRATCH_DIRS:
        if path == Path(scratch) or Path(scratch) in path.parents:
            raise LaneError(f"cache folder {path} is under {scratch}, which the guest covers with a fresh tmpfs; "
                            f"set PYVFIO_VM_CACHE to another folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------------
# host tools


def _is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF executable without a program interpreter (PT_INTERP)."""
    try:
        data = path.read_bytes()[:65536]
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            break
        if struct.unpack_from("<I", data, off)[0] == 3:  # PT_INTERP
            return False
    return True


def _missing_packages() -> list[str]:
    need = []
    for tool, package in HOST_PACKAGES.items():
        if tool.startswith("/"):
            ok = _is_static_elf(Path(tool))
        else:
            ok = shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()
        if not ok:
            need.append(package)
    return need


def _apt(args: list[str], logfile: Path, cwd: Optional[Path] = None) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(logfile, "ab") as f:
        f.write(("\n$ apt-get " + " ".join(args) + "\n").encode())
        f.flush()
        r = subprocess.run(["apt-get", *args], stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=env, cwd=cwd)
    return r.returncode == 0


def ensure_host_tools(cache: Path, log: Log = _quiet) -> None:
    """Install QEMU, busybox-static and kmod when missing; raise :class:`LaneSkipped` when that is impossible."""
    need = _missing_packages()
    if not need:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LaneSkipped(f"missing {', '.join(need)} and cannot install them (needs root and apt-get)")
    logfile = cache / "apt.log"
    log(f"apt-get install {' '.join(need)}")
    install = ["install", "-y", "--no-install-recommends", *need]
    if not _apt(install, logfile):
        log("apt-get install failed; apt-get update and retry")
        if not (_apt(["update"], logfile) and _apt(install, logfile)):
            raise LaneSkipped(f"apt-get install {' '.join(need)} failed (see {logfile})")
    still = _missing_packages()
    if still:
        raise LaneSkipped(f"installed {', '.join(need)} but {', '.join(still)} still missing (see {logfile})")


def qemu_version() -> str:
    try:
        r = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.splitlines()[0].strip() if r.stdout else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# ---------------------------------------------------------------------------------------------------------
# kernels


@dataclasses.dataclass
class GuestKernel:
    """A bootable kernel image with its module tree (``lib/modules/<release>``, or None: all built in)."""

    image: Path
    release: str
    modules: Optional[Path]
    origin: str
    insmod: list[str] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        return f"{self.release} ({self.origin})"


def bzimage_release(image: Path) -> str:
    """The kernel release string in a bzImage's setup header (``kernel_version`` at 0x20e)."""
    with open(image, "rb") as f:
        head = f.read(0x8000)
    if head[0x202:0x206] != b"HdrS":
        raise LaneError(f"{image} is not an x86 bzImage (no HdrS setup header)")
    ptr, = struct.unpack_from("<H", head, 0x20E)
    raw = head[ptr + 0x200: ptr + 0x200 + 256].split(b"\0", 1)[0]
    return raw.decode(errors="replace").split()[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _depmod(root: Path, release: str) -> None:
    depmod = shutil.which("depmod") or "/usr/sbin/depmod"
    subprocess.run([depmod, "-b", str(root), release], check=True, capture_output=True)


def _resolve_path(value: str) -> Path:
    """A path from the environment: relative to the current folder, else to the repository."""
    p = Path(value).expanduser()
    if not p.is_absolute() and not p.exists() and (REPO / p).exists():
        p = REPO / p
    return p.resolve()


def custom_kernel(image: Path, modules_tar: Optional[Path], cache: Path, log: Log = _quiet) -> GuestKernel:
    """``PYVFIO_VM_KERNEL`` (+ ``PYVFIO_VM_MODULES``, a tarball holding ``lib/modules/<release>/``)."""
    if not image.is_file():
        raise LaneError(f"PYVFIO_VM_KERNEL={image}: no such file")
    release = bzimage_release(image)
    mods: Optional[Path] = None
    if modules_tar is not None:
        if not modules_tar.is_file():
            raise LaneError(f"PYVFIO_VM_MODULES={modules_tar}: no such file")
        root = cache / "kernels" / f"modules-{_sha256(modules_tar)[:16]}"
        if not (root / ".complete").exists():
            log(f"unpacking {modules_tar.name}")
            tmp = root.with_name(root.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            with tarfile.open(modules_tar) as tar:
                # plain files and folders only: the kernel's build/source links point into its build tree
                members = [m for m in tar.getmembers() if (m.isfile() or m.isdir())
                           and not m.name.startswith("/") and ".." not in Path(m.name).parts]
                for m in members:
                    tar.extract(m, tmp, set_attrs=False)
            releases = sorted(p.name for p in (tmp / "lib" / "modules").glob("*") if p.is_dir())
            if not releases:
                raise LaneError(f"{modules_tar} holds no lib/modules/<release>/ folder")
            for rel in releases:
                if not (tmp / "lib" / "modules" / rel / "modules.dep").exists():
                    _depmod(tmp, rel)
            (tmp / ".complete").write_text("\n".join(releases) + "\n")
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        candidates = root / "lib" / "modules"
        mods = candidates / release
        if not mods.is_dir():
            found = sorted(p.name for p in candidates.iterdir() if p.is_dir())
            raise LaneError(f"{modules_tar} has modules for {', '.join(found)}, not for the kernel's {release}")
    return GuestKernel(image=image, release=release, modules=mods, origin=f"PYVFIO_VM_KERNEL={image}")


def _debian_candidates() -> list[str]:
    r = subprocess.run(["apt-cache", "search", "--names-only", DEBIAN_KERNEL_PATTERN],
                       capture_output=True, text=True)
    names = [line.split(" - ", 1)[0].strip() for line in r.stdout.splitlines() if line.strip()]

    def key(name: str) -> tuple[int, ...]:
        m = re.search(r"6\.12\.(\d+)", name)
        return (int(m.group(1)) if m else 0,)
    return sorted(names, key=key, reverse=True)


def debian_kernel(cache: Path, log: Log = _quiet) -> GuestKernel:
    """Debian's stock 6.12 (``apt-get download`` + ``dpkg-deb -x``), unpacked once into the cache."""
    kernels = cache / "kernels"
    for done in sorted(kernels.glob("debian-linux-image-6.12.*/.complete"), reverse=True):
        return _debian_from(done.parent, done.read_text().strip())
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    logfile = cache / "apt.log"
    package, spec = DEBIAN_KERNEL_PACKAGE, f"{DEBIAN_KERNEL_PACKAGE}={DEBIAN_KERNEL_VERSION}"
    log(f"apt-get download {spec}")
    ok = _apt(["download", spec], logfile, cwd=debs)
    if not ok:
        log("download failed; apt-get update and retry")
        _apt(["update"], logfile)
        ok = _apt(["download", spec], logfile, cwd=debs)
    if not ok:
        for name in _debian_candidates():
            log(f"{spec} is gone from the archive; trying {name}")
            if _apt(["download", name], logfile, cwd=debs):
                package, ok = name, True
                break
    if not ok:
        raise LaneError(f"cannot download Debian's 6.12 kernel (see {logfile})")
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    release = package[len("linux-image-"):-len("-unsigned")]
    root = kernels / f"debian-{package}"
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"unpacking {deb.name}")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    _depmod(tmp, release)
    (tmp / ".complete").write_text(release + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return _debian_from(root, release)


def _debian_from(root: Path, release: str) -> GuestKernel:
    image = root / "boot" / f"vmlinuz-{release}"
    mods = root / "lib" / "modules" / release
    insmod = []
    mtty = root / "mtty" / "mtty.ko"
    if mtty.exists():
        insmod.append(str(mtty))
    return GuestKernel(image=image, release=release, modules=mods, origin=f"Debian {root.name[len('debian-'):]}",
                       insmod=insmod)


def build_debian_mtty(kernel: GuestKernel, cache: Path, log: Log = _quiet) -> None:
    """Build the kernel's mtty sample (mdev with migration v2) out of tree for Debian's 6.12.

    From the matching ``linux-source-6.12`` (only ``samples/vfio-mdev/mtty.c`` is unpacked) and the
    unpacked ``linux-headers``/``linux-kbuild`` packages; gcc-12 and make come from Debian.  The module
    lands beside the kernel (``<kernel root>/mtty/mtty.ko``), where :func:`debian_kernel` finds it.
    """
    root = kernel.image.parent.parent
    target = root / "mtty" / "mtty.ko"
    if target.exists():
        return
    release = kernel.release  # 6.12.117+deb12-amd64
    base = release.rsplit("-", 1)[0]  # 6.12.117+deb12
    debs = cache / "debs"
    image_deb = sorted(debs.glob(f"linux-image-{release}-unsigned_*.deb"))
    if not image_deb:
        raise LaneError(f"no linux-image deb for {release} in {debs}")
    version = image_deb[-1].name.split("_")[1]
    logfile = cache / "apt.log"
    need_tools = [p for t, p in (("gcc-12", "gcc-12"), ("make", "make")) if shutil.which(t) is None]
    if need_tools and not _apt(["install", "-y", "--no-install-recommends", *need_tools], logfile):
        raise LaneError(f"cannot install {' '.join(need_tools)} (see {logfile})")
    packages = [f"linux-headers-{release}", f"linux-headers-{base}-common", f"linux-kbuild-{base}", "linux-source-6.12"]
    for pkg in packages:
        if not list(debs.glob(f"{pkg}_*.deb")):
            log(f"apt-get download {pkg}={version}")
            if not _apt(["download", f"{pkg}={version}"], logfile, cwd=debs):
                raise LaneError(f"cannot download {pkg}={version} (see {logfile})")
    hdr_root = root / "headers"
    headers = hdr_root / "usr" / "src" / f"linux-headers-{release}"
    if not (headers / "Makefile").exists():
        for pkg in packages[:3]:
            subprocess.run(["dpkg-deb", "-x", str(next(debs.glob(f"{pkg}_*.deb"))), str(hdr_root)], check=True)
        # the arch Makefile includes the common one by its absolute /usr/src path
        mk = headers / "Makefile"
        mk.write_text(mk.read_text().replace("include /usr/src/", f"include {hdr_root}/usr/src/"))
    build = root / "mtty-build"
    build.mkdir(exist_ok=True)
    if not (build / "mtty.c").exists():
        log("unpacking samples/vfio-mdev/mtty.c from linux-source-6.12")
        source_deb = next(debs.glob("linux-source-6.12_*.deb"))
        (build / "mtty.c").write_bytes(_member_of_source_deb(source_deb, "samples/vfio-mdev/mtty.c"))
    (build / "Kbuild").write_text("obj-m := mtty.o\n")
    log("building mtty.ko")
    r = subprocess.run(["make", "-C", str(headers), f"M={build}", "modules"], capture_output=True, text=True)
    (build / "build.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not (build / "mtty.ko").exists():
        raise LaneError(f"building mtty.ko failed (see {build / 'build.log'})")
    target.parent.mkdir(exist_ok=True)
    shutil.copy2(build / "mtty.ko", target)
    kernel.insmod.append(str(target))


def _member_of_source_deb(deb: Path, suffix: str) -> bytes:
    """One file of the kernel tree inside a linux-source deb (a .tar.xz inside the deb's data tar)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for member in outer:
                if member.name.endswith(".tar.xz") and "linux-source" in member.name:
                    stream = outer.extractfile(member)
                    assert stream is not None
                    with tarfile.open(fileobj=stream, mode="r|xz") as inner:
                        for m in inner:
                            if m.name.endswith(suffix) and m.isfile():
                                data = inner.extractfile(m)
                                assert data is not None
                                return data.read()
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    raise LaneError(f"{suffix} not found in {deb}")


def select_kernel(cache: Path, log: Log = _quiet) -> GuestKernel:
    """``PYVFIO_VM_KERNEL`` (+ ``PYVFIO_VM_MODULES``) when set, else Debian's stock 6.12.

    With ``PYVFIO_VM_MTTY=1`` the Debian kernel gets the mtty sample built out of tree (once, ~1 min,
    ~150 MB of source package); a failure there is reported and the lane goes on without mtty.
    """
    image = os.environ.get("PYVFIO_VM_KERNEL")
    if image:
        mods = os.environ.get("PYVFIO_VM_MODULES")
        return custom_kernel(_resolve_path(image), _resolve_path(mods) if mods else None, cache, log)
    kernel = debian_kernel(cache, log)
    if os.environ.get("PYVFIO_VM_MTTY") == "1" and not kernel.insmod:
        try:
            build_debian_mtty(kernel, cache, log)
        except (LaneError, OSError, subprocess.CalledProcessError, tarfile.TarError) as e:
            log(f"no mtty for {kernel.release}: {e}")
    return kernel


# ---------------------------------------------------------------------------------------------------------
# initramfs


def _module_index(mods: Path) -> tuple[dict[str, str], dict[str, list[str]], set[str]]:
    """From modules.dep/modules.builtin: name -> path, path -> dependency paths, built-in names."""
    by_name: dict[str, str] = {}
    deps: dict[str, list[str]] = {}
    dep_file = mods / "modules.dep"
    if dep_file.exists():
        for line in dep_file.read_text().splitlines():
            if ":" not in line:
                continue
            path, rest = line.split(":", 1)
            deps[path] = rest.split()
            by_name[_module_name(path)] = path
    builtin = set()
    builtin_file = mods / "modules.builtin"
    if builtin_file.exists():
        builtin = {_module_name(p) for p in builtin_file.read_text().split()}
    return by_name, deps, builtin


def _module_name(path: str) -> str:
    base = os.path.basename(path)
    return base.split(".ko", 1)[0].replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq", str(path)], check=True, capture_output=True).stdout
    return data


def root_modules(kernel: GuestKernel) -> list[tuple[str, bytes]]:
    """The ``.ko`` files (in load order) the guest needs to mount its 9p/overlay root."""
    if kernel.modules is None:
        return []
    by_name, deps, builtin = _module_index(kernel.modules)
    order: list[str] = []

    def add(path: str) -> None:
        for dep in deps.get(path, []):
            add(dep)
        if path not in order:
            order.append(path)

    for name in ROOT_MODULES:
        if name in builtin or name not in by_name:
            continue
        add(by_name[name])
    return [(os.path.basename(p).split(".ko", 1)[0] + ".ko", _module_bytes(kernel.modules / p)) for p in order]


def _cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A newc cpio archive of (name, mode, data, rdev) entries, with the trailer."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data, rdev in [*entries, ("TRAILER!!!", 0, b"", 0)]:
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0,
                  os.major(rdev) if rdev else 0, os.minor(rdev) if rdev else 0, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        out.write(header + encoded)
        out.write(b"\0" * ((4 - (len(header) + len(encoded)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return out.getvalue()


def build_initramfs(kernel: GuestKernel, cache: Path, log: Log = _quiet) -> Path:
    """A gzip'd newc initramfs: /init (tests/vm/init.sh), a static busybox, the root modules; cached by content."""
    busybox = Path("/bin/busybox").read_bytes()
    init = INIT_SCRIPT.read_bytes()
    modules = root_modules(kernel)
    key = hashlib.sha256(init + hashlib.sha256(busybox).digest()
                         + b"".join(n.encode() + hashlib.sha256(d).digest() for n, d in modules)).hexdigest()[:16]
    target = cache / "initramfs" / f"initramfs-{key}.cpio.gz"
    if target.exists():
        return target
    log(f"building {target.name} ({len(modules)} root modules)")
    d, f, c = 0o040755, 0o100755, 0o020600
    entries: list[tuple[str, int, bytes, int]] = [
        ("bin", d, b"", 0), ("dev", d, b"", 0), ("dev/console", c, b"", os.makedev(5, 1)),
        ("proc", d, b"", 0), ("sys", d, b"", 0), ("lower", d, b"", 0), ("rw", d, b"", 0), ("newroot", d, b"", 0),
        ("init", f, init, 0), ("bin/busybox", f, busybox, 0),
    ]
    if modules:
        entries.append(("modules", d, b"", 0))
        entries += [(f"modules/{name}", 0o100644, data, 0) for name, data in modules]
        entries.append(("modules/order", 0o100644, "".join(n + "\n" for n, _ in modules).encode(), 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6))
    tmp.rename(target)
    return target


# ---------------------------------------------------------------------------------------------------------
# one run


@dataclasses.dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors

    def line(self) -> str:
        text = f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
        return text + (f", {self.errors} errors" if self.errors else "")


@dataclasses.dataclass
class VmResult:
    """What one boot produced.  ``status``: passed, failed (the command failed), error (the VM did not
    report: hang, panic, QEMU abort, setup failure) or skipped (no QEMU)."""

    status: str
    reason: str
    rc: Optional[int] = None
    out_dir: Optional[Path] = None
    kernel: Optional[GuestKernel] = None
    qemu: str = ""
    setup_s: float = 0.0
    boot_s: Optional[float] = None
    command_s: Optional[float] = None
    total_s: float = 0.0
    counts: Optional[Counts] = None
    facts: dict[str, object] = dataclasses.field(default_factory=dict)
    output: str = ""
    console_tail: str = ""
    kernel_warnings: int = 0  # WARN()s in the guest kernel log: reported, not a failure by themselves

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")

    def summary(self) -> str:
        lines = [f"VM lane: {self.status}" + (f" -- {self.reason}" if self.reason else "")]
        if self.kernel is not None:
            lines.append(f"  kernel   {self.kernel.describe()}")
        if self.qemu:
            lines.append(f"  qemu     {self.qemu}, TCG, 1 vCPU, q35 + intel-iommu + edu")
        if self.facts:
            edu = self.facts.get("edu") or []
            lines.append(f"  guest    /dev/iommu {'yes' if self.facts.get('dev_iommu') else 'no'}, "
                         f"mtty {'yes' if self.facts.get('mtty') else 'no'}, edu {len(edu)} "  # type: ignore[arg-type]
                         f"bound to vfio-pci")
        times = [f"host setup {self.setup_s:.1f} s"]
        if self.boot_s is not None:
            times.append(f"boot to VFIO ready {self.boot_s:.1f} s")
        if self.command_s is not None:
            times.append(f"guest command {self.command_s:.1f} s")
        times.append(f"total {self.total_s:.1f} s")
        lines.append("  time     " + ", ".join(times))
        if self.counts is not None:
            lines.append(f"  tests    {self.counts.line()} (in the guest, on the real kernel)")
        if self.kernel_warnings:
            lines.append(f"  warning  the guest kernel logged {self.kernel_warnings} WARNING(s): see console.log")
        if self.out_dir is not None:
            lines.append(f"  logs     {self.out_dir}")
        return "\n".join(lines)


def _tmpfs_dirs(needed: list[Path]) -> list[str]:
    keep = []
    for scratch in SCRATCH_DIRS:
        s = Path(scratch)
        if any(p == s or s in p.parents for p in needed):
            continue
        keep.append(scratch)
    return keep


def _new_run_dir(cache: Path, keep: int = 12) -> Path:
    runs = cache / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    old = sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    for p in old[:max(0, len(old) - keep + 1)]:
        shutil.rmtree(p, ignore_errors=True)
    out = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    out.mkdir()
    last = runs / "last"
    with contextlib.suppress(OSError):
        if last.is_symlink() or last.exists():
            last.unlink()
        last.symlink_to(out.name)
    return out


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def junit_counts(path: Path) -> Optional[Counts]:
    """Pass/fail/skip counts from pytest's JUnit XML."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    c = Counts()
    for s in suites:
        tests, failures = int(s.get("tests", 0)), int(s.get("failures", 0))
        errors, skipped = int(s.get("errors", 0)), int(s.get("skipped", 0))
        c.failed += failures
        c.errors += errors
        c.skipped += skipped
        c.passed += tests - failures - errors - skipped
    return c


_FATAL_QEMU = re.compile(r"KVM internal error|emulation failure|hw_error|Aborted|core dumped")
# kernel messages only (printk timestamps): the guest command's own output is on the console too
_FATAL_CONSOLE = re.compile(r"Kernel panic - not syncing|^\[\s*\d+\.\d+\] (?:.*\b)?(?:Oops:|BUG: |general protection fault)",
                            re.MULTILINE)


def run_in_vm(argv: list[str], *, cwd: Optional[Path] = None, env: Optional[dict[str, str]] = None,
              timeout: Optional[float] = None, echo: Optional[Callable[[str], None]] = None,
              log: Log = _quiet, cache: Optional[Path] = None) -> VmResult:
    """Boot the guest, run ``argv`` in it (cwd, as root, ``PYVFIO_KERNEL=real``), power off, report.

    ``echo`` receives the guest command's output as it arrives; ``log`` the harness's progress lines.
    Never raises for a guest failure: a hang (``timeout``, default ``$PYVFIO_VM_TIMEOUT`` or 600 s), a
    panic or a QEMU abort is a result with status ``error`` and the console's tail.
    """
    t_start = time.monotonic()
    cwd = (cwd or Path.cwd()).resolve()
    timeout = float(timeout if timeout is not None else os.environ.get("PYVFIO_VM_TIMEOUT", 600))
    try:
        cache = cache or default_cache_dir()
        ensure_host_tools(cache, log)
        kernel = select_kernel(cache, log)
        initrd = build_initramfs(kernel, cache, log)
    except LaneSkipped as e:
        return VmResult(status="skipped", reason=str(e), total_s=time.monotonic() - t_start)
    except (LaneError, OSError, subprocess.CalledProcessError) as e:
        return VmResult(status="error", reason=f"setup failed: {e}", total_s=time.monotonic() - t_start)

    out = _new_run_dir(cache)
    python = Path(sys.executable).resolve()
    needed = [cwd, out, python, REPO, cache]
    for p in (*needed, *( [kernel.modules] if kernel.modules else [])):
        if any(ch.isspace() for ch in str(p)):
            return VmResult(status="error", reason=f"path with white space not supported: {p}", out_dir=out)
    job = {
        "argv": argv, "cwd": str(cwd),
        # the host's Python (the one running this harness, with pytest) comes first on the guest's PATH
        "env": {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO),
                "PATH": f"{python.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                **(env or {})},
        "insmod": kernel.insmod,
    }
    (out / "job.json").write_text(json.dumps(job, indent=2) + "\n")
    (out / "run.sh").write_text(
        "# written by tests/vm/harness.py: the guest's /init runs this inside the host root\n"
        f"cd {shlex.quote(str(cwd))} || exit 125\n"
        f"exec {shlex.quote(str(python))} {shlex.quote(str(GUEST_RUNNER))} {shlex.quote(str(out / 'job.json'))}\n")
    append = ["console=ttyS0", "panic=-1", "loglevel=4", "rdinit=/init", "intel_iommu=on", "iommu=pt",
              f"pyvfio.out={out}", f"pyvfio.tmpfs={','.join(_tmpfs_dirs(needed))}"]
    if kernel.modules is not None:
        append.append(f"pyvfio.kmods={kernel.modules}")
    append += os.environ.get("PYVFIO_VM_CMDLINE", "").split()
    accel = os.environ.get("PYVFIO_VM_ACCEL", "tcg")
    qemu = [
        "qemu-system-x86_64", "-machine", "q35" + (",kernel-irqchip=split" if accel == "kvm" else ""),
        "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-smp", "1",
        "-m", os.environ.get("PYVFIO_VM_MEM", "1G"),
        "-nodefaults", "-display", "none", "-no-reboot", "-serial", f"file:{out / 'console.log'}",
        "-kernel", str(kernel.image), "-initrd", str(initrd), "-append", " ".join(append),
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=pyvfioout,path={out},security_model=none,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=pyvfioout,mount_tag=pyvfioout",
        "-device", "edu",
    ]
    (out / "qemu.cmdline").write_text(shlex.join(qemu) + "\n")
    result = VmResult(status="error", reason="", out_dir=out, kernel=kernel, qemu=qemu_version())
    result.setup_s = time.monotonic() - t_start
    log(f"booting {kernel.describe()} (logs in {out})")
    t_boot = time.monotonic()
    reason = ""
    with open(out / "qemu.log", "wb") as qlog:
        proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT)
        offset = 0
        try:
            while True:
                done = proc.poll() is not None
                if result.boot_s is None and (out / "guest-facts.json").exists():
                    result.boot_s = time.monotonic() - t_boot
                if echo is not None:
                    offset = _echo_new(out / "guest-output.txt", offset, echo)
                if done:
                    break
                qtext = _read(out / "qemu.log")
                if _FATAL_QEMU.search(qtext):
                    reason = "QEMU reported a fatal error: " + _FATAL_QEMU.search(qtext).group(0)  # type: ignore[union-attr]
                    break
                if time.monotonic() - t_boot > timeout:
                    reason = f"timeout: the guest did not finish within {timeout:.0f} s"
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if echo is not None:
        _echo_new(out / "guest-output.txt", offset, echo)
    result.total_s = time.monotonic() - t_start
    result.output = _read(out / "guest-output.txt")
    result.console_tail = _tail(out / "console.log", 60)
    facts = _read(out / "guest-facts.json")
    result.facts = json.loads(facts) if facts else {}
    guest = _read(out / "result.json")
    if guest:
        result.command_s = float(json.loads(guest).get("command_s", 0.0))
    result.counts = junit_counts(out / "junit.xml")
    rc_text = _read(out / "rc").strip()
    console = _read(out / "console.log")
    fatal = _FATAL_CONSOLE.search(console)
    result.kernel_warnings = len(re.findall(r"^\[\s*\d+\.\d+\] WARNING: ", console, re.MULTILINE))
    if reason:
        result.reason = reason
    elif not rc_text:
        why = f"QEMU exit status {proc.returncode}"
        qemu_said = [ln for ln in _read(out / "qemu.log").splitlines() if ln.startswith("qemu")]
        if qemu_said:
            why += f": {qemu_said[0].strip()}"
        if fatal:
            why += f"; the guest kernel reported '{fatal.group(0).strip()}'"
        result.reason = f"the guest never reported an exit status ({why})"
    else:
        result.rc = int(rc_text)
        if fatal:
            result.reason = f"the guest kernel reported '{fatal.group(0).strip()}' (see console.log)"
        elif result.rc == 0:
            result.status = "passed"
        else:
            result.status = "failed"
            result.reason = f"guest command exit status {result.rc}"
    (out / "summary.json").write_text(json.dumps({
        "status": result.status, "reason": result.reason, "rc": result.rc, "kernel": kernel.describe(),
        "qemu": result.qemu, "setup_s": round(result.setup_s, 2),
        "boot_s": None if result.boot_s is None else round(result.boot_s, 2),
        "command_s": result.command_s, "total_s": round(result.total_s, 2),
        "counts": dataclasses.asdict(result.counts) if result.counts else None}, indent=2) + "\n")
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _echo_new(path: Path, offset: int, echo: Callable[[str], None]) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    cut = data.rfind(b"\n") + 1  # whole lines only
    if cut:
        echo(data[:cut].decode(errors="replace"))
    return offset + cut


def default_test_files() -> list[str]:
    """The real-kernel test files, relative to the repository (``tests/test_real_kernel_*.py``)."""
    return sorted(str(p.relative_to(REPO)) for p in REPO.glob(DEFAULT_TEST_GLOB))


def pytest_argv(paths: list[str], out_name: str = "junit.xml", extra: Optional[list[str]] = None) -> list[str]:
    """The guest's pytest command; ``$PYVFIO_VM_OUT`` (set by the guest runner) receives the JUnit XML.

    Plugins installed on the host are not auto-loaded (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``): Python in the
    guest is ~13x slower and hypothesis' plugin alone costs ~13 s there; a test file that needs one names
    it (``pytest_plugins``) or the caller passes ``-p NAME``.
    """
    return ["/bin/sh", "-c",
            f"export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1; exec {shlex.quote(str(Path(sys.executable).resolve()))} "
            f"-m pytest -v -p no:cacheprovider "
            f"--junitxml=\"$PYVFIO_VM_OUT/{out_name}\" " + " ".join(shlex.quote(a) for a in [*(extra or []), *paths])]


def run_tests(paths: Optional[list[str]] = None, *, extra: Optional[list[str]] = None,
              timeout: Optional[float] = None, echo: Optional[Callable[[str], None]] = None,
              log: Log = _quiet, cache: Optional[Path] = None) -> VmResult:
    """Run pytest on ``paths`` (default: :func:`default_test_files`) in the guest, from the repository root."""
    files = paths if paths else default_test_files()
    return run_in_vm(pytest_argv(files, extra=extra), cwd=REPO, timeout=timeout, echo=echo, log=log, cache=cache)


# ---------------------------------------------------------------------------------------------------------
# the differential report: the same test files on the simulated kernel (host) and the real one (guest)

#: Skip reasons that are a documented capability gap of one side, not a disagreement.  On the simulated
#: kernel: tests marked ``realkernel`` (what only real hardware shows).  On the real kernel: features the
#: booted kernel was built without (Debian's stock 6.12 has no iommufd, no cdev, no MAP_FILE, no mtty unless
#: built).  Each is a regular expression searched in the skip message.
SIM_GAPS = (r"needs a real VFIO kernel",)
REAL_GAPS = (r"no /dev/iommu", r"no iommufd", r"CONFIG_IOMMUFD", r"no VFIO cdev", r"CONFIG_VFIO_DEVICE_CDEV",
             r"needs Linux \d+\.\d+", r"no mtty parent device")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One test's result in one JUnit file: passed, failed, error or skipped, with pytest's message."""

    status: str
    message: str = ""

    def cell(self, width: int = 48) -> str:
        if self.status == "passed":
            return "passed"
        text = f"{self.status}: {self.message.splitlines()[0] if self.message else ''}".rstrip(": ")
        return text if len(text) <= width else text[: width - 3] + "..."


_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def junit_outcomes(path: Path) -> Optional[dict[str, Outcome]]:
    """Per-test outcomes from pytest's JUnit XML, keyed ``tests/file.py::[Class::]name[param]``.

    A test that failed and then errored in teardown appears twice in the XML; the worse entry wins.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    found: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        key = _test_id(case.get("classname", ""), case.get("name", ""))
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = child.get("message") or (child.text or "").strip()
                break
        new = Outcome(status, message)
        old = found.get(key)
        if old is None or _RANK[new.status] > _RANK[old.status]:
            found[key] = new
    return found


def _test_id(classname: str, name: str) -> str:
    """pytest's node id from JUnit's dotted classname (``tests.test_x.TestY`` -> ``tests/test_x.py::TestY``)."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        if (REPO / Path(*parts[:cut])).with_suffix(".py").is_file():
            return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])
    return f"{classname}::{name}"


@dataclasses.dataclass(frozen=True)
class DiffRow:
    """One scenario on both kernels.  ``verdict``: agree, gap (a documented skip on one side), disagree."""

    scenario: str
    sim: Optional[Outcome]
    real: Optional[Outcome]
    verdict: str
    why: str = ""


def _gap(outcome: Optional[Outcome], patterns: tuple[str, ...]) -> bool:
    return outcome is not None and outcome.status == "skipped" and any(
        re.search(p, outcome.message) for p in patterns)


def compare_outcomes(sim: dict[str, Outcome], real: dict[str, Outcome]) -> list[DiffRow]:
    """Pair every scenario's outcome on the simulated and the real kernel and judge the pair.

    Agreement: passed on both, failed on both (the failure itself still fails the run), or skipped on
    both with the same message (an environment limit both sides share).  A gap: each side passed or
    skipped for a documented reason (:data:`SIM_GAPS`, :data:`REAL_GAPS`).  Everything else disagrees:
    passed on one side and failed on the other, a skip for any other reason, or a scenario only one side
    collected.
    """
    rows = []
    bad = ("failed", "error")
    for key in sorted(set(sim) | set(real)):
        s, r = sim.get(key), real.get(key)
        if s is None or r is None:
            rows.append(DiffRow(key, s, r, "disagree", f"only collected on the {'real' if s is None else 'simulated'} "
                                                        f"kernel"))
        elif s.status in bad or r.status in bad:
            both = s.status in bad and r.status in bad
            rows.append(DiffRow(key, s, r, "agree" if both else "disagree",
                                f"{s.status} on the simulated kernel, {r.status} on the real"))
        elif s.status == r.status and (s.status == "passed" or s.message == r.message):
            rows.append(DiffRow(key, s, r, "agree"))
        elif (s.status == "passed" or _gap(s, SIM_GAPS)) and (r.status == "passed" or _gap(r, REAL_GAPS)):
            why = "real kernel only" if r.status == "passed" else "capability missing from the booted kernel"
            rows.append(DiffRow(key, s, r, "gap", why))
        else:
            side = "real" if r.status == "skipped" and not _gap(r, REAL_GAPS) else "simulated"
            rows.append(DiffRow(key, s, r, "disagree", f"skipped on the {side} kernel for an undocumented reason"))
    return rows


@dataclasses.dataclass
class Differential:
    rows: list[DiffRow]

    @property
    def disagreements(self) -> list[DiffRow]:
        return [r for r in self.rows if r.verdict == "disagree"]

    @property
    def failures(self) -> list[DiffRow]:
        """Scenarios that failed on either side (agreeing failures included: a failure is never a pass)."""
        bad = ("failed", "error")
        return [r for r in self.rows if (r.sim is not None and r.sim.status in bad)
                or (r.real is not None and r.real.status in bad)]

    @property
    def ok(self) -> bool:
        return not self.disagreements and not self.failures

    def count(self, side: str, status: str) -> int:
        return sum(1 for r in self.rows if (o := getattr(r, side)) is not None and o.status == status)

    def table(self, width: int = 44) -> str:
        name_w = min(max((len(r.scenario) for r in self.rows), default=8), 96)
        head = f"{'scenario':<{name_w}}  {'simulated kernel':<{width}}  {'real kernel':<{width}}  verdict"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            name = r.scenario if len(r.scenario) <= name_w else "..." + r.scenario[-(name_w - 3):]
            cells = [o.cell(width) if o is not None else "(not collected)" for o in (r.sim, r.real)]
            lines.append(f"{name:<{name_w}}  {cells[0]:<{width}}  {cells[1]:<{width}}  {r.verdict}"
                         + (f" ({r.why})" if r.verdict == "disagree" else ""))
        return "\n".join(lines)

    def summary(self) -> str:
        gaps_sim = sum(1 for r in self.rows if r.verdict == "gap" and r.sim is not None and r.sim.status == "skipped")
        gaps_real = sum(1 for r in self.rows if r.verdict == "gap" and r.real is not None
                        and r.real.status == "skipped")
        both = sum(1 for r in self.rows if r.verdict == "agree" and r.sim is not None and r.sim.status == "passed")
        return (f"{len(self.rows)} scenarios, {len(self.disagreements)} disagreements "
                f"(passed on both {both}; real kernel only {gaps_sim}; skipped on the real kernel for a missing "
                f"capability {gaps_real}; failed on either side {len(self.failures)}; "
                f"real kernel: {self.count('real', 'passed')} passed, {self.count('real', 'skipped')} skipped)")

    def to_json(self) -> dict[str, object]:
        def o(x: Optional[Outcome]) -> Optional[dict[str, str]]:
            return None if x is None else {"status": x.status, "message": x.message[:2000]}
        return {"scenarios": len(self.rows), "disagreements": len(self.disagreements),
                "failures": len(self.failures),
                "rows": [{"scenario": r.scenario, "sim": o(r.sim), "real": o(r.real), "verdict": r.verdict,
                          "why": r.why} for r in self.rows]}


def run_host_tests(paths: list[str], junit: Path, extra: Optional[list[str]] = None,
                   timeout: float = 600) -> tuple[int, str]:
    """The same pytest run on this machine, on the simulated kernel (``PYVFIO_KERNEL`` forced to ``sim``).

    Returns pytest's exit status and its output; the JUnit XML lands in ``junit``.
    """
    env = dict(os.environ, PYVFIO_KERNEL="sim", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
            *(extra or []), *paths]
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr
