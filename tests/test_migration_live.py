"""Live migration (pyvfio.migration.live) between two processes, each with its own simulated kernel.

Source: an mtty device with recognisable UART state and 16 pages of guest
memory that its DMA keeps dirtying between pre-copy rounds.  Destination: a
fresh machine in a spawned process, reached over a loopback TCP socket.  The
destination checks the device (its own re-save must equal the source's, the
UART registers and the queued FIFO bytes must match) and the memory.  Fault
tests: a destination that dies, a corrupt section, a cut stream -- the source
device must be RUNNING afterwards and the error must say what happened; a
rejecting destination must leave its own device RUNNING in its old state.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import socket
import struct
import threading
from typing import Any, Callable, Optional

import pytest

from pyvfio.migration import CorruptStream, IncompatibleStream, MigrationError, TruncatedStream
from pyvfio.migration.fsm import RUNNING, STOP
from pyvfio.migration.live import RemoteFailure, migrate_in, migrate_out, snapshot_device_state, socket_transport
from pyvfio.migration.sim_demo import SimHost, destination_main, drain_fifo, run_demo, stir_uart, uart_state
from pyvfio.sim import vfio_iommu_type1 as type1

CTX = multiprocessing.get_context("spawn")


def run_with_destination(target: Callable[..., None], src: SimHost, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """Start ``target`` in a new process, migrate ``src`` to it; (stats or exception, its report)."""
    port_r, port_w = CTX.Pipe(duplex=False)
    res_r, res_w = CTX.Pipe(duplex=False)
    proc = CTX.Process(target=target, args=(port_w, res_w))
    proc.start()
    try:
        assert port_r.poll(30), "destination did not start"
        port = port_r.recv()
        outcome: Any
        with socket.create_connection(("127.0.0.1", port)) as sock:
            try:
                outcome = src.migrate_out(sock, **kw)
            except Exception as e:  # asserted by the caller
                outcome = e
        ready = multiprocessing.connection.wait([res_r, proc.sentinel], 30)
        report = res_r.recv() if res_r in ready or res_r.poll(0.5) else {}
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return outcome, report


def dirty_between_rounds(src: SimHost) -> Callable[[int], None]:
    """The guest keeps working during pre-copy: device DMA into a page per round, a byte to the UART."""
    def work(rnd: int) -> None:
        if rnd <= 3:
            src.device_dma(rnd * 4096 + 17, f"round {rnd}".encode())
            src.uart_write(0, ord("0") + rnd)  # TX loops into the RX FIFO
    return work


@pytest.mark.parametrize("precopy", [True, False], ids=["precopy", "stop-and-copy"])
def test_live_migration_two_processes(precopy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # opt in to the simulation's precise type1 dirty log (the default, like 7.3.4, reports every mapped page)
    monkeypatch.setattr(type1, "precise_dirty_tracking", True)
    src = SimHost()
    stir_uart(src)
    src.device_dma(0, os.urandom(3 * 4096))
    outcome, report = run_with_destination(destination_main, src, precopy=precopy,
                                           between_rounds=dirty_between_rounds(src) if precopy else None)
    assert not isinstance(outcome, Exception), outcome
    assert outcome.ok and report.get("ok"), report
    assert src.mig.state == STOP and src.mig.data is None  # the guest now lives on the destination
    # the device: the destination's own re-save equals what the source device holds now
    src.mig.set_state(RUNNING)
    assert report["snapshot"] == snapshot_device_state(src.mig)
    assert report["uart"] == uart_state(src)
    assert report["fifo"] == drain_fifo(src) == (b"abc123" if precopy else b"abc")
    assert report["state"] == RUNNING
    assert report["raw_config"] == src.config
    # the memory, including pages dirtied during pre-copy
    assert src.memory is not None and report["memory"] == bytes(src.memory.buf)
    if precopy:
        assert outcome.precopy_rounds >= 4 and outcome.bytes_device == 60
        assert outcome.pages_sent > 16  # the first full pass plus re-sent dirty pages
    else:
        assert outcome.precopy_rounds == 0 and outcome.pages_sent == 16
    src.close()


def dying_destination(port_conn: Any, result_conn: Any) -> None:
    """Accepts, reads a little of the stream, and dies without a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_conn.send(srv.getsockname()[1])
    conn, _ = srv.accept()
    conn.recv(100)
    os._exit(3)


def test_destination_dies_source_keeps_running() -> None:
    src = SimHost()
    stir_uart(src)
    before = snapshot_device_state(src.mig)
    outcome, _ = run_with_destination(dying_destination, src)
    assert isinstance(outcome, (OSError, RemoteFailure)), outcome
    assert src.mig.state == RUNNING and src.mig.data is None
    assert snapshot_device_state(src.mig) == before
    src.close()


def migrate_in_thread(dst: SimHost, sock: socket.socket, *, config: Any = None,
                      seen: Optional[list[bytes]] = None) -> dict[str, Any]:
    """Run the destination side in a thread (same process, its own simulated kernel).

    ``config`` is the destination's VirtualConfig; ``seen`` collects the bytes it received."""
    box: dict[str, Any] = {}

    def run() -> None:
        send, recv = socket_transport(sock)

        def recv_seen(n: int) -> bytes:
            data = recv(n)
            if seen is not None:
                seen.append(data)
            return data

        try:
            box["image"] = migrate_in(dst.mig, send, recv_seen, local=dst.setup, memory=dst.memory, config=config)
        except Exception as e:
            box["error"] = e
        finally:
            sock.close()

    box["thread"] = threading.Thread(target=run)
    box["thread"].start()
    return box


class Tamper:
    """A socket wrapper for the source that corrupts or cuts the outgoing stream."""

    def __init__(self, sock: socket.socket, *, flip_at: Optional[int] = None, cut_at: Optional[int] = None):
        self.sock = sock
        self.flip_at = flip_at
        self.cut_at = cut_at
        self.sent = 0

    def sendall(self, data: bytes) -> None:
        buf = bytearray(data)
        if self.flip_at is not None and self.sent <= self.flip_at < self.sent + len(buf):
            buf[self.flip_at - self.sent] ^= 0x40
        if self.cut_at is not None and self.sent + len(buf) > self.cut_at:
            self.sock.sendall(bytes(buf[: max(0, self.cut_at - self.sent)]))
            self.sock.shutdown(socket.SHUT_WR)
            self.sent = self.cut_at
            raise BrokenPipeError("stream cut by the test")
        self.sock.sendall(bytes(buf))
        self.sent += len(buf)

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)


@pytest.mark.parametrize("fault", ["corrupt-data", "corrupt-memory", "cut"])
def test_bad_stream_rejected_nothing_applied(fault: str) -> None:
    src, dst = SimHost(), SimHost()
    stir_uart(src)
    src.device_dma(0, b"\xee" * 4096)
    dst.uart_write(7, 0x99)  # the destination's own state, which must survive a rejected stream
    dst_before = snapshot_device_state(dst.mig)
    assert src.memory is not None and dst.memory is not None
    dst_mem_before = bytes(dst.memory.buf)
    a, b = socket.socketpair()
    box = migrate_in_thread(dst, b)
    # offsets: 20-byte header, SETUP (16 + 17 + 4), RAW_CONFIG (16 + 256 + 4), then the first MEMORY section
    first_memory_payload = 20 + 37 + 276 + 16
    tamper = Tamper(a, flip_at={"corrupt-data": None, "corrupt-memory": first_memory_payload + 40,
                                "cut": None}[fault],
                    cut_at=first_memory_payload + 1000 if fault == "cut" else None)
    if fault == "corrupt-data":
        # flip a byte inside the final DATA section (the device's STOP_COPY data): find it in a recording
        recorded = _recorded_stream()
        tamper = Tamper(a, flip_at=recorded.rfind(struct.pack(">Q", 0xFFFFFFFFEF100004)) + 16 + 3)
    send, recv = tamper.sendall, _recv_exact(tamper)
    from pyvfio.migration.live import migrate_out
    with pytest.raises((RemoteFailure, OSError)) as err:
        migrate_out(src.mig, send, recv, setup=src.setup, memory=src.memory, raw_config=src.config)
    a.close()
    box["thread"].join(10)
    expected = TruncatedStream if fault == "cut" else CorruptStream
    assert isinstance(box.get("error"), expected), box
    if fault != "cut":
        assert "checksum mismatch" in str(err.value) and "CorruptStream" in str(err.value)
    # source: running, session closed; destination: running, old device state, memory untouched
    assert src.mig.state == RUNNING and src.mig.data is None
    assert dst.mig.state == RUNNING and dst.mig.data is None
    assert snapshot_device_state(dst.mig) == dst_before
    assert bytes(dst.memory.buf) == dst_mem_before
    src.close()
    dst.close()


def _recv_exact(t: Tamper) -> Callable[[int], bytes]:
    def recv(n: int) -> bytes:
        out = b""
        while len(out) < n:
            part = t.recv(n - len(out))
            if not part:
                break
            out += part
        return out
    return recv


def _recorded_stream() -> bytes:
    """What the source would send, recorded from a twin host in the same state (for offsets)."""
    twin = SimHost()
    stir_uart(twin)
    twin.device_dma(0, b"\xee" * 4096)
    parts: list[bytes] = []
    from pyvfio.migration.live import migrate_out
    migrate_out(twin.mig, parts.append, lambda n: b"OK"[:n], setup=twin.setup, memory=twin.memory,
                raw_config=twin.config)
    twin.close()
    return b"".join(parts)


def test_incompatible_device_rejected() -> None:
    """A stream from a 2-port mtty into a 1-port one: the driver's own header check, reported, all RUNNING."""
    src, dst = SimHost(nr_ports=2), SimHost()
    a, b = socket.socketpair()
    box = migrate_in_thread(dst, b)
    from pyvfio.migration.live import migrate_out
    send, recv = socket_transport(a)
    with pytest.raises(RemoteFailure, match="ENOMEM|EFAULT"):
        migrate_out(src.mig, send, recv, setup=src.setup, memory=src.memory)
    a.close()
    box["thread"].join(10)
    assert isinstance(box.get("error"), OSError)
    assert src.mig.state == RUNNING and dst.mig.state == RUNNING
    src.close()
    dst.close()


def test_migration_error_hierarchy() -> None:
    assert issubclass(RemoteFailure, MigrationError) and issubclass(CorruptStream, MigrationError)


@pytest.mark.parametrize("precopy", [True, False])
def test_run_demo_summary(precopy: bool) -> None:
    """The entry point for `python -m pyvfio demo migrate`: the JSON fields and a good outcome."""
    lines: list[str] = []
    summary = run_demo(precopy=precopy, dirty_rate=3, npages=32, progress=lines.append)
    assert summary["ok"] and summary["state_ok"] and summary["memory_ok"] and summary["config_ok"] \
        and summary["irq_ok"], summary
    assert any("PCI config matches" in line for line in lines)
    assert summary["bytes_device"] == 60 and summary["bytes_memory"] >= 32 * 4096
    assert (summary["precopy_rounds"] > 1) == precopy
    assert summary["downtime_ms"] > 0 and any("downtime" in line for line in lines)


def test_pump_reader_error_propagates_and_source_recovers() -> None:
    """A data fd read failing during stop-and-copy: the error surfaces, the session is gone, source RUNNING."""
    src = SimHost(npages=0)
    fds_before = len(os.listdir("/proc/self/fd"))
    parts: list[bytes] = []
    real_iter = src.mig.iter_available

    def failing_iter(chunk: int = 1 << 20) -> Any:
        if src.mig.state != 3:  # not STOP_COPY
            yield from real_iter(chunk)
            return
        yield src.mig.data.read(10) if src.mig.data else b""
        raise OSError(5, "injected read failure")  # inside StreamWriter.pump's reader thread

    src.mig.iter_available = failing_iter  # type: ignore[method-assign]
    with pytest.raises(OSError, match="injected"):
        migrate_out(src.mig, parts.append, lambda n: b"OK"[:n], setup=src.setup)
    assert src.mig.state == RUNNING and src.mig.data is None
    assert len(os.listdir("/proc/self/fd")) == fds_before
    src.close()


def test_config_section_restored_into_destination_virtual_config() -> None:
    """The CONFIG section carries pyvfio.pci.state; the destination's VirtualConfig ends identical."""
    from pyvfio.migration.sim_demo import program_config
    from pyvfio.pci.state import save_state
    src, dst = SimHost(npages=0), SimHost(npages=0)
    src_vc, dst_vc = src.vconfig, dst.vconfig
    program_config(src)  # BAR0 (I/O) placed by the guest, COMMAND I/O decode, interrupt line
    assert save_state(src_vc) != save_state(dst_vc)
    a, b = socket.socketpair()
    box = migrate_in_thread(dst, b, config=dst_vc)
    send, recv = socket_transport(a)
    migrate_out(src.mig, send, recv, setup=src.setup, config_state=lambda: save_state(src_vc))
    a.close()
    box["thread"].join(10)
    assert "error" not in box, box
    assert save_state(dst_vc) == save_state(src_vc)
    # and a destination without a VirtualConfig refuses such a stream before touching its device
    third = SimHost(npages=0)
    parts: list[bytes] = []
    src.mig.set_state(RUNNING)
    migrate_out(src.mig, parts.append, lambda n: b"OK"[:n], setup=src.setup, config_state=lambda: save_state(src_vc))
    stream = b"".join(parts)
    pos = 0

    def recv_exact(n: int) -> bytes:
        nonlocal pos
        pos += n
        return stream[pos - n: pos]

    with pytest.raises(IncompatibleStream, match="no VirtualConfig"):
        migrate_in(third.mig, lambda d: None, recv_exact, local=third.setup)
    assert third.mig.state == RUNNING
    for h in (src, dst, third):
        h.close()


class ReinitKernel:
    """Wraps a kernel so the first two PRECOPY_INFO answers after the opt-in carry VFIO_PRECOPY_INFO_REINIT."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reinits = 2

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        from pyvfio.uapi import vfio as uv
        ret = self.inner.ioctl(fd, request, arg)
        if request == uv.VFIO_MIG_GET_PRECOPY_INFO and self.reinits:
            self.reinits -= 1
            arg.flags |= uv.VFIO_PRECOPY_INFO_REINIT
        return int(ret)


def test_precopy_reinit_resends_init_marker_and_delays_switchover() -> None:
    """Linux 7.3 REINIT: pre-copy does not converge on a REINIT round and INIT_SENT is announced again."""
    from pyvfio.migration import MigrationDevice
    src = SimHost(npages=0)
    mig = MigrationDevice(ReinitKernel(src.kernel), src.fd)
    parts: list[bytes] = []
    stats = migrate_out(mig, parts.append, lambda n: b"OK"[:n], setup=src.setup)
    stream = b"".join(parts)
    init_sent = struct.pack(">QQ", 0xFFFFFFFFEF100005, 0)
    assert stats.precopy_rounds == 3  # two REINIT rounds, then convergence
    assert stream.count(init_sent) == 2  # rounds 1 and 2 each end with one (REINIT reset it)
    src.close()


def test_unchecked_data_stream_migrates_and_is_flagged() -> None:
    """data_checksum=False: the header says so, and the destination still ends in the source's state."""
    src, dst = SimHost(npages=0), SimHost(npages=0)
    stir_uart(src)
    parts: list[bytes] = []
    a, b = socket.socketpair()
    box = migrate_in_thread(dst, b, seen=parts)
    send, recv = socket_transport(a)
    migrate_out(src.mig, send, recv, setup=src.setup, data_checksum=False)
    a.close()
    box["thread"].join(10)
    assert "error" not in box, box
    assert struct.unpack(">HHI", b"".join(parts)[8:16]) == (1, 1, 1)
    src.mig.set_state(RUNNING)
    assert snapshot_device_state(dst.mig) == snapshot_device_state(src.mig)
    assert uart_state(dst) == uart_state(src)
    for h in (src, dst):
        h.close()


def test_destination_interrupts_come_from_the_migrated_uart_state() -> None:
    """irq_ok is not free: a fresh mtty (IER 0) stays silent on the wired INTx, the stirred one interrupts."""
    from pyvfio.migration.sim_demo import drain_fifo

    for stirred, want in ((False, 0), (True, 1)):
        host = SimHost(npages=0)
        intx = host.wire_interrupts()
        if stirred:
            stir_uart(host)
            drain_fifo(host)
            host.handlers.dispatch(0.1)
            intx.eoi()
            intx.interrupts = 0
        host.uart_write(0, ord("!"))
        host.handlers.dispatch(0.2 if want else 0.05)
        assert intx.interrupts == want, stirred
        host.close()
