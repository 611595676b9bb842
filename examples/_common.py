"""What every example shares: the kernel to talk to, the setup steps, and how results are printed.

Examples are written once against the syscall surface (``kernel.open``,
``ioctl``, ``pread``, ``pwrite``, ``mmap``, ``close``) and the UAPI structs.
Without arguments they run on :class:`pyvfio.sim.Kernel` with a simulated
device; with ``--device 0000:00:04.0`` they run on the real kernel against
that PCI device, which must be bound to vfio-pci (an mdev UUID works too, for
the migration examples).

Each example is about ONE ioctl.  Everything needed before it -- opening a
container, a group and a device, or an iommufd, a cdev and an IOAS -- lives
here, so an example's own text is the ioctl itself: the struct it fills, the
call, and what the kernel wrote back.  The setup helpers are context managers
that close every descriptor in reverse order, also when a step fails.

Every example ends with one ``result:`` line saying how far it got:

* ``result: ran`` -- the ioctl succeeded and did its job;
* ``result: kernel answered ERRNO`` -- the ioctl was issued and the kernel
  refused it for a reason this machine cannot change (no such hardware, a
  different IOMMU type); the line says why, and that refusal is the lesson;
* ``result: reference only`` -- the ioctl is not issued at all (its request
  number means something else on this kind of descriptor); the struct is
  built and printed;
* ``result: cannot run here`` -- a real kernel lacks something (no iommufd,
  no cdev, no migratable device); the line says what.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import mmap
import os
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, TypeVar

from pyvfio.kernel import Linux
from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio

PAGE = 4096
#: IOVA the examples map at: well below the edu's 28-bit DMA mask, away from the x86 MSI window.
IOVA = 0x100000

_S = TypeVar("_S", bound=ctypes.Structure)


# ---------------------------------------------------------------------------------------------------------
# the kernel and the device


@dataclass
class Target:
    """The kernel an example talks to and the device it uses (its PCI address, IOMMU group and cdev)."""

    kernel: Any
    address: str
    group: int
    cdev: Optional[str]
    simulated: bool

    @property
    def where(self) -> str:
        kernel = "simulated kernel" if self.simulated else f"Linux {os.uname().release}"
        return f"{kernel}, device {self.address} (IOMMU group {self.group})"


_UUID_LEN = 36


def sysfs_device(address: str) -> tuple[int, Optional[str]]:
    """IOMMU group and cdev path of a real device, with errors that say what to do.

    ``address`` is a PCI address (``0000:00:04.0``), which must be bound to
    vfio-pci, or the UUID of a mediated device (``/sys/bus/mdev/devices``).
    """
    is_mdev = len(address) == _UUID_LEN and address.count("-") == 4
    base = f"/sys/bus/{'mdev' if is_mdev else 'pci'}/devices/{address}"
    if not os.path.exists(base):
        raise SystemExit(f"no {'mediated' if is_mdev else 'PCI'} device {address} "
                         f"({'ls /sys/bus/mdev/devices' if is_mdev else 'see lspci -D'})")
    driver = os.path.basename(os.readlink(f"{base}/driver")) if os.path.exists(f"{base}/driver") else None
    if not is_mdev and driver != "vfio-pci":
        raise SystemExit(f"{address} is bound to {driver or 'no driver'}, not vfio-pci: "
                         f"echo vfio-pci > {base}/driver_override; echo {address} > /sys/bus/pci/drivers_probe")
    if not os.path.exists(f"{base}/iommu_group"):
        raise SystemExit(f"{address} has no IOMMU group: boot with intel_iommu=on (or amd_iommu=on)")
    group = int(os.path.basename(os.readlink(f"{base}/iommu_group")))
    cdevs = sorted(os.listdir(f"{base}/vfio-dev")) if os.path.isdir(f"{base}/vfio-dev") else []
    return group, (f"/dev/vfio/devices/{cdevs[0]}" if cdevs else None)


def target(description: str, kind: str = "edu", **sim_options: Any) -> Target:
    """Parse ``--device``; without it build a simulated machine with one device of ``kind``.

    ``sim_options`` go to ``pyvfio.sim.Kernel.add_device`` (``name=`` places the
    device on another bus, other keywords configure it); they only shape the
    simulated device -- with ``--device`` the real one is what it is.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", metavar="ADDRESS",
                        help="run on the real kernel against this PCI device (bound to vfio-pci) or mdev UUID")
    args = parser.parse_args()
    if args.device:
        group, cdev = sysfs_device(args.device)
        return Target(Linux(), args.device, group, cdev, simulated=False)
    from pyvfio.sim import Kernel

    kernel = Kernel()
    dev = kernel.add_device(kind, **sim_options)
    return Target(kernel, dev.address, dev.group_id, dev.cdev, simulated=True)


# ---------------------------------------------------------------------------------------------------------
# printing


def summary(doc: Optional[str]) -> str:
    """The first line of a module docstring (the example's one-line description)."""
    return (doc or "").strip().splitlines()[0] if doc else ""


def title(t: Target, name: str, fd_kind: str) -> None:
    """The header line: which ioctl, its number, which descriptor it goes to, and on which kernel."""
    request = getattr(vfio, name, None)
    if request is None:
        request = getattr(iu, name)
    print(f"{name} (request {int(request):#x}) on {fd_kind} -- {t.where}")


def show(label: str, obj: Any) -> None:
    """Print a struct (every field, by name) or any value under a label."""
    print(f"  {label:<8} {obj!r}")


def say(text: str) -> None:
    print(f"  {text}")


def errname(err: Optional[int]) -> str:
    """The errno's symbolic name, as the UAPI headers spell it (EOPNOTSUPP, not its alias ENOTSUP)."""
    if err == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(err or 0, str(err))


def describe(e: OSError) -> str:
    """``EINVAL (Invalid argument)``, plus the simulated kernel's reason when it gives one."""
    reason = getattr(e, "reason", "")
    text = f"{errname(e.errno)} ({os.strerror(e.errno or 0)})"
    return f"{text}: {reason}" if reason else text


def attempt(what: str, call: Callable[[], object]) -> Optional[int]:
    """Run one ioctl that may fail; print the kernel's answer; return its errno (None when it worked)."""
    try:
        value = call()
    except OSError as e:
        say(f"{what} -> {describe(e)}")
        return e.errno
    say(f"{what} -> ok" + (f", returned {value}" if isinstance(value, int) else ""))
    return None


def expect_errno(what: str, call: Callable[[], object], *expected: int) -> int:
    """A deliberate bad call: print the errno it gets and why that is the expected answer.

    Raises when the call succeeds or fails otherwise, so a kernel that
    changed its mind is noticed rather than printed as a lesson.
    """
    try:
        call()
    except OSError as e:
        if expected and e.errno not in expected:
            raise
        say(f"bad call: {what} -> {describe(e)}")
        return e.errno or 0
    raise AssertionError(f"{what} was expected to fail with {'/'.join(map(errname, expected))} but succeeded")


def ran(note: str = "") -> int:
    print("result: ran" + (f" ({note})" if note else ""))
    return 0


def answered(err: int, why: str) -> int:
    print(f"result: kernel answered {errname(err)}: {why}")
    return 0


def reference_only(why: str) -> int:
    print(f"result: reference only: {why}")
    return 0


class Unavailable(Exception):
    """This kernel lacks what the example needs (no iommufd, no cdev, ...): say so and exit 0."""


def run(main: Callable[[], int]) -> int:
    """Run an example's ``main``; a missing kernel feature is a reason printed, not a crash."""
    try:
        return main()
    except Unavailable as e:
        print(f"result: cannot run here: {e}")
        return 0


# ---------------------------------------------------------------------------------------------------------
# struct helpers


def argsz(cls: type[_S], **fields: Any) -> _S:
    """A UAPI struct with its first field (``argsz`` in vfio.h, ``size`` in iommufd.h) set to its own size.

    That first field is how the kernel learns which version of the struct the
    program was built against; every VFIO and iommufd ioctl with a struct wants it.
    """
    first = cls._fields_[0][0]
    return cls(**{first: ctypes.sizeof(cls), **fields})


def address_of(buf: Any) -> int:
    """The user virtual address of a writable buffer (what the kernel is told to map or write to)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


@contextlib.contextmanager
def anon_memory(size: int) -> Iterator[tuple[mmap.mmap, int]]:
    """Page-aligned anonymous memory and its address: what a VMM maps as guest RAM."""
    buf = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        yield buf, address_of(buf)
    finally:
        buf.close()


@contextlib.contextmanager
def memfd_memory(size: int) -> Iterator[tuple[int, mmap.mmap]]:
    """A memfd of ``size`` bytes and a shared mapping of it (file-backed guest RAM)."""
    fd = os.memfd_create("pyvfio-example", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        buf = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            yield fd, buf
        finally:
            buf.close()
    finally:
        os.close(fd)


@contextlib.contextmanager
def eventfd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        yield fd
    finally:
        os.close(fd)


def read_fd(k: Any, fd: int, size: int) -> bytes:
    """``read(2)`` on a descriptor the kernel made (a migration data fd): the simulated kernel serves it
    itself, a real one through the plain system call."""
    reader = getattr(k, "read", None)
    return bytes(reader(fd, size)) if reader is not None else os.read(fd, size)


def wait_eventfd(fd: int, timeout: float = 5.0) -> int:
    """The eventfd's counter once it is signalled (0 if nothing came within ``timeout`` seconds)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    return int(struct.unpack("<Q", os.read(fd, 8))[0]) if ready else 0


# ---------------------------------------------------------------------------------------------------------
# setup: the legacy container/group path


@dataclass
class Legacy:
    """A container with its group (and usually the device) open: the VFIO path since Linux 3.6."""

    kernel: Any
    container: int = -1
    group: int = -1
    device: int = -1
    fds: list[int] = field(default_factory=list)


@contextlib.contextmanager
def legacy(t: Target, *, iommu: Optional[int] = vfio.VFIO_TYPE1v2_IOMMU, device: bool = True,
           set_container: bool = True) -> Iterator[Legacy]:
    """Open ``/dev/vfio/vfio`` and ``/dev/vfio/<group>``, join them, pick the IOMMU type, get the device fd.

    Each step can be left out (``set_container=False``, ``iommu=None``,
    ``device=False``) for the examples about that step.  Everything opened is
    closed in reverse order on exit.
    """
    k = t.kernel
    lg = Legacy(k)
    try:
        lg.container = k.open("/dev/vfio/vfio")
        lg.fds.append(lg.container)
        lg.group = k.open(f"/dev/vfio/{t.group}")
        lg.fds.append(lg.group)
        if set_container:
            k.ioctl(lg.group, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(lg.container))
            if iommu is not None:
                k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, iommu)
                if device:
                    lg.device = k.ioctl(lg.group, vfio.VFIO_GROUP_GET_DEVICE_FD,
                                        ctypes.create_string_buffer(t.address.encode()))
                    lg.fds.append(lg.device)
        yield lg
    finally:
        for fd in reversed(lg.fds):
            with contextlib.suppress(OSError):
                k.close(fd)


def close_device(lg: Legacy) -> None:
    """Close the device fd early (some examples need the group without an open device)."""
    if lg.device in lg.fds:
        lg.kernel.close(lg.device)
        lg.fds.remove(lg.device)
        lg.device = -1


# ---------------------------------------------------------------------------------------------------------
# setup: the iommufd + cdev path


def open_iommufd(t: Target) -> int:
    """``/dev/iommu``, or :class:`Unavailable` when this kernel has no iommufd."""
    try:
        return int(t.kernel.open("/dev/iommu"))
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise Unavailable("no /dev/iommu: this kernel is built without CONFIG_IOMMUFD") from None
        raise


def ioas_alloc(k: Any, iommufd: int) -> int:
    """A new, empty IO address space; its id."""
    alloc = argsz(iu.iommu_ioas_alloc)
    k.ioctl(iommufd, iu.IOMMU_IOAS_ALLOC, alloc)
    return int(alloc.out_ioas_id)


@dataclass
class Iommufd:
    """An iommufd with one IOAS, and the device's cdev (bound and attached unless asked otherwise)."""

    kernel: Any
    fd: int = -1
    ioas: int = 0
    cdev: int = -1
    devid: int = 0
    hwpt: int = 0
    fds: list[int] = field(default_factory=list)


@contextlib.contextmanager
def iommufd(t: Target, *, cdev: bool = True, bind: bool = True, attach: bool = True) -> Iterator[Iommufd]:
    """Open ``/dev/iommu``, allocate an IOAS, open the cdev, bind it, attach it to the IOAS.

    The VFIO path since Linux 6.6.  Steps can be left out for the examples
    about them.  Closing the cdev unbinds the device; closing the iommufd
    destroys every object allocated in it.
    """
    k = t.kernel
    ctx = Iommufd(k)
    try:
        ctx.fd = open_iommufd(t)
        ctx.fds.append(ctx.fd)
        ctx.ioas = ioas_alloc(k, ctx.fd)
        if cdev:
            if t.cdev is None:
                raise Unavailable(f"{t.address} has no VFIO cdev: the kernel lacks CONFIG_VFIO_DEVICE_CDEV")
            ctx.cdev = k.open(t.cdev)
            ctx.fds.append(ctx.cdev)
            if bind:
                b = argsz(vfio.vfio_device_bind_iommufd, iommufd=ctx.fd)
                k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, b)
                ctx.devid = int(b.out_devid)
                if attach:
                    a = argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=ctx.ioas)
                    k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, a)
                    ctx.hwpt = int(a.pt_id)
        yield ctx
    finally:
        # the cdev first: it holds the iommufd context alive while bound
        for fd in reversed(ctx.fds):
            with contextlib.suppress(OSError):
                k.close(fd)


def ioas_map(k: Any, ctx: Iommufd, vaddr: int, length: int, iova: int = IOVA, ioas: Optional[int] = None) -> int:
    """Map ``length`` bytes at ``vaddr`` read/write at a fixed IOVA (the setup step, not the lesson)."""
    m = argsz(iu.iommu_ioas_map, ioas_id=ctx.ioas if ioas is None else ioas, user_va=vaddr, length=length,
              iova=iova,
              flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE)
    k.ioctl(ctx.fd, iu.IOMMU_IOAS_MAP, m)
    return int(m.iova)


# ---------------------------------------------------------------------------------------------------------
# the edu device (QEMU hw/misc/edu.c): registers in BAR0, a DMA engine, MSI and INTx

EDU_IDENT, EDU_LIVENESS, EDU_FACTORIAL, EDU_STATUS = 0x00, 0x04, 0x08, 0x20
EDU_IRQ_STATUS, EDU_IRQ_RAISE, EDU_IRQ_ACK = 0x24, 0x60, 0x64
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_START, EDU_DMA_TO_RAM, EDU_DMA_IRQ = 0x1, 0x2, 0x4
EDU_BUFFER = 0x40000  # the device's 4 KiB buffer, as a device-side address
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER = 0x2, 0x4


class Edu:
    """Register access to an edu device through its VFIO device fd (``pread``/``pwrite`` at region offsets).

    QEMU 7.2's edu aborts the whole VM on a DMA of 4096 bytes or more, and
    its DMA mask is 28 bits: transfers here stay smaller and IOVAs below 2**28.
    """

    def __init__(self, kernel: Any, device_fd: int) -> None:
        self.kernel = kernel
        self.fd = device_fd
        self._offsets: dict[int, int] = {}

    def region_offset(self, index: int) -> int:
        if index not in self._offsets:
            info = argsz(vfio.vfio_region_info, index=index)
            self.kernel.ioctl(self.fd, vfio.VFIO_DEVICE_GET_REGION_INFO, info)
            self._offsets[index] = int(info.offset)
        return self._offsets[index]

    def read32(self, reg: int) -> int:
        data = self.kernel.pread(self.fd, 4, self.region_offset(vfio.VFIO_PCI_BAR0_REGION_INDEX) + reg)
        return int(struct.unpack("<I", bytes(data))[0])

    def write32(self, reg: int, value: int) -> None:
        self.kernel.pwrite(self.fd, struct.pack("<I", value & 0xFFFFFFFF),
                           self.region_offset(vfio.VFIO_PCI_BAR0_REGION_INDEX) + reg)

    def config_read16(self, offset: int) -> int:
        data = self.kernel.pread(self.fd, 2, self.region_offset(vfio.VFIO_PCI_CONFIG_REGION_INDEX) + offset)
        return int(struct.unpack("<H", bytes(data))[0])

    def enable_bus_master(self) -> None:
        """Set PCI_COMMAND memory + bus master: without it the device may neither DMA nor send an MSI."""
        cmd = self.config_read16(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
        self.kernel.pwrite(self.fd, struct.pack("<H", cmd),
                           self.region_offset(vfio.VFIO_PCI_CONFIG_REGION_INDEX) + PCI_COMMAND)

    def factorial(self, n: int) -> int:
        """Let the device compute n! (a real edu does it in a thread: wait for STATUS.COMPUTING to clear)."""
        self.write32(EDU_FACTORIAL, n)
        deadline = time.monotonic() + 5
        while self.read32(EDU_STATUS) & 0x1 and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.read32(EDU_FACTORIAL)

    def ack_irq(self) -> int:
        status = self.read32(EDU_IRQ_STATUS)
        if status:
            self.write32(EDU_IRQ_ACK, status)
        return status

    def dma(self, src: int, dst: int, count: int, *, to_ram: bool, irq: bool = False) -> bool:
        """One transfer; True once the engine reports it done (the simulated one is instant)."""
        assert 0 < count < 4096, "QEMU 7.2's edu aborts the VM on a 4096-byte transfer"
        self.write32(EDU_DMA_SRC, src)
        self.write32(EDU_DMA_DST, dst)
        self.write32(EDU_DMA_COUNT, count)
        self.write32(EDU_DMA_CMD, EDU_DMA_START | (EDU_DMA_TO_RAM if to_ram else 0) | (EDU_DMA_IRQ if irq else 0))
        deadline = time.monotonic() + 5
        while self.read32(EDU_DMA_CMD) & EDU_DMA_START:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def copy_through_device(self, buf: Any, iova: int, offset: int = 0, length: int = 256) -> bool:
        """RAM at ``iova`` -> device buffer -> RAM one page further; True when the bytes came back.

        The device reads and writes the memory only through the IOMMU
        mapping, so this is the proof that a mapping works.
        """
        data = bytes((i * 7 + 3) & 0xFF for i in range(length))
        buf[offset:offset + length] = data
        buf[offset + PAGE:offset + PAGE + length] = bytes(length)
        self.enable_bus_master()
        self.dma(iova, EDU_BUFFER, length, to_ram=False)
        self.dma(EDU_BUFFER, iova + PAGE, length, to_ram=True)
        return bytes(buf[offset + PAGE:offset + PAGE + length]) == data


def edu_of(t: Target, device_fd: int) -> Edu:
    """The edu register driver for the example's device -- only if it IS an edu.

    The examples prove mappings and interrupts by programming the edu's
    registers.  Writing those offsets on any other device could make it do
    anything, so on a real device that is not QEMU's edu (1234:11e8) the
    example stops here, saying why.
    """
    if not is_edu(t):
        raise Unavailable(f"this example drives QEMU's edu device (1234:11e8) through its registers; "
                          f"{t.address} is another device, and writing those registers could harm it")
    return Edu(t.kernel, device_fd)


def is_edu(t: Target) -> bool:
    """Whether the device is QEMU's edu (the simulated default always is)."""
    if t.simulated:
        return True
    try:
        with open(f"/sys/bus/pci/devices/{t.address}/vendor") as v, \
                open(f"/sys/bus/pci/devices/{t.address}/device") as d:
            return (int(v.read(), 16), int(d.read(), 16)) == (0x1234, 0x11E8)
    except OSError:
        return False



# ---------------------------------------------------------------------------------------------------------
# the IBM POWER (sPAPR) container ioctls


@contextlib.contextmanager
def spapr_container(t: Target) -> Iterator[tuple[Legacy, bool]]:
    """A container with the group joined and the IOMMU type set: sPAPR TCE v2 where the kernel offers it
    (IBM POWER), else type1v2.  Yields the container and whether it is an sPAPR one.

    Prints the CHECK_EXTENSION answers that decide it -- on x86 they are the
    kernel's own word that the sPAPR ioctls cannot work here.
    """
    with legacy(t, iommu=None, device=False) as lg:
        k = t.kernel
        v2 = k.ioctl(lg.container, vfio.VFIO_CHECK_EXTENSION, vfio.VFIO_SPAPR_TCE_v2_IOMMU)
        eeh = k.ioctl(lg.container, vfio.VFIO_CHECK_EXTENSION, vfio.VFIO_EEH)
        say(f"CHECK_EXTENSION(VFIO_SPAPR_TCE_v2_IOMMU) -> {v2}, CHECK_EXTENSION(VFIO_EEH) -> {eeh}")
        iommu = vfio.VFIO_SPAPR_TCE_v2_IOMMU if v2 else vfio.VFIO_TYPE1v2_IOMMU
        k.ioctl(lg.container, vfio.VFIO_SET_IOMMU, iommu)
        say("no sPAPR IOMMU here: the container uses type1v2" if not v2 else "container set to SPAPR_TCE_v2")
        yield lg, bool(v2)


def spapr_call(t: Target, lg: Legacy, name: str, arg: Any) -> Optional[int]:
    """Issue one sPAPR ioctl on the container; print and return the errno (None when it worked)."""
    try:
        ret = t.kernel.ioctl(lg.container, getattr(vfio, name), arg)
    except OSError as e:
        say(f"ioctl(container, {name}) -> {describe(e)}")
        return e.errno
    say(f"ioctl(container, {name}) -> {ret}")
    return None


X86_SPAPR = ("IBM POWER's sPAPR TCE IOMMU does not exist on this machine; a type1 container has no ioctl "
             "with this number")


def dirty_hwpt(t: Target, ctx: Iommufd) -> int:
    """A HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING and the device attached to it.

    Raises :class:`Unavailable` when the IOMMU cannot track dirty pages
    (IOMMU_GET_HW_INFO lacks IOMMU_HW_CAP_DIRTY_TRACKING; the allocation is
    EOPNOTSUPP) -- on x86 that needs VT-d second-stage A/D bits.
    """
    k = t.kernel
    hwpt = argsz(iu.iommu_hwpt_alloc, dev_id=ctx.devid, pt_id=ctx.ioas, flags=iu.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    try:
        k.ioctl(ctx.fd, iu.IOMMU_HWPT_ALLOC, hwpt)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            why = ("the IOMMU cannot track dirty pages: IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_DIRTY_TRACKING "
                   "is EOPNOTSUPP (no IOMMU_HW_CAP_DIRTY_TRACKING)")
            raise Unavailable(why) from None
        raise
    k.ioctl(ctx.cdev, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz(vfio.vfio_device_attach_iommufd_pt,
                                                                pt_id=hwpt.out_hwpt_id))
    say(f"HWPT {hwpt.out_hwpt_id} allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING; the device is attached to it")
    return int(hwpt.out_hwpt_id)
