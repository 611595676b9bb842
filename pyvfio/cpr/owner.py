"""A small device owner that can live-update itself: the piece the demo, the tests and the soak share.

It works at the raw surface (descriptor numbers and UAPI structs) rather
than through :mod:`pyvfio.device`/:mod:`pyvfio.container`, because the new
side must build its view over *inherited* descriptors without re-opening,
re-binding or re-attaching, and the object layer has no way to adopt them.
It drives the simulated edu: DMA RAM -> device buffer -> RAM on one mapping
per tick, and an interrupt per tick (MSI via register 0x60 for one vector;
MSI-X via edu's register 0x68 for several).  Interrupts are "VMM-handled"
eventfds by default (``interrupts="eventfd"``): stopping delivery means no
longer reading them, so what fires in between stays in the eventfd counters
and the new side counts it.  With ``interrupts="kvm"`` they are irqfds into a
KVM VM (:mod:`pyvfio.cpr.kvm`): stopping delivery deassigns them, and the new
side's irqfds inject what the counters hold into its own VM's LAPIC.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import time
from typing import Any, Optional

from ..uapi import iommufd as ui
from ..uapi import vfio as uv
from ..uapi.struct import alloc_flex, flex_array
from . import iommufd as cpr_iommufd
from . import legacy as cpr_legacy
from .blockers import Blocker, mdev_blockers, require_none
from .kvm import KvmDelivery
from .state import MAPPING_FILE, CprState, DeviceRecord, FdRegistry, MappingRecord, VectorRecord, vector_name

PAGE = 4096
IOVA_BASE = 0x100000
DMA_LEN = 1024  # data at page offset 0, copied by the device to offset HALF
HALF = 2048
EDU_BUFFER = 0x40000
REG_IRQ_RAISE, REG_MSIX_RAISE = 0x60, 0x68
REG_DMA_SRC, REG_DMA_DST, REG_DMA_COUNT, REG_DMA_CMD = 0x80, 0x88, 0x90, 0x98
BAR0 = uv.VFIO_PCI_BAR0_REGION_INDEX << 40
CONFIG = uv.VFIO_PCI_CONFIG_REGION_INDEX << 40

#: ioctls the new side must never issue on reused objects (they would re-create or reset state)
FORBIDDEN_ON_REUSE = {
    uv.VFIO_DEVICE_RESET: "VFIO_DEVICE_RESET", uv.VFIO_DEVICE_SET_IRQS: "VFIO_DEVICE_SET_IRQS",
    uv.VFIO_GROUP_GET_DEVICE_FD: "VFIO_GROUP_GET_DEVICE_FD", uv.VFIO_GROUP_SET_CONTAINER: "VFIO_GROUP_SET_CONTAINER",
    uv.VFIO_SET_IOMMU: "VFIO_SET_IOMMU", uv.VFIO_DEVICE_BIND_IOMMUFD: "VFIO_DEVICE_BIND_IOMMUFD",
    uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT: "VFIO_DEVICE_ATTACH_IOMMUFD_PT", ui.IOMMU_IOAS_ALLOC: "IOMMU_IOAS_ALLOC",
    ui.IOMMU_IOAS_MAP: "IOMMU_IOAS_MAP", ui.IOMMU_IOAS_MAP_FILE: "IOMMU_IOAS_MAP_FILE",
}


class ReuseViolation(AssertionError):
    """The new side tried to change a reused device (reset, SET_IRQS, rebind, config write...)."""


class ReuseGuard:
    """A kernel wrapper for the new side: refuses every call that would change reused state.

    MAP_DMA is allowed only with FLAG_VADDR; config-space writes are refused.
    Counts calls so a test can show what adoption cost.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.calls = 0

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        if request in FORBIDDEN_ON_REUSE:
            raise ReuseViolation(f"{FORBIDDEN_ON_REUSE[request]} on a reused object")
        if request == uv.VFIO_IOMMU_MAP_DMA and not arg.flags & uv.VFIO_DMA_MAP_FLAG_VADDR:
            raise ReuseViolation("VFIO_IOMMU_MAP_DMA without FLAG_VADDR on a reused container")
        self.calls += 1
        return int(self.kernel.ioctl(fd, request, arg))

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        if offset >> 40 == uv.VFIO_PCI_CONFIG_REGION_INDEX:
            raise ReuseViolation("config-space write on a reused device")
        self.calls += 1
        return int(self.kernel.pwrite(fd, data, offset))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)


def pattern(seed: int) -> bytes:
    return bytes((i * 13 + seed * 7 + 1) & 0xFF for i in range(DMA_LEN))


class Owner:
    """Everything one process owns: backend descriptors, the device, guest RAM, mappings and eventfds."""

    def __init__(self, kernel: Any, backend: str, device: str) -> None:
        self.kernel = kernel
        self.backend = backend
        self.device = device
        self.registry = FdRegistry()
        self.record = DeviceRecord(device)
        self.mappings: list[MappingRecord] = []
        self._anon: Optional[mmap.mmap] = None
        #: facts the application carries from one generation to the next (e.g. soak totals)
        self.app_extra: dict[str, Any] = {}
        self.vectors: list[int] = []
        self.irq_index = uv.VFIO_PCI_MSI_IRQ_INDEX
        self.ram_fd = -1
        self.ram: Optional[mmap.mmap] = None
        self.base = 0
        self.sent = 0
        self.received = 0
        self.pending_claimed = 0
        self.tick_no = 0
        self.delivering = True
        self.vaddr_invalid = False
        self.interrupts = "eventfd"
        self.kvm: Optional[KvmDelivery] = None
        #: new side, KVM delivery: vectors whose eventfd counted at the claim, and those never injected
        self.pending_vectors: list[int] = []
        self.lost_vectors: list[int] = []

    # -- creating (the first process) ----------------------------------------------------------------
    @classmethod
    def create(cls, kernel: Any, backend: str, *, device: str = "0000:00:03.0", group: int = 0,
               cdev: str = "/dev/vfio/devices/vfio0", mappings: int = 4, vectors: int = 1,
               file_backed: bool = True, interrupts: str = "eventfd") -> "Owner":
        if interrupts not in ("eventfd", "kvm"):
            raise ValueError(f"interrupts={interrupts!r}: expected 'eventfd' (VMM-handled) or 'kvm' (irqfds)")
        o = cls(kernel, backend, device)
        o.interrupts = interrupts
        try:
            o._open(group, cdev)
            o._map(mappings, file_backed)
            o._irqs(vectors)
            if interrupts == "kvm":
                o.kvm = KvmDelivery(o.vectors)
        except BaseException:
            o.close()
            raise
        return o

    def _open(self, group: int, cdev: str) -> None:
        k = self.kernel
        if self.backend == "legacy":
            c = k.open("/dev/vfio/vfio")
            self.registry.save_fd("vfio_container", 0, c)
            g = k.open(f"/dev/vfio/{group}")
            self.registry.save_fd("vfio_group", group, g)
            k.ioctl(g, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
            k.ioctl(c, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
            d = k.ioctl(g, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(self.device.encode()))
            self.registry.save_fd(self.device, 0, d)
        else:
            ictx = k.open("/dev/iommu")
            self.registry.save_fd("iommufd", 0, ictx)
            d = k.open(cdev)
            self.registry.save_fd(self.device, 0, d)
            bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=ictx)
            k.ioctl(d, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)
            alloc = ui.iommu_ioas_alloc(size=ctypes.sizeof(ui.iommu_ioas_alloc))
            k.ioctl(ictx, ui.IOMMU_IOAS_ALLOC, alloc)
            att = uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt),
                                                   pt_id=alloc.out_ioas_id)
            k.ioctl(d, uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT, att)
            self.record = DeviceRecord(self.device, int(bind.out_devid), int(alloc.out_ioas_id), int(att.pt_id))
        cmd = struct.unpack("<H", k.pread(self.device_fd, 2, CONFIG + 4))[0]
        k.pwrite(self.device_fd, struct.pack("<H", cmd | 0x6), CONFIG + 4)  # memory + bus master

    def _map(self, n: int, file_backed: bool) -> None:
        self.ram_fd = os.memfd_create("guest-ram", 0)
        self.registry.save_fd("ram", 0, self.ram_fd)
        os.ftruncate(self.ram_fd, n * PAGE)
        self._mmap_ram()
        anon = None if file_backed else mmap.mmap(-1, n * PAGE)
        for i in range(n):
            m = MappingRecord(IOVA_BASE + i * PAGE, PAGE, i * PAGE, MAPPING_FILE if file_backed else 0)
            if self.backend == "legacy":
                cpr_legacy.map_dma(self.kernel, self.container_fd, self.base + m.offset, m.iova, m.size)
                m.flags = 0
            elif file_backed:
                cpr_iommufd.map_file(self.kernel, self.iommufd_fd, self.record.ioas_id, self.ram_fd, m.offset,
                                     m.iova, m.size)
            else:
                assert anon is not None
                addr = ctypes.addressof(ctypes.c_char.from_buffer(anon)) + m.offset
                self.kernel.ioctl(self.iommufd_fd, ui.IOMMU_IOAS_MAP, ui.iommu_ioas_map(
                    size=ctypes.sizeof(ui.iommu_ioas_map), ioas_id=self.record.ioas_id, user_va=addr, length=m.size,
                    iova=m.iova, flags=ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE
                    | ui.IOMMU_IOAS_MAP_WRITEABLE))
            self.mappings.append(m)
        self._anon = anon

    def _mmap_ram(self) -> None:
        size = os.fstat(self.ram_fd).st_size
        self.ram = mmap.mmap(self.ram_fd, size)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.ram))

    def _irqs(self, n: int) -> None:
        self.irq_index = uv.VFIO_PCI_MSI_IRQ_INDEX if n == 1 else uv.VFIO_PCI_MSIX_IRQ_INDEX
        for v in range(n):
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.vectors.append(efd)
            self.registry.save_fd(vector_name(self.device), v, efd)
        irqs = alloc_flex(uv.vfio_irq_set, 4 * n, index=self.irq_index, start=0, count=n,
                          flags=uv.VFIO_IRQ_SET_DATA_EVENTFD | uv.VFIO_IRQ_SET_ACTION_TRIGGER)
        arr = (ctypes.c_int32 * n).from_buffer(flex_array(irqs))
        for v, efd in enumerate(self.vectors):
            arr[v] = efd
        self.kernel.ioctl(self.device_fd, uv.VFIO_DEVICE_SET_IRQS, irqs)

    # -- descriptors by name -------------------------------------------------------------------------
    @property
    def device_fd(self) -> int:
        return self.registry.require_fd(self.device, 0)

    @property
    def container_fd(self) -> int:
        return self.registry.require_fd("vfio_container", 0)

    @property
    def iommufd_fd(self) -> int:
        return self.registry.require_fd("iommufd", 0)

    # -- the workload --------------------------------------------------------------------------------
    def dma(self, i: int, seed: int) -> bool:
        """RAM page ``i`` -> edu buffer -> RAM page ``i`` + HALF; True when the bytes came back."""
        assert self.ram is not None
        m = self.mappings[i]
        data = pattern(seed)
        self.ram[m.offset:m.offset + DMA_LEN] = data
        self.ram[m.offset + HALF:m.offset + HALF + DMA_LEN] = bytes(DMA_LEN)
        w = self._w32
        w(REG_DMA_SRC, m.iova), w(REG_DMA_DST, EDU_BUFFER), w(REG_DMA_COUNT, DMA_LEN), w(REG_DMA_CMD, 0x1)
        self.wait_dma()
        w(REG_DMA_SRC, EDU_BUFFER), w(REG_DMA_DST, m.iova + HALF), w(REG_DMA_CMD, 0x3)
        self.wait_dma()
        return bytes(self.ram[m.offset + HALF:m.offset + HALF + DMA_LEN]) == data

    def wait_dma(self, timeout: float = 10.0) -> None:
        """Wait until the edu's DMA engine is idle (command bit 0 clear).

        The simulated edu finishes a transfer inside the register write, but
        QEMU's edu runs it from a 100 ms timer and *ignores* register writes
        while one is in flight: without this wait, the second leg of a round
        trip is silently dropped on a real kernel and the RAM check fails.
        """
        deadline = time.monotonic() + timeout
        while struct.unpack("<I", self.kernel.pread(self.device_fd, 4, BAR0 + REG_DMA_CMD))[0] & 0x1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"edu DMA still running after {timeout} s")
            time.sleep(0.002)

    def _w32(self, reg: int, value: int) -> None:
        self.kernel.pwrite(self.device_fd, struct.pack("<I", value & 0xFFFFFFFF), BAR0 + reg)

    def raise_irq(self, vector: int) -> None:
        if self.irq_index == uv.VFIO_PCI_MSI_IRQ_INDEX:
            self._w32(REG_IRQ_RAISE, 1)
        else:
            self._w32(REG_MSIX_RAISE, vector)
        self.sent += 1

    def poll(self) -> int:
        """Read every vector's eventfd (only while delivering); returns how many interrupts were taken."""
        if not self.delivering:
            return 0
        if self.kvm is not None:  # KVM consumes the eventfds; what it injected is in the LAPIC
            n = len(self.kvm.take())
            self.received += n
            return n
        got = 0
        for efd in self.vectors:
            try:
                got += struct.unpack("<Q", os.read(efd, 8))[0]
            except BlockingIOError:
                pass
        self.received += got
        return got

    def tick(self) -> bool:
        """One unit of work: a DMA round trip on the next mapping and an interrupt on the next vector."""
        i = self.tick_no
        self.tick_no += 1
        ok = self.dma(i % len(self.mappings), i)
        self.raise_irq(i % len(self.vectors))
        if self.kvm is not None and self.delivering:
            self.kvm.wait([i % len(self.vectors)])  # irqfd injection may run from a work queue
        self.poll()
        return ok

    def dma_intact(self) -> bool:
        """Every page the device wrote holds what it copied (data at 0 equals data at HALF)."""
        assert self.ram is not None
        for m in self.mappings:
            head = self.ram[m.offset:m.offset + DMA_LEN]
            if any(head) and head != self.ram[m.offset + HALF:m.offset + HALF + DMA_LEN]:
                return False
        return True

    # -- the old side --------------------------------------------------------------------------------
    def blockers(self) -> list[Blocker]:
        if self.backend == "legacy":
            out = cpr_legacy.blockers(self.kernel, self.container_fd)
            info = uv.vfio_device_info(argsz=ctypes.sizeof(uv.vfio_device_info))
            self.kernel.ioctl(self.device_fd, uv.VFIO_DEVICE_GET_INFO, info)
            return out + mdev_blockers([(self.device, not info.flags & uv.VFIO_DEVICE_FLAGS_PCI)])
        return cpr_iommufd.blockers(self.kernel, self.iommufd_fd, self.mappings)

    def stop_delivery(self) -> None:
        """Seed-001 step 1: stop consuming the eventfds, so whatever fires now stays in their counters."""
        self.poll()
        if self.kvm is not None and self.kvm.assigned:
            self.kvm.deassign()
            self.received += len(self.kvm.take())  # injected while the deassign ran
        self.delivering = False

    def prepare(self) -> tuple[FdRegistry, CprState]:
        """Refuse on blockers, then quiesce the backend and return what to hand over."""
        require_none(self.blockers())
        self.stop_delivery()
        if self.backend == "legacy":
            cpr_legacy.invalidate_vaddrs(self.kernel, self.container_fd)
            self.vaddr_invalid = True
        return self.registry, self.save_state()

    def save_state(self) -> CprState:
        st = CprState(backend=self.backend, devices=[self.record], mappings=list(self.mappings),
                      vectors=[VectorRecord(self.device, self.irq_index, v) for v in range(len(self.vectors))])
        # the config space as the kernel shows it: the new side checks the device came through untouched
        st.config[self.device] = bytes(self.kernel.pread(self.device_fd, 256, CONFIG))
        st.app.update(sent=self.sent, received=self.received, tick=self.tick_no, interrupts=self.interrupts)
        return st

    def config_unchanged(self, state: CprState) -> bool:
        """Whether the device's config space is byte-for-byte what the old side saved (no reset happened)."""
        return bytes(self.kernel.pread(self.device_fd, 256, CONFIG)) == state.config.get(self.device)

    def recover(self) -> None:
        """The hand-off failed: take the mappings back and resume delivery (pending counts are kept)."""
        if self.backend == "legacy" and self.vaddr_invalid:
            cpr_legacy.restore_vaddrs(self.kernel, self.container_fd, self.mappings, lambda m: self.base + m.offset)
            self.vaddr_invalid = False
        elif self.backend == "iommufd":
            cpr_iommufd.change_process(self.kernel, self.iommufd_fd)  # undoes a new side that got that far
        if self.kvm is not None and not self.kvm.assigned:
            pending = [n for n, c in enumerate(self.kvm.pending()) if c]
            self.kvm.assign()  # the old VM takes back what waited in the counters
            self.kvm.wait(pending)
        self.delivering = True
        self.poll()

    # -- the new side --------------------------------------------------------------------------------
    @classmethod
    def adopt(cls, kernel: Any, registry: FdRegistry, state: CprState, *,
              fail_after: Optional[int] = None) -> "Owner":
        """Build the owner over inherited descriptors: no open, bind, attach, reset or SET_IRQS.

        Legacy: every mapping gets this process's address with FLAG_VADDR;
        iommufd: one CHANGE_PROCESS.  Vectors are bound to the same eventfds
        already; :meth:`claim` starts reading them.
        ``fail_after`` (tests) raises after that many mappings were re-registered.
        """
        if not state.devices:
            raise ValueError("CPR state names no device")
        o = cls(kernel, state.backend, state.devices[0].name)
        o.registry = registry
        o.record = state.devices[0]
        o.mappings = list(state.mappings)
        o.ram_fd = registry.require_fd("ram", 0)
        o._mmap_ram()
        o.sent = int(state.app.get("sent", 0))
        o.received = int(state.app.get("received", 0))
        o.tick_no = int(state.app.get("tick", 0))
        o.interrupts = str(state.app.get("interrupts", "eventfd"))
        if state.vectors:
            o.irq_index = state.vectors[0].index
        o.vectors = [registry.require_fd(vector_name(v.device), v.vector) for v in state.vectors]
        if o.backend == "legacy":
            todo = o.mappings if fail_after is None else o.mappings[:fail_after]
            cpr_legacy.register_vaddrs(kernel, o.container_fd, todo, lambda m: o.base + m.offset)
            if fail_after is not None:
                raise RuntimeError(f"injected failure after {fail_after} of {len(o.mappings)} mappings")
        else:
            cpr_iommufd.change_process(kernel, o.iommufd_fd)
            if fail_after is not None:
                raise RuntimeError("injected failure after IOMMU_IOAS_CHANGE_PROCESS")
        o.delivering = False  # vectors are claimed only after the commit point: see claim()
        return o

    def claim(self) -> int:
        """Take over interrupt delivery: what the counters hold fired during the hand-off.

        Called only once the old side has let go (after the transfer verdict,
        or at once after exec): if the new side consumed the counters and then
        died before confirming, the old side could never see those interrupts.
        """
        if self.interrupts == "kvm" and self.kvm is None:
            # a new VM (the old one's descriptor is bound to the old address space); routes, then irqfds
            self.kvm = KvmDelivery(self.vectors, assign=False)
            self.pending_vectors = [n for n, c in enumerate(self.kvm.pending()) if c]
            self.kvm.assign()
            self.lost_vectors = sorted(self.kvm.wait(self.pending_vectors))
        self.delivering = True
        self.pending_claimed = self.poll()
        return self.pending_claimed

    def close(self) -> None:
        """Close everything this process holds (the kernel objects live on while another process holds them)."""
        kvm = getattr(self, "kvm", None)
        if kvm is not None:
            kvm.close()
            self.kvm = None
        if self.ram is not None:
            try:
                self.ram.close()
            except BufferError:
                pass  # a ctypes view still points in; the mapping goes with the process
            self.ram = None
        anon = getattr(self, "_anon", None)
        if anon is not None:
            anon.close()
            self._anon = None
        # kernel files through the kernel surface (the in-process model keeps a table), the rest directly
        for (name, _id), fd in self.registry.items():
            plain = name == "ram" or name.endswith("_interrupt")
            try:
                os.close(fd) if plain else self.kernel.close(fd)
            except OSError:
                pass
        self.registry = FdRegistry()
        self.vectors = []
