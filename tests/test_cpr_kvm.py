"""CPR with interrupts delivered into a KVM VM through irqfds (``Owner(..., interrupts="kvm")``).

Real processes around the simulated-kernel server, a real ``/dev/kvm``: the
old process routes the edu's MSI-X vectors into its VM with irqfds and runs
the workload (each interrupt must land in its vCPU's LAPIC IRR); at the
hand-off it deassigns the irqfds and raises one interrupt per vector, which
waits in the eventfd counters; a new process (forked, cpr-transfer over a
socketpair) receives the eventfds, makes its own VM, assigns irqfds, and
must find exactly those vectors in its LAPIC IRR.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Iterator

import pytest

from pyvfio.cpr import modes
from pyvfio.cpr.kvm import BASE_VECTOR
from pyvfio.cpr.owner import Owner, ReuseGuard
from pyvfio.irq.kvm import kvm_unavailable
from pyvfio.sim.remote import RemoteKernel, ServerHandle, start_server
from pyvfio.uapi import kvm as uk

REASON = kvm_unavailable()
pytestmark = [pytest.mark.kvm, pytest.mark.skipif(REASON is not None, reason=f"needs /dev/kvm: {REASON}")]

NVEC = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    h = start_server(str(tmp_path_factory.mktemp("cprkvm") / "sim.sock"), devices=[f"edu,msix_vectors={NVEC}"])
    yield h
    h.stop()


def _new_side(server_path: str, chan: socket.socket) -> dict[str, object]:
    """The new process: receive, adopt (no device changes), confirm, then claim into a new VM."""
    k = RemoteKernel(server_path)
    state, registry = modes.receive_state(chan)
    owner = Owner.adopt(ReuseGuard(k), registry, state)
    modes.send_verdict(chan, True)
    pending = sum(1 for fd in owner.vectors if _count(fd))
    claimed = owner.claim()
    assert owner.kvm is not None and owner.kvm.vm is not None
    irr_after = sorted(owner.kvm.vm.vcpus[0].irr())  # claim() took them: must be empty now
    for n in range(NVEC):  # and the new VM is live
        owner.raise_irq(n)
        owner.kvm.wait([n])
        owner.poll()
    out = {"pending": pending, "pending_vectors": owner.pending_vectors, "claimed": claimed,
           "lost_vectors": owner.lost_vectors, "irr_after_claim": irr_after, "sent": owner.sent,
           "received": owner.received, "dma_ok": owner.dma(0, 99) and owner.dma_intact()}
    owner.close()
    return out


def _count(fd: int) -> int:
    from pyvfio.irq.eventfd import eventfd_count

    return eventfd_count(fd)


def test_cpr_transfer_with_kvm_irqfds_loses_no_interrupt(server: ServerHandle) -> None:
    before = len(os.listdir("/proc/self/fd"))
    k = RemoteKernel(server.path)
    old = Owner.create(k, "iommufd", mappings=4, vectors=NVEC, interrupts="kvm")
    try:
        assert old.kvm is not None and old.kvm.vm is not None
        for _ in range(2 * NVEC):  # each tick's interrupt is injected by KVM, none read by the VMM
            assert old.tick()
        assert old.sent == old.received == 2 * NVEC
        old.stop_delivery()  # deassigns the irqfds
        assert not old.kvm.assigned
        for n in range(NVEC):
            old.raise_irq(n)  # during the blackout: into the counters, not the old VM
        time.sleep(0.01)
        assert old.kvm.pending() == [1] * NVEC and old.kvm.vm.vcpus[0].irr() == set()
        registry, state = old.prepare()
        assert state.app["interrupts"] == "kvm" and state.app["sent"] == 3 * NVEC

        # the old VM descriptor is no use to another process: KVM binds a VM to its creator's mm
        vmfd = old.kvm.vm.fd
        parent, child = socket.socketpair()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                parent.close()
                os.close(r)
                try:
                    from pyvfio.irq.kvm import _ioctl

                    _ioctl(vmfd, uk.KVM_CHECK_EXTENSION, uk.KVM_CAP_IRQFD)
                    vm_errno = 0
                except OSError as e:
                    vm_errno = e.errno or 0
                out = _new_side(server.path, child)
                out["old_vm_errno"] = vm_errno
                os.write(w, json.dumps(out).encode())
                code = 0
            except BaseException as e:  # report, never return into pytest
                os.write(w, json.dumps({"error": repr(e)}).encode())
            finally:
                os._exit(code)
        child.close()
        os.close(w)
        try:
            modes.send_state(parent, registry, state)
            modes.wait_verdict(parent, timeout=20)
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(r)
            parent.close()
        out = json.loads(data)
        assert os.waitstatus_to_exitcode(status) == 0, out
        print(f"\nKVM CPR: {out}")
        assert out["old_vm_errno"] == errno.EIO
        assert out["pending"] == NVEC and out["pending_vectors"] == list(range(NVEC))
        assert out["claimed"] == NVEC and out["lost_vectors"] == [] and out["irr_after_claim"] == []
        assert out["sent"] == out["received"] == 4 * NVEC  # 8 old + 4 pending + 4 live on the new side
        assert out["dma_ok"] is True
    finally:
        old.close()
        k.shutdown()
    assert len(os.listdir("/proc/self/fd")) == before, "descriptors leaked"


def test_recover_gives_pending_interrupts_back_to_the_old_vm(server: ServerHandle) -> None:
    k = RemoteKernel(server.path)
    o = Owner.create(k, "iommufd", mappings=1, vectors=NVEC, interrupts="kvm")
    try:
        assert o.tick()
        o.prepare()
        o.raise_irq(1)
        o.raise_irq(3)
        assert o.kvm is not None and o.kvm.pending() == [0, 1, 0, 1]
        o.recover()  # the new side failed: the old VM's irqfds come back and inject the counters
        assert o.received == o.sent == 3 and o.kvm.assigned
    finally:
        o.close()
        k.shutdown()


def test_interrupts_option_is_checked() -> None:
    with pytest.raises(ValueError, match="interrupts='msi'"):
        Owner.create(None, "iommufd", interrupts="msi")
    assert BASE_VECTOR >= 32  # above the x86 exception vectors


def _demo(*args: str) -> dict[str, object]:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    p = subprocess.run([sys.executable, "-m", "pyvfio", "demo", "cpr", *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(root)))
    assert p.returncode == 0, p.stderr
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("mode", ["exec", "transfer"])
def test_demo_kvm(server: ServerHandle, mode: str) -> None:
    out = _demo("--mode", mode, "--backend", "iommufd", "--mappings", "8", "--vectors", str(NVEC), "--kvm",
                "--server", server.path)
    assert out["interrupts"] == "kvm" and out["dma_ok"] is True
    assert out["pending_claimed"] == NVEC and out["lost"] == 0
    assert out["interrupts_sent"] == out["interrupts_received"]


def test_demo_kvm_new_process_fails_old_vm_recovers(server: ServerHandle) -> None:
    out = _demo("--mode", "transfer", "--backend", "legacy", "--mappings", "4", "--vectors", str(NVEC), "--kvm",
                "--fail", "verdict", "--server", server.path)
    assert out["recovered"] is True and out["lost"] == 0 and out["dma_ok"] is True
