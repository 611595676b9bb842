"""Interrupt-path figures: eventfd -> KVM irqfd injection rates, and MSI-X enable/disable costs through SET_IRQS.

Run: python3 benchmarks/irq.py [--seconds 1.0] [--no-kvm] [--full-growth]

KVM (real /dev/kvm, a VM with the in-kernel irqchip and one never-run vCPU):

* irqfd, signal only: eventfd writes with a live irqfd on an MSI route.  Each write runs KVM's irqfd
  wake-up, which injects into the LAPIC (the vector stays pending in the IRR: the vCPU never takes it).
* irqfd, signal + observe: write, then poll KVM_GET_LAPIC until the vector is in the IRR, then clear it
  with KVM_SET_LAPIC -- every injection seen, at the price of two LAPIC ioctls each.
* VMM path: write, FdHandlers dispatch (poll + read in user space), KVM_SIGNAL_MSI -- what an interrupt
  costs when KVM does not own the eventfd.
* KVM_SIGNAL_MSI alone, for reference.
* device -> KVM: the simulated edu raises MSI (a BAR write through the simulated kernel), its vfio-pci
  signals the eventfd, the real irqfd injects.

SET_IRQS on the simulated kernel (a generic function with a 2,048-entry MSI-X table):

* enable N vectors in one call (TRIGGER|EVENTFD, start 0, count N) and disable (count 0); the floor of
  ~2-3 ms is the model entering MSI-X mode, which masks all 2,048 table entries as the host does;
* QEMU's growth as the guest unmasks vectors 0..N-1 one by one, with dynamic MSI-X (one call per vector)
  and without (NORESIZE: disable + re-enable of everything each time, quadratic in N; 2,048 only with
  --full-growth).

Real-kernel SET_IRQS figures can only come from the VM lane (python3 -m tests.vm), and QEMU 7.2's edu has
no MSI-X at all, so this script prints simulated figures only for that part.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyvfio.irq.eventfd import EventFdVectors, FdHandlers  # noqa: E402
from pyvfio.irq.kvm import Kvm, MsiMessage, kvm_unavailable  # noqa: E402
from pyvfio.irq.routing import Mode, RoutingTable  # noqa: E402
from pyvfio.irq.vfio_irqs import MSIX, MsiController, MsixController, VfioIrqs  # noqa: E402
from pyvfio.sim import Kernel  # noqa: E402
from pyvfio.uapi import vfio as uv  # noqa: E402

VECTOR = 0x41


class SimDevice:
    """A simulated device opened through container + group (type1v2): ``.kernel``, ``.fd`` and BAR0/config access."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kernel = Kernel()
        self.sim = self.kernel.add_device(kind, **options)
        self.container = self.kernel.open("/dev/vfio/vfio")
        self.group = self.kernel.open(f"/dev/vfio/{self.sim.group_id}")
        self.kernel.ioctl(self.group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        self.kernel.ioctl(self.container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        self.fd = self.kernel.ioctl(self.group, uv.VFIO_GROUP_GET_DEVICE_FD,
                                    ctypes.create_string_buffer(self.sim.address.encode()))
        # the simulated kernel places region n at offset n << 40
        cfg = uv.VFIO_PCI_CONFIG_REGION_INDEX << 40
        cmd = int.from_bytes(self.kernel.pread(self.fd, 2, cfg + 4), "little")
        self.kernel.pwrite(self.fd, (cmd | 0x6).to_bytes(2, "little"), cfg + 4)  # memory + bus master

    def write32(self, reg: int, value: int) -> None:
        self.kernel.pwrite(self.fd, value.to_bytes(4, "little"), reg)

    def close(self) -> None:
        for fd in (self.fd, self.group, self.container):
            self.kernel.close(fd)


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Calls per second of ``fn`` over about ``seconds`` s."""
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0), n


def line(what: str, value: float, unit: str) -> None:
    print(f"  {what:<58} {value:>12,.0f} {unit}")


def bench_kvm(seconds: float) -> None:
    reason = kvm_unavailable()
    if reason:
        print(f"KVM: skipped ({reason})")
        return
    print("KVM (real /dev/kvm, vCPU never runs)")
    with Kvm() as kvm, kvm.create_vm(vcpus=1) as vm, RoutingTable(vm) as table:
        vcpu = vm.vcpus[0]
        route = table.add_msi("v", MsiMessage.for_vector(VECTOR))
        e = route.eventfd
        r, n = rate(e.signal, seconds)
        assert e.count() == 0 and VECTOR in vcpu.irr(), "KVM did not consume/inject"
        line("eventfd -> irqfd injections (signal only)", r, "/s")

        def observed() -> None:
            e.signal()
            if not vcpu.wait_irr(VECTOR, 1.0):
                raise RuntimeError("an injection never reached the IRR")
            vcpu.clear_irr()

        r, _ = rate(observed, seconds)
        line("eventfd -> irqfd injections (each observed in the IRR)", r, "/s")

        handlers = FdHandlers()
        table.handlers = handlers
        table.to_vmm("v")

        def vmm_path() -> None:
            e.signal()
            if handlers.dispatch() != 1:
                raise RuntimeError("the VMM handler did not run")

        r, _ = rate(vmm_path, seconds)
        line("VMM path: eventfd -> dispatch -> KVM_SIGNAL_MSI", r, "/s")
        table.set_mode("v", Mode.PARKED)
        msg = MsiMessage.for_vector(VECTOR)
        r, _ = rate(lambda: vm.signal_msi(msg), seconds)
        line("KVM_SIGNAL_MSI alone", r, "/s")

        dev = SimDevice("edu")
        try:
            msi = MsiController(VfioIrqs(dev), FdHandlers(), table)
            msi.enable([MsiMessage.for_vector(0x45)])
            r, _ = rate(lambda: dev.write32(0x60, 0x4), seconds)  # edu: raise
            assert 0x45 in vcpu.irr()
            line("simulated edu MSI -> vfio-pci (sim) -> irqfd -> LAPIC", r, "/s")
            msi.disable()
        finally:
            dev.close()


def bench_set_irqs(full_growth: bool) -> None:
    print("SET_IRQS on the simulated kernel (MSI-X, 2,048-entry table)")
    bars = [{"index": 0, "size": 0x1000}, {"index": 2, "size": 0x10000}]
    dev = SimDevice("pci", bars=bars, msix=2048, msix_bar=2, msix_table_offset=0, msix_pba_offset=0x8000)
    sdev = dev.sim
    with EventFdVectors(2048) as efds:
        irqs = VfioIrqs(dev)
        for n in (1, 64, 2048):
            fds = efds.fds(0, n)
            enable, disable = [], []
            for _ in range(20 if n < 2048 else 5):
                t0 = time.perf_counter()
                irqs.set_eventfds(MSIX, 0, fds)
                t1 = time.perf_counter()
                irqs.disable(MSIX)
                t2 = time.perf_counter()
                enable.append(t1 - t0)
                disable.append(t2 - t1)
            print(f"  {n:>5} vectors in one call: enable {statistics.median(enable) * 1e3:9.3f} ms, "
                  f"disable {statistics.median(disable) * 1e3:9.3f} ms")
        for dynamic in (True, False):
            sdev.ops.has_dyn_msix = dynamic
            for n in (1, 64, 2048):
                if not dynamic and n == 2048 and not full_growth:
                    print(f"  QEMU growth (NORESIZE), {n:>5} vectors: skipped (quadratic; --full-growth)")
                    continue
                c = MsixController(irqs, FdHandlers())
                for i in range(n):
                    c.set_message(i, MsiMessage.for_vector(0x30 + i % 0xC0))
                c.enable()
                calls = irqs.calls
                t0 = time.perf_counter()
                for i in range(n):
                    c.unmask(i)
                grow = time.perf_counter() - t0
                made = irqs.calls - calls
                t0 = time.perf_counter()
                c.disable()
                drop = time.perf_counter() - t0
                kind = "dynamic" if dynamic else "NORESIZE"
                print(f"  QEMU growth ({kind:>8}), {n:>5} vectors: unmask all {grow * 1e3:10.2f} ms "
                      f"({made} SET_IRQS), disable {drop * 1e3:8.2f} ms")
    dev.close()
    print("  (real-kernel SET_IRQS figures: only from the VM lane, and QEMU 7.2's edu has no MSI-X)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=1.0, help="time per KVM rate measurement")
    p.add_argument("--no-kvm", action="store_true", help="skip the /dev/kvm figures")
    p.add_argument("--full-growth", action="store_true", help="also grow 2,048 vectors without dynamic MSI-X")
    opts = p.parse_args(argv)
    if not opts.no_kvm:
        bench_kvm(opts.seconds)
    bench_set_irqs(opts.full_growth)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
