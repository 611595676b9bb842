"""A live migration between two processes, each with its own simulated kernel and mtty device.

This is the harness behind the tests and the (future) ``python -m pyvfio
demo migrate``: :class:`SimHost` is one machine -- a ``pyvfio.sim.Kernel``,
an mtty device opened through a type1v2 container, and a few pages of guest
memory mapped for DMA with the container's dirty tracking on.  The guest's
"work" between pre-copy rounds is the device writing guest memory by DMA
(the simulated device's DMA path, which is what dirty tracking observes) and
the driver poking the UART.  :func:`destination_main` is the entry point of
the destination process; it reports what it received over a
``multiprocessing`` connection.  The two ends talk over loopback TCP, or --
with ``run_demo(netns=True)`` -- across a veth link between two network
namespaces (:mod:`.netns`), which is as close to two hosts as one machine gets.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import socket
from typing import Any, Optional

from ..irq.config_wiring import ConfigInterruptWiring
from ..irq.eventfd import FdHandlers
from ..irq.vfio_irqs import IntxController, VfioIrqs
from ..pci.access import VfioConfigRegion
from ..pci.config import VirtualConfig
from ..pci.state import save_state
from ..uapi import pci_regs as R
from ..uapi import vfio as uv
from .device import MigrationDevice
from .dirty import Type1DirtyTracker
from .fsm import RUNNING, state_name
from .live import MigrationStats, device_setup, migrate_in, migrate_out, read_config, snapshot_device_state, \
    socket_transport

__all__ = ["SimHost", "SimGuestMemory", "destination_main", "drain_fifo", "program_config", "run_demo", "stir_uart",
           "uart_state"]

PAGE = 4096
GUEST_IOVA = 0x100000


class SimGuestMemory:
    """Guest RAM: an anonymous mapping mapped at ``base_iova`` in a type1v2 container, dirty-tracked."""

    def __init__(self, kernel: Any, container: int, npages: int, base_iova: int = GUEST_IOVA) -> None:
        self.kernel = kernel
        self.container = container
        self.page_size = PAGE
        self.base_iova = base_iova
        self.size = npages * PAGE
        self.buf = mmap.mmap(-1, self.size)
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))
        m = uv.vfio_iommu_type1_dma_map(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_map),
                                        flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
                                        vaddr=self.addr, iova=base_iova, size=self.size)
        kernel.ioctl(container, uv.VFIO_IOMMU_MAP_DMA, m)
        self.tracker = Type1DirtyTracker(kernel, container)
        self.tracker.start()

    def read(self, iova: int, length: int) -> bytes:
        off = iova - self.base_iova
        return bytes(self.buf[off: off + length])

    def write(self, iova: int, data: bytes) -> None:
        off = iova - self.base_iova
        self.buf[off: off + len(data)] = data

    def dirty_bitmap(self) -> bytes:
        return self.tracker.get_bitmap(self.base_iova, self.size, self.page_size)

    def close(self) -> None:
        if self.tracker.started:
            self.tracker.stop()
        u = uv.vfio_iommu_type1_dma_unmap(argsz=ctypes.sizeof(uv.vfio_iommu_type1_dma_unmap),
                                          iova=self.base_iova, size=self.size)
        self.kernel.ioctl(self.container, uv.VFIO_IOMMU_UNMAP_DMA, u)
        # The mapping itself is left to the garbage collector: the ctypes view taken for its
        # address pins the buffer, so mmap.close() would fail while that view is alive.


class SimHost:
    """One simulated machine with an mtty device and ``npages`` of guest memory."""

    def __init__(self, npages: int = 16, **mtty_options: Any) -> None:
        from ..sim import Kernel

        self.kernel = Kernel()
        self.vdev = self.kernel.add_device("mtty", **mtty_options)
        k = self.kernel
        self.container = k.open("/dev/vfio/vfio")
        self.group = k.open(f"/dev/vfio/{self.vdev.group_id}")
        k.ioctl(self.group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        k.ioctl(self.container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        self.fd = k.ioctl(self.group, uv.VFIO_GROUP_GET_DEVICE_FD,
                          ctypes.create_string_buffer(self.vdev.name.encode()))
        self.memory: Optional[SimGuestMemory] = SimGuestMemory(k, self.container, npages) if npages else None
        self.mig = MigrationDevice(k, self.fd, name=self.vdev.name)
        self.config = read_config(k, self.fd)
        self.setup = device_setup(self.mig, self.config)
        #: The guest's view of the function's config space (BAR placement, COMMAND...): what the CONFIG
        #: section carries, separate from the device's own data.
        self.region = VfioConfigRegion(k, self.fd)
        self.vconfig = VirtualConfig(self.region)
        self.handlers = FdHandlers()
        self.wiring: Optional[ConfigInterruptWiring] = None

    def wire_interrupts(self) -> IntxController:
        """The VMM's interrupt side: INTx wired for as long as the guest's config allows it.

        A destination wires before the stream arrives, as a VMM does when it creates the device; the
        restored config then keeps (or changes) what is wired through the same events a guest's writes
        cause, so interrupts work on the destination without a step of their own."""
        intx = IntxController(VfioIrqs(self.region), self.handlers)
        self.wiring = ConfigInterruptWiring(self.vconfig, intx=intx)
        self.wiring.sync()
        return intx

    def close(self) -> None:
        if self.wiring is not None:
            self.wiring.close()
        self.mig.close()
        if self.memory is not None:
            self.memory.close()
        for fd in (self.fd, self.group, self.container):
            self.kernel.close(fd)

    def uart_write(self, reg: int, value: int, port: int = 0) -> None:
        self.kernel.pwrite(self.fd, bytes([value]), (port << 40) + reg)

    def uart_read(self, reg: int, port: int = 0) -> int:
        return int(self.kernel.pread(self.fd, 1, (port << 40) + reg)[0])

    def device_dma(self, offset: int, data: bytes) -> None:
        """The device writes guest memory at ``offset`` (what dirty tracking sees)."""
        assert self.memory is not None
        self.vdev.dma_write(self.memory.base_iova + offset, data)

    def migrate_out(self, sock: socket.socket, **kw: Any) -> MigrationStats:
        send, recv = socket_transport(sock)
        kw.setdefault("config_state", lambda: save_state(self.vconfig))
        return migrate_out(self.mig, send, recv, setup=self.setup, memory=self.memory, raw_config=self.config,
                           **kw)


def program_config(host: SimHost, io_base: int = 0xC000) -> None:
    """What a guest's firmware does to the function: place its I/O BARs, enable I/O decode, pick a line."""
    for bar in host.vconfig.bars:
        if bar is not None:
            host.vconfig.config_write(bar.offset, (io_base | R.PCI_BASE_ADDRESS_SPACE_IO).to_bytes(4, "little"))
            io_base += 0x100
    host.vconfig.config_write(R.PCI_COMMAND, R.PCI_COMMAND_IO.to_bytes(2, "little"))
    host.vconfig.config_write(R.PCI_INTERRUPT_LINE, b"\x0b")


def stir_uart(host: SimHost, text: bytes = b"abc") -> None:
    """Recognisable UART state: scratch, 8N1 with divisor 12, FIFO on, ``text`` queued, DTR|RTS|OUT2."""
    host.uart_write(7, 0x5A)
    host.uart_write(3, 0x80)
    host.uart_write(0, 0x0C)
    host.uart_write(1, 0x00)
    host.uart_write(3, 0x03)
    host.uart_write(1, 0x01)  # IER: interrupt when received data reaches the trigger level
    host.uart_write(2, 0x07)
    for ch in text:
        host.uart_write(0, ch)
    host.uart_write(4, 0x0B)


def uart_state(host: SimHost) -> dict[str, int]:
    """Registers readable without side effects (LCR, MCR, SCR, LSR, MSR, IER, IIR)."""
    return {name: host.uart_read(reg) for name, reg in
            (("IER", 1), ("IIR", 2), ("LCR", 3), ("MCR", 4), ("LSR", 5), ("MSR", 6), ("SCR", 7))}


def drain_fifo(host: SimHost) -> bytes:
    out = bytearray()
    while host.uart_read(5) & 0x01:  # LSR.DR
        out.append(host.uart_read(0))
    return bytes(out)


def destination_main(port_conn: Any, result_conn: Any, npages: int = 16, mtty_options: Optional[dict[str, Any]]
                     = None, listen: str = "127.0.0.1", netns_path: Optional[str] = None) -> None:
    """Destination process: listen on ``listen``, send the port, take one migration, report the outcome.

    With ``netns_path`` the process first moves into that network namespace
    (see :mod:`.netns`), so the listening socket -- and everything the
    process does on the network -- lives there; the report's ``netns`` says
    where it ended up.  A failure before listening is reported too, so the
    parent learns why no port came instead of waiting for one.
    """
    host = SimHost(npages, **(mtty_options or {}))
    intx = host.wire_interrupts()
    srv: Optional[socket.socket] = None
    result: dict[str, Any] = {}
    try:
        if netns_path is not None:
            from . import netns

            netns.enter(netns_path)  # before any socket exists: a socket stays in the namespace it was made in
        result["netns"] = os.readlink("/proc/self/ns/net")
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind((listen, 0))
        srv.listen(1)
        port_conn.send(srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn:
            send, recv = socket_transport(conn)
            try:
                image = migrate_in(host.mig, send, recv, local=host.setup, memory=host.memory, config=host.vconfig)
            except Exception as e:  # reported to the parent, which asserts on it
                result.update(ok=False, error=f"{type(e).__name__}: {e}", state=host.mig.state,
                              snapshot=snapshot_device_state(host.mig))
            else:
                result.update(ok=True, rounds=image.rounds, state=host.mig.state,
                              snapshot=snapshot_device_state(host.mig), uart=uart_state(host),
                              memory=host.memory.read(host.memory.base_iova, host.memory.size)
                              if host.memory else b"",
                              fifo=drain_fifo(host), raw_config=image.raw_config, config=save_state(host.vconfig))
                # The guest on this side sends one byte: with the migrated IER and an empty FIFO it reaches
                # the trigger level, so the device interrupts -- through this process's INTx eventfd.
                host.uart_write(0, ord("!"))
                host.handlers.dispatch(5.0)
                result["irq"] = intx.interrupts
    except Exception as e:  # before a connection existed (entering the namespace, binding): tell the parent
        result.update(ok=False, error=f"{type(e).__name__}: {e}")
        raise
    finally:
        if srv is not None:
            srv.close()
        host.close()
        result_conn.send(result)


def run_demo(*, precopy: bool = True, dirty_rate: int = 2, npages: int = 64, rounds: int = 8,
             progress: Optional[Any] = None, netns: bool = False) -> dict[str, Any]:
    """The whole two-process migration on simulated kernels; returns the summary the CLI prints as JSON.

    ``dirty_rate`` is how many guest pages the device's DMA dirties after
    each pre-copy round (for the first ``rounds - 1`` rounds, so pre-copy
    converges).  ``progress(text)`` gets one line per step.  Keys:
    ``precopy_rounds, bytes_device, bytes_memory, bytes_stream, downtime_ms,
    state_ok, memory_ok, ok, transport`` (and ``error`` when the migration failed).

    ``netns=True`` puts the two ends in two fresh network namespaces joined
    by a veth pair (:func:`.netns.veth_pair`): the destination process lives
    in one, the source's connection is made from the other, so the stream
    crosses a link between two network stacks rather than loopback.  This
    process's own namespace never changes, and the namespaces are gone when
    this returns (``transport`` is ``"veth-netns"`` instead of ``"tcp-loopback"``).
    """
    import contextlib
    import multiprocessing
    import multiprocessing.connection

    say = progress or (lambda text: None)
    summary: dict[str, Any] = {"precopy_rounds": 0, "bytes_device": 0, "bytes_memory": 0, "bytes_stream": 0,
                               "downtime_ms": 0.0, "state_ok": False, "memory_ok": False, "config_ok": False,
                               "irq_ok": False, "ok": False,
                               "transport": "veth-netns" if netns else "tcp-loopback"}
    with contextlib.ExitStack() as stack:
        # Set up first and torn down last: the destination process must have exited before the namespaces'
        # descriptors close, or it would keep its namespace (and the veth) alive past our return.
        link = None
        if netns:
            from .netns import veth_pair

            link = stack.enter_context(veth_pair())
            say(f"network: two new network namespaces joined by a veth pair: {link.describe()}")
        listen = str(link.b_addr.ip) if link else "127.0.0.1"
        # A real type1 container reports every mapped page dirty for a physical device, so pre-copy of guest
        # memory could never converge; the demo models an IOMMU with page-accurate dirty tracking instead
        # (what iommufd HWPT dirty tracking or device DMA logging give a VMM) and says so.
        from ..sim import vfio_iommu_type1

        saved_precise = vfio_iommu_type1.precise_dirty_tracking
        vfio_iommu_type1.precise_dirty_tracking = True
        stack.callback(setattr, vfio_iommu_type1, "precise_dirty_tracking", saved_precise)
        say("source: the simulated IOMMU tracks dirty pages exactly (a real type1 container would report all of "
            "them)")
        ctx = multiprocessing.get_context("spawn")
        port_r, port_w = ctx.Pipe(duplex=False)
        res_r, res_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=destination_main,
                           args=(port_w, res_w, npages, None, listen, link.b.path if link else None))
        src = SimHost(npages)
        try:
            stir_uart(src)
            program_config(src)
            src.device_dma(0, os.urandom(npages * PAGE // 2))
            say(f"source: mtty {src.vdev.name} with UART state, {npages} pages of guest memory")
            proc.start()
            if port_r not in multiprocessing.connection.wait([port_r, proc.sentinel], 30):
                failure = res_r.recv().get("error") if res_r.poll(0.5) else None
                raise RuntimeError(f"the destination process did not start listening: {failure or 'no answer'}")
            port = port_r.recv()
            say(f"destination: listening on {listen}:{port} (pid {proc.pid}"
                + (f", in namespace {link.b})" if link else ")"))

            def work(rnd: int) -> None:
                say(f"pre-copy round {rnd} sent")
                if rnd < rounds:
                    for i in range(dirty_rate):
                        src.device_dma(((rnd * 7 + i * 13) % npages) * PAGE, os.urandom(64))
                    src.uart_write(0, ord("0") + rnd % 10)

            def connect() -> socket.socket:
                # bounded, so a link that drops the SYN fails the demo instead of hanging it; the migration
                # itself then runs on a blocking socket as before
                sock = socket.create_connection((listen, port), timeout=30)
                sock.settimeout(None)
                return sock

            # Only the socket has to be made inside namespace A: it keeps that namespace for life, so the
            # migration itself can run on this thread.
            sock = link.a.run(connect) if link else connect()
            with sock:
                if link:
                    local = sock.getsockname()
                    say(f"source: connected from {local[0]}:{local[1]} in namespace {link.a} to {listen}:{port}")
                try:
                    stats = src.migrate_out(sock, precopy=precopy, max_rounds=rounds, between_rounds=work)
                except Exception as e:
                    summary["error"] = f"{type(e).__name__}: {e}"
                    say(f"migration failed: {summary['error']}; source device is {state_name(src.mig.state)}")
                    stats = None
            ready = multiprocessing.connection.wait([res_r, proc.sentinel], 30)
            report = res_r.recv() if res_r in ready or res_r.poll(0.5) else {}
            if stats is not None:
                say(f"stop-and-copy done: downtime {stats.downtime_ms:.1f} ms")
                src.mig.set_state(RUNNING)  # running again, to take the reference snapshot
                summary.update(precopy_rounds=stats.precopy_rounds, bytes_device=stats.bytes_device,
                               bytes_memory=stats.bytes_memory, bytes_stream=stats.bytes_stream,
                               downtime_ms=round(stats.downtime_ms, 3))
                summary["state_ok"] = bool(report.get("ok")) and \
                    report.get("snapshot") == snapshot_device_state(src.mig) and report.get("uart") == uart_state(src)
                assert src.memory is not None
                summary["memory_ok"] = report.get("memory") == bytes(src.memory.buf)
                summary["config_ok"] = report.get("config") == save_state(src.vconfig)
                summary["irq_ok"] = report.get("irq", 0) >= 1
                summary["ok"] = summary["state_ok"] and summary["memory_ok"] and summary["config_ok"] \
                    and summary["irq_ok"]
                say(f"destination: device state {'matches' if summary['state_ok'] else 'DIFFERS'}, memory "
                    f"{'matches' if summary['memory_ok'] else 'DIFFERS'}, PCI config "
                    f"{'matches' if summary['config_ok'] else 'DIFFERS'}; its INTx "
                    f"{'interrupted' if summary['irq_ok'] else 'DID NOT interrupt'} the destination")
        finally:
            if proc.pid is not None:  # started
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            src.close()
    return summary
