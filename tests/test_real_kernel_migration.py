"""Migration v2 from the user side (pyvfio.migration) on the mtty device, on both kernels.

On the simulated kernel the mtty is plugged in; in the VM lane (PYVFIO_KERNEL=real) the guest has
loaded ``mtty.ko`` and this module creates mtty mdevs through sysfs
(``/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create``) and removes them afterwards.  The
checks are the facts of ``vm/NOTES.md`` (flags 0x7, a 24-byte PRE_COPY header, 60 bytes for one port,
STOP_COPY continuing on the PRE_COPY fd) and a device-to-device migration through the stream format.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from conftest import real_kernel_requested, require_linux
from pyvfio.migration import DeviceDmaLog, MigrationDevice, parse_stream
from pyvfio.migration.fsm import PRE_COPY, RESUMING, RUNNING, STOP, STOP_COPY
from pyvfio.migration.live import device_setup, migrate_in, migrate_out, read_config, socket_transport
from pyvfio.uapi import vfio as uv

MTTY_TYPE = Path("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1")


class Mtty:
    """One mtty opened through its group and a type1v2 container."""

    def __init__(self, kernel: Any, group: int, name: str) -> None:
        self.k = kernel
        self.container = kernel.open("/dev/vfio/vfio")
        self.group = kernel.open(f"/dev/vfio/{group}")
        kernel.ioctl(self.group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        kernel.ioctl(self.container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        self.fd = kernel.ioctl(self.group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(name.encode()))
        self.mig = MigrationDevice(kernel, self.fd, name=name)

    def uart_write(self, reg: int, value: int) -> None:
        self.k.pwrite(self.fd, bytes([value]), reg)

    def uart_read(self, reg: int) -> int:
        return int(self.k.pread(self.fd, 1, reg)[0])

    def close(self) -> None:
        self.mig.abort()
        self.mig.close()
        for fd in (self.fd, self.group, self.container):
            self.k.close(fd)


def new_mtty(kernel: Any) -> tuple[int, str, Optional[Path]]:
    """Create (not open) an mtty: its group, its name, and the sysfs mdev to remove afterwards (real kernel)."""
    if real_kernel_requested():
        if not MTTY_TYPE.is_dir():
            pytest.skip("no mtty parent device (mtty.ko not loaded): the VM lane loads it")
        uid = str(uuid.uuid4())
        (MTTY_TYPE / "create").write_text(uid)
        dev = Path("/sys/bus/mdev/devices") / uid
        return int(os.path.basename(os.readlink(dev / "iommu_group"))), uid, dev
    vdev = kernel.add_device("mtty")
    return int(vdev.group_id), vdev.name, None


@pytest.fixture
def mtty(kernel: Any) -> Iterator[Callable[[], Mtty]]:
    """A factory of opened mtty devices (one port each)."""
    made: list[Mtty] = []
    mdevs: list[Path] = []

    def make() -> Mtty:
        group, name, dev = new_mtty(kernel)
        if dev is not None:
            mdevs.append(dev)
        m = Mtty(kernel, group, name)
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.close()
    for dev in mdevs:
        (dev / "remove").write_text("1")


def test_probe_and_precopy_session(mtty: Callable[[], Mtty]) -> None:
    m = mtty()
    assert m.mig.probe() == 0x7
    assert m.mig.data_size() == 60
    data = m.mig.set_state(PRE_COPY)
    assert data is not None
    assert m.mig.precopy_info().initial_bytes == 24
    assert len(m.mig.read_available()) == 24
    assert m.mig.read_available() == b""  # mtty: 0 at the temporary end
    assert m.mig.set_state(STOP_COPY) is None and m.mig.data is data
    assert len(m.mig.read_available()) == 36
    m.mig.set_state(STOP)
    assert m.mig.data is None and data.closed
    m.mig.set_state(RUNNING)
    assert m.mig.state == RUNNING


def test_dma_logging_stub_supported(mtty: Callable[[], Mtty]) -> None:
    """SEMANTICS 8: mtty's log ops are stubs: START succeeds, REPORT is clean."""
    m = mtty()
    require_linux(m.k, (7, 3), "mtty's DMA-logging stubs (Debian 6.12's mtty answers EOPNOTSUPP)")
    log = DeviceDmaLog(m.k, m.fd)
    assert log.supported()
    with log:
        log.start([(0x100000, 0x10000)], 4096)
        assert log.report(0x100000, 0x10000) == bytes(8)  # 16 pages: one zero u64 word


def test_migrate_device_to_device_over_socket(mtty: Callable[[], Mtty]) -> None:
    src, dst = mtty(), mtty()
    src.uart_write(7, 0x5A)      # SCR
    src.uart_write(3, 0x03)      # LCR 8N1
    src.uart_write(2, 0x07)      # FIFO on
    for ch in b"hi":
        src.uart_write(0, ch)    # loops back into RX
    setup = device_setup(src.mig, read_config(src.k, src.fd))
    local = device_setup(dst.mig, read_config(dst.k, dst.fd))
    a, b = socket.socketpair()
    box: dict[str, Any] = {}

    def destination() -> None:
        send, recv = socket_transport(b)
        try:
            box["image"] = migrate_in(dst.mig, send, recv, local=local)
        except Exception as e:
            box["error"] = e
        finally:
            b.close()

    t = threading.Thread(target=destination)
    t.start()
    send, recv = socket_transport(a)
    stats = migrate_out(src.mig, send, recv, setup=setup)
    a.close()
    t.join(30)
    assert "error" not in box, box
    assert stats.ok and stats.bytes_device == 60 and stats.precopy_rounds >= 1
    assert dst.mig.state == RUNNING and src.mig.state == STOP
    assert dst.uart_read(7) == 0x5A and dst.uart_read(3) == 0x03
    assert bytes(dst.uart_read(0) for _ in range(2)) == b"hi"


def test_short_resume_stream_einval_then_running(mtty: Callable[[], Mtty]) -> None:
    """SEMANTICS 8: RESUMING -> STOP with fewer bytes than the state: EINVAL; the device is brought back."""
    m = mtty()
    m.mig.set_state(RESUMING)
    with pytest.raises(OSError) as e:
        m.mig.set_state(STOP)
    assert e.value.errno == 22
    assert m.mig.state == RUNNING and m.mig.data is None


def test_stream_parse_of_real_device(mtty: Callable[[], Mtty]) -> None:
    m = mtty()
    parts: list[bytes] = []
    migrate_out(m.mig, parts.append, lambda n: b"OK"[:n], setup=device_setup(m.mig, read_config(m.k, m.fd)),
                precopy=False)
    image = parse_stream(b"".join(parts))
    assert image.setup is not None and (image.setup.vendor, image.setup.device) == (0x4348, 0x3253)
    assert len(image.device_bytes) == 60


def test_migrate_between_two_processes(kernel: Any, mtty: Callable[[], Mtty], request: pytest.FixtureRequest) -> None:
    """Source and destination in different processes, each opening its own mtty through its own descriptors.

    The destination is a forked child that opens the second device itself (a fresh container and
    group), takes the stream from a socket and reports what its UART shows.  Both processes must reach
    one kernel: the real one, or the simulated kernel in a server process -- with the default
    in-process simulated kernel (private to this process) the test starts that server for itself."""
    import json

    from conftest import sim_server_requested
    from pyvfio.sim.remote import RemoteKernel

    own_server: Optional[RemoteKernel] = None
    if real_kernel_requested() or sim_server_requested():
        src = mtty()
        socket_path = getattr(kernel, "socket_path", "")
    else:
        socket_path = request.getfixturevalue("sim_server").path
        own_server = kernel = RemoteKernel(socket_path)
        own_server.reset()
        src = Mtty(kernel, *new_mtty(kernel)[:2])
    dst_group, dst_name, dst_mdev = new_mtty(kernel)
    src.uart_write(7, 0xA5)
    src.uart_write(3, 0x1B)
    for ch in b"ok":
        src.uart_write(0, ch)
    setup = device_setup(src.mig, read_config(src.k, src.fd))
    a, b = socket.socketpair()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # destination process
        status = 1
        try:
            a.close()
            os.close(report_r)
            if real_kernel_requested():
                from pyvfio.kernel import Linux
                k: Any = Linux()
            else:
                k = RemoteKernel(socket_path)
            dst = Mtty(k, dst_group, dst_name)
            send, recv = socket_transport(b)
            try:
                migrate_in(dst.mig, send, recv, local=device_setup(dst.mig, read_config(k, dst.fd)))
                out = {"pid": os.getpid(), "state": dst.mig.state, "scr": dst.uart_read(7), "lcr": dst.uart_read(3),
                       "rx": [dst.uart_read(0) for _ in range(2)]}
            except Exception as e:
                out = {"error": f"{type(e).__name__}: {e}"}
            dst.close()
            os.write(report_w, json.dumps(out).encode())
            status = 0
        finally:
            os._exit(status)
    b.close()
    os.close(report_w)
    try:
        send, recv = socket_transport(a)
        stats = migrate_out(src.mig, send, recv, setup=setup)
        src_state = src.mig.state
        with os.fdopen(report_r, "rb") as f:
            report = json.loads(f.read() or b"{}")
    finally:
        a.close()
        _, status = os.waitpid(pid, 0)
        if dst_mdev is not None:
            (dst_mdev / "remove").write_text("1")
        if own_server is not None:
            src.close()
            left = own_server.stats()["files"]
            own_server.reset()
            own_server.shutdown()
            assert left == 0, f"{left} files left open in the simulated kernel server"
    assert os.waitstatus_to_exitcode(status) == 0 and "error" not in report, report
    assert report["pid"] != os.getpid() and report["state"] == RUNNING
    assert (report["scr"], report["lcr"], bytes(report["rx"])) == (0xA5, 0x1B, b"ok")
    assert stats.ok and stats.bytes_device == 60 and src_state == STOP
