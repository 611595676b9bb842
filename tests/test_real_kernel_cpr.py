"""CPR hand-offs between real processes, on the real kernel (VM lane) and on the simulated one (host).

What runs here is the library itself (:mod:`pyvfio.cpr`): :class:`~pyvfio.cpr.owner.Owner` opens QEMU's
edu through the legacy container or iommufd, maps memfd-backed RAM and wires the MSI eventfd; the old
process stops delivery, raises interrupts nobody reads, quiesces the backend and hands its descriptors to a
new process -- cpr-transfer (a separately started process, unix socket, SCM_RIGHTS) or cpr-exec (the same
pid runs a new image, state in a memfd).  The new process adopts without reset/SET_IRQS/re-bind, claims the
pending interrupts, and the edu then writes by DMA into *its* memory.

Which kernel.  In the VM lane (``PYVFIO_KERNEL=real``) the ``kernel`` fixture is ``pyvfio.kernel.Linux()`` and
every process talks to the running Linux directly.  On the host the ``kernel`` fixture is the in-process model
(``pyvfio.sim.Kernel()``), which lives inside the pytest process: a second process cannot see it, so CPR
cannot be shown with it.  There the tests use the same model as a server process
(``pyvfio.sim.remote.start_server`` / ``RemoteKernel``: descriptors are connections to it and DMA by virtual
address reaches the right process with ``process_vm_writev``), which outlives its clients as Linux does.  The
child processes learn which kernel to use from a one-word spec: ``real`` or ``sim:<socket path>``.

Real-device rules (QEMU 7.2's edu): transfers stay below 4096 bytes and IOVAs below 2**28, bus master is
set before any DMA (``Owner.create`` does it), and a DMA takes ~100 ms of virtual time -- with the edu
ignoring register writes meanwhile, hence ``Owner.wait_dma``.

The child side is at the top of this file and runs as ``python tests/test_real_kernel_cpr.py ROLE ...``
before pytest is imported: importing pytest costs seconds in the TCG guest.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyvfio.cpr import modes  # noqa: E402
from pyvfio.cpr.owner import BAR0, DMA_LEN, EDU_BUFFER, HALF, Owner, ReuseGuard, pattern  # noqa: E402
from pyvfio.cpr.state import CprState, FdRegistry  # noqa: E402

OLD_SEED = 0xC0  # the pattern the old process leaves in the edu's buffer for the new one to fetch
EDU_IRQ_STATUS, EDU_IRQ_ACK = 0x24, 0x64
REG_DMA_SRC, REG_DMA_DST, REG_DMA_COUNT, REG_DMA_CMD = 0x80, 0x88, 0x90, 0x98


def make_kernel(spec: str) -> Any:
    """``real`` -> the running Linux; ``sim:PATH`` -> a client of the simulated kernel server at PATH."""
    if spec == "real":
        from pyvfio.kernel import Linux

        return Linux()
    if spec.startswith("sim:"):
        from pyvfio.sim.remote import RemoteKernel

        return RemoteKernel(spec[4:])
    raise ValueError(f"kernel spec {spec!r} is neither 'real' nor 'sim:PATH'")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def eventfd_count(fd: int) -> int:
    """The eventfd's counter without consuming it (``eventfd-count`` in /proc/self/fdinfo, hex)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("eventfd-count:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"fd {fd} is not an eventfd")


def wait_counters(owner: Owner, want: int, timeout: float = 10.0) -> int:
    """Sum of the (unconsumed) vector counters once it reaches ``want`` -- a real MSI lands asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(eventfd_count(fd) for fd in owner.vectors)
        if total >= want or time.monotonic() > deadline:
            return total
        time.sleep(0.005)


def drain(owner: Owner, timeout: float = 10.0) -> None:
    """Read the eventfds until every interrupt raised so far arrived (bounded), so none straggles into the
    hand-off window and inflates what the new side counts."""
    deadline = time.monotonic() + timeout
    while owner.received < owner.sent and time.monotonic() < deadline:
        owner.poll()
        time.sleep(0.002)


def edu_to_ram(owner: Owner, iova: int) -> None:
    """One device -> RAM transfer of the edu's buffer to ``iova`` (no RAM -> device leg first)."""
    k, fd = owner.kernel, owner.device_fd
    for reg, value in ((REG_DMA_SRC, EDU_BUFFER), (REG_DMA_DST, iova), (REG_DMA_COUNT, DMA_LEN), (REG_DMA_CMD, 0x3)):
        k.pwrite(fd, struct.pack("<I", value), BAR0 + reg)
    owner.wait_dma()


def ack_irq(owner: Owner) -> None:
    """The real edu keeps its IRQ status register set across opens; leave it clear for the next test."""
    status = owner.kernel.pread(owner.device_fd, 4, BAR0 + EDU_IRQ_STATUS)
    owner.kernel.pwrite(owner.device_fd, bytes(status), BAR0 + EDU_IRQ_ACK)


def old_side_prepare(owner: Owner, pending: int) -> tuple[FdRegistry, CprState]:
    """Work, stop delivery, raise ``pending`` MSIs nobody reads, quiesce, and DMA once more during the hand-off.

    The last DMA runs after ``prepare`` (legacy: every vaddr invalid) and leaves ``pattern(OLD_SEED)`` in the
    edu's buffer.  ``app`` carries the timing (``traffic`` is the demo load inside the window, not CPR work).
    """
    ok = all(owner.dma(i, 100 + i) for i in range(len(owner.mappings)))
    owner.raise_irq(0)
    drain(owner)
    t_stop = time.monotonic()
    owner.stop_delivery()
    for _ in range(pending):
        owner.raise_irq(0)
    in_counters = wait_counters(owner, pending)
    traffic = time.monotonic() - t_stop
    registry, state = owner.prepare()
    t = time.monotonic()
    during = owner.dma(len(owner.mappings) - 1, OLD_SEED)
    traffic += time.monotonic() - t
    state.app.update(sent=owner.sent, received=owner.received, t_stop=t_stop, traffic=traffic, dma_before=ok,
                     dma_during=during, pending=pending, in_counters=in_counters, old_pid=os.getpid())
    return registry, state


def new_side(kernel: Any, registry: FdRegistry, state: CprState, chan: Optional[socket.socket] = None,
             fail: str = "") -> dict[str, Any]:
    """Adopt, confirm (transfer), claim the pending interrupts, then prove DMA reaches this process.

    ``fail`` (transfer only): ``refuse`` re-registers one mapping, then says FAIL; ``die`` re-registers one
    and exits without a word -- both before the hand-off completes, so the old side must recover.
    """
    guard = ReuseGuard(kernel)
    if fail:
        try:
            Owner.adopt(guard, registry, state, fail_after=1)
        except RuntimeError as e:
            if fail == "die":
                os._exit(9)
            registry.close_all()
            assert chan is not None
            modes.send_verdict(chan, False, f"adopt failed: {e}")
            return {"failed": str(e), "pid": os.getpid()}
        raise AssertionError("fail_after did not fail")
    owner = Owner.adopt(guard, registry, state)
    try:
        adopt_calls = guard.calls
        if chan is not None:
            modes.send_verdict(chan, True)
            chan.close()
        first = owner.claim()
        t_claim = time.monotonic()
        pending = int(state.app["pending"])
        deadline = time.monotonic() + 5
        while owner.received - int(state.app["received"]) < pending and time.monotonic() < deadline:
            time.sleep(0.005)
            owner.poll()
        claimed = owner.received - int(state.app["received"])
        quiet = not select.select(owner.vectors, [], [], 0.1)[0]  # nothing beyond what was raised
        untouched = owner.config_unchanged(state)
        intact = owner.dma_intact()
        # device -> RAM only: what the *old* process left in the device lands in *this* process's memory
        assert owner.ram is not None
        m = owner.mappings[0]
        owner.ram[m.offset + HALF:m.offset + HALF + DMA_LEN] = bytes(DMA_LEN)
        edu_to_ram(owner, m.iova + HALF)
        from_old = bytes(owner.ram[m.offset + HALF:m.offset + HALF + DMA_LEN]) == pattern(OLD_SEED)
        round_trips = all(owner.dma(i, 7000 + i) for i in range(len(owner.mappings)))
        for _ in range(2):
            owner.raise_irq(0)
        drain(owner)
        ack_irq(owner)
        return {"pid": os.getpid(), "adopt_calls": adopt_calls, "first_claim": first, "claimed": claimed,
                "quiet": quiet, "config_unchanged": untouched, "ram_intact": intact, "dma_from_old": from_old,
                "dma_round_trips": round_trips, "sent": owner.sent, "received": owner.received,
                "lost": owner.sent - owner.received,
                "blackout_ms": round((t_claim - float(state.app["t_stop"]) - float(state.app["traffic"])) * 1e3, 3),
                "gap_ms": round((t_claim - float(state.app["t_stop"])) * 1e3, 3)}
    finally:
        owner.close()


def child_main(argv: list[str]) -> int:
    """``new-transfer SPEC LISTEN FAIL`` | ``old-exec SPEC BACKEND DEVICE GROUP CDEV PENDING`` | ``new-exec SPEC``."""
    role, spec = argv[0], argv[1]
    kernel = make_kernel(spec)
    if role == "new-transfer":
        listen, fail = argv[2], argv[3] if len(argv) > 3 else ""
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(listen + ".tmp")
        srv.listen(1)
        os.rename(listen + ".tmp", listen)  # the old side connects once this name exists
        chan, _ = srv.accept()
        srv.close()
        state, registry = modes.receive_state(chan)
        out = new_side(kernel, registry, state, chan, fail)
    elif role == "old-exec":
        backend, device, group, cdev, pending = argv[2], argv[3], int(argv[4]), argv[5], int(argv[6])
        owner = Owner.create(kernel, backend, device=device, group=group, cdev=cdev, mappings=2)
        registry, state = old_side_prepare(owner, pending)
        state.app["spec"] = spec
        modes.exec_with_state([sys.executable, os.path.abspath(__file__), "new-exec", spec], registry, state,
                              env=child_env())
        raise AssertionError("exec_with_state returned")  # it only returns by raising
    elif role == "new-exec":
        got = modes.incoming_exec()
        assert got is not None, f"started without {modes.STATE_ENV}"
        state, registry = got
        out = new_side(kernel, registry, state)
        out["old_pid"] = state.app["old_pid"]
        out["old_in_counters"] = state.app["in_counters"]
        out["old_dma_before"], out["old_dma_during"] = state.app["dma_before"], state.app["dma_during"]
    else:
        raise SystemExit(f"unknown role {role!r}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))


# -- the tests (pytest side) ---------------------------------------------------------------------------------

import ctypes  # noqa: E402
import dataclasses  # noqa: E402
import errno  # noqa: E402
import mmap  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from conftest import EduDevice, real_kernel_requested, sim_server_requested  # noqa: E402
from pyvfio.cpr import iommufd as cpr_iommufd  # noqa: E402
from pyvfio.cpr import legacy as cpr_legacy  # noqa: E402
from pyvfio.cpr.blockers import CprBlocked  # noqa: E402
from pyvfio.errors import VfioError  # noqa: E402
from pyvfio.uapi import iommufd as ui  # noqa: E402

REAL = real_kernel_requested()
TIMEOUT = 120.0 if REAL else 30.0  # Python in the TCG guest is ~13x slower


@dataclasses.dataclass
class Rig:
    """The kernel this process uses, the edu on it, and the spec a child process builds its own from."""

    kernel: Any
    edu: EduDevice
    spec: str


@pytest.fixture
def rig(kernel: Any, edu: EduDevice, request: pytest.FixtureRequest) -> Iterator[Rig]:
    if REAL or sim_server_requested():
        yield Rig(kernel, edu, "real" if REAL else f"sim:{kernel.socket_path}")
        return
    # the in-process model cannot be shared with a second process: use it as a server (see the docstring)
    from pyvfio.sim.remote import RemoteKernel

    server = request.getfixturevalue("sim_server")
    rk = RemoteKernel(server.path)
    rk.reset()
    dev = rk.add_device("edu")
    try:
        yield Rig(rk, EduDevice(dev.address, dev.group_id, dev.cdev), f"sim:{server.path}")
        deadline = time.monotonic() + 10  # the server reaps a dead child's descriptors asynchronously
        while rk.stats()["files"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rk.stats()["files"] == 0, "a process left files open in the simulated kernel"
    finally:
        rk.reset()
        rk.shutdown()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def need_backend(rig: Rig, backend: str) -> None:
    if backend == "iommufd" and (rig.edu.cdev is None or (REAL and not os.path.exists("/dev/iommu"))):
        pytest.skip("this kernel has no iommufd / VFIO device cdev")


def create(rig: Rig, backend: str, **kw: Any) -> Owner:
    need_backend(rig, backend)
    return Owner.create(rig.kernel, backend, device=rig.edu.address, group=rig.edu.group,
                        cdev=rig.edu.cdev or "", **kw)


def spawn(args: list[str]) -> "subprocess.Popen[str]":
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: "subprocess.Popen[str]") -> tuple[int, dict[str, Any], str]:
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"child {p.pid} hung; stderr:\n{err}")
    lines = out.strip().splitlines()
    return p.returncode, (json.loads(lines[-1]) if lines else {}), err


def start_listener(tmp_path: Path, rig: Rig, fail: str = "") -> tuple["subprocess.Popen[str]", socket.socket]:
    listen = str(tmp_path / "cpr.sock")
    p = spawn(["new-transfer", rig.spec, listen, fail])
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(listen):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"the new process never listened: {p.communicate()[1]}")
        time.sleep(0.01)
    chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    chan.connect(listen)
    return p, chan


def check_new_side(out: dict[str, Any], backend: str, pending: int) -> None:
    assert out["claimed"] == pending, out  # every MSI raised while delivery was stopped, exactly
    assert out["quiet"] and out["lost"] == 0 and out["sent"] == out["received"], out
    assert out["adopt_calls"] == (2 if backend == "legacy" else 1), out  # one MAP_FLAG_VADDR per mapping / CHANGE_PROCESS
    assert out["config_unchanged"] is True, out  # no reset, no config write on adoption
    assert out["ram_intact"] and out["dma_from_old"] and out["dma_round_trips"], out
    assert out["blackout_ms"] > 0


@pytest.mark.parametrize("backend", ["legacy", "iommufd"])
def test_cpr_transfer(rig: Rig, tmp_path: Path, backend: str) -> None:
    """Old = this process, new = a separately started one; descriptors over a unix socket with SCM_RIGHTS."""
    base = open_fds()
    pending = 3
    owner = create(rig, backend, mappings=2)
    new: Optional["subprocess.Popen[str]"] = None
    try:
        new, chan = start_listener(tmp_path, rig)
        registry, state = old_side_prepare(owner, pending)
        assert state.app["dma_before"] and state.app["dma_during"]  # legacy: DMA flows with every vaddr invalid
        # the MSIs raised while stopped sit in the eventfd counter, unread
        assert state.app["in_counters"] == pending == eventfd_count(owner.vectors[0])
        modes.send_state(chan, registry, state)
        modes.wait_verdict(chan, timeout=TIMEOUT)
        chan.close()
        owner.close()  # the new process owns everything now
        rc, out, err = finish(new)
    finally:
        owner.close()
        if new is not None and new.poll() is None:
            new.kill()
            new.wait()
    assert rc == 0, err
    assert out["pid"] != os.getpid()
    check_new_side(out, backend, pending)
    print(f"cpr-transfer {backend} on {rig.spec.split(':')[0]}: blackout {out['blackout_ms']} ms "
          f"(delivery gap {out['gap_ms']} ms)")
    assert open_fds() == base


@pytest.mark.parametrize("backend", ["legacy", "iommufd"])
def test_cpr_exec(rig: Rig, backend: str) -> None:
    """Old = a child that execs the new image in place (same pid); the state travels in a memfd."""
    need_backend(rig, backend)
    pending = 4
    p = spawn(["old-exec", rig.spec, backend, rig.edu.address, str(rig.edu.group), rig.edu.cdev or "",
               str(pending)])
    rc, out, err = finish(p)
    assert rc == 0, err
    assert out["pid"] == out["old_pid"] == p.pid  # the same process, a new image
    assert out["old_in_counters"] == pending and out["old_dma_before"] and out["old_dma_during"], out
    check_new_side(out, backend, pending)
    print(f"cpr-exec {backend} on {rig.spec.split(':')[0]}: blackout {out['blackout_ms']} ms "
          f"(delivery gap {out['gap_ms']} ms)")


@pytest.mark.parametrize("fail", ["refuse", "die"])
def test_legacy_new_process_fails_before_hand_off_old_side_recovers(rig: Rig, tmp_path: Path, fail: str) -> None:
    """The new process re-registers one vaddr at *its* address, then says FAIL (or dies): the old side takes
    every vaddr back, resumes, and gets the interrupts that were pending -- nothing lost, nothing leaked."""
    base = open_fds()
    pending = 2
    owner = create(rig, "legacy", mappings=2)
    new: Optional["subprocess.Popen[str]"] = None
    try:
        new, chan = start_listener(tmp_path, rig, fail)
        registry, state = old_side_prepare(owner, pending)
        modes.send_state(chan, registry, state)
        with pytest.raises(modes.CprError, match="failed: adopt failed: injected" if fail == "refuse"
                           else "went away before confirming"):
            modes.wait_verdict(chan, timeout=TIMEOUT)
        chan.close()
        rc, out, err = finish(new)
        assert rc == (0 if fail == "refuse" else 9), err
        received = owner.received
        owner.recover()
        drain(owner)
        assert owner.received - received == pending and owner.sent == owner.received
        k, c = rig.kernel, owner.container_fd
        # every vaddr is valid again (ours): re-registering one is EINVAL, and invalidating all succeeds
        m = owner.mappings[0]
        with pytest.raises(VfioError) as e:
            cpr_legacy.register_vaddrs(k, c, [m], lambda m: owner.base + m.offset)
        assert e.value.errno == errno.EINVAL
        cpr_legacy.invalidate_vaddrs(k, c)  # EINVAL if any vaddr were still invalid
        assert cpr_legacy.restore_vaddrs(k, c, owner.mappings, lambda m: owner.base + m.offset) == 2
        # the old process carries on: DMA into its memory, interrupts delivered
        assert all(owner.dma(i, 300 + i) for i in range(len(owner.mappings)))
        owner.raise_irq(0)
        drain(owner)
        assert owner.sent == owner.received
        ack_irq(owner)
    finally:
        owner.close()
        if new is not None and new.poll() is None:
            new.kill()
            new.wait()
    assert open_fds() == base


def test_iommufd_change_process_einval_while_a_user_va_mapping_exists(rig: Rig) -> None:
    """CHANGE_PROCESS moves only file-backed pages: one IOMMU_IOAS_MAP of anonymous memory makes it EINVAL
    (7.3.4: also from the owning process), CPR is refused up front; after unmapping it, it succeeds."""
    base = open_fds()
    owner = create(rig, "iommufd", mappings=1)
    anon = mmap.mmap(-1, 4096)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(anon))  # the temporary view is gone: anon can close
    iova = 0x200000
    try:
        k, ictx = rig.kernel, owner.iommufd_fd
        k.ioctl(ictx, ui.IOMMU_IOAS_MAP, ui.iommu_ioas_map(
            size=ctypes.sizeof(ui.iommu_ioas_map), ioas_id=owner.record.ioas_id, user_va=addr, length=4096,
            iova=iova, flags=ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE | ui.IOMMU_IOAS_MAP_WRITEABLE))
        with pytest.raises(VfioError) as e:
            cpr_iommufd.change_process(k, ictx)
        assert e.value.errno == errno.EINVAL
        reasons = [str(b) for b in owner.blockers()]
        assert len(reasons) == 1 and "IOMMU_IOAS_CHANGE_PROCESS" in reasons[0], reasons
        with pytest.raises(CprBlocked, match="CHANGE_PROCESS"):
            owner.prepare()
        assert owner.delivering  # refused before anything changed
        k.ioctl(ictx, ui.IOMMU_IOAS_UNMAP, ui.iommu_ioas_unmap(size=ctypes.sizeof(ui.iommu_ioas_unmap),
                                                               ioas_id=owner.record.ioas_id, iova=iova, length=4096))
        cpr_iommufd.change_process(k, ictx)
        assert owner.blockers() == []
        assert owner.dma(0, 55)  # the file-backed mapping still works
    finally:
        owner.close()
        anon.close()
    assert open_fds() == base
