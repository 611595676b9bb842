"""The simulated kernel as a separate process, with real processes around it.

The server (``python -m pyvfio.sim serve``) holds the machine; these tests make
user processes come and go around it the way CPR does: a process opens
everything and hands its descriptors to another over a unix socket before it
exits (legacy: ``VFIO_DMA_MAP_FLAG_VADDR``; iommufd: ``IOMMU_IOAS_MAP_FILE`` +
``IOMMU_IOAS_CHANGE_PROCESS``), a process dies without closing anything, and a
process ``exec``s with its device descriptor inherited.  The surface tests
(``tests/test_real_kernel_*.py``) run against a server with ``PYVFIO_KERNEL=sim-server``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from edu_driver import BUF_SIZE, EDU_IDENT_VALUE, IOVA, PAGE, Device, address_of, argsz
from pyvfio.sim.remote import CHUNK, RemoteKernel, RemoteMapping, ServerHandle, start_server
from pyvfio.uapi import iommufd as iu
from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex

ROOT = Path(__file__).resolve().parent.parent
EDU, EDU_GROUP, EDU_CDEV = "0000:00:03.0", 0, "/dev/vfio/devices/vfio0"
MTTY, MTTY_GROUP = "0000:00:04.0", 1
RW = vfio.VFIO_DMA_MAP_FLAG_READ | vfio.VFIO_DMA_MAP_FLAG_WRITE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server(str(tmp_path_factory.mktemp("srv") / "sim.sock"), devices=["edu", "mtty"])
    yield handle
    handle.stop()


@pytest.fixture
def rk(server: ServerHandle) -> Iterator[RemoteKernel]:
    """A client in this process; every test must leave the server with no open file."""
    k = RemoteKernel(server.path)
    yield k
    left = k.stats()["files"]
    if left:
        k.reset()  # so one failure does not cascade into the next tests
    k.shutdown()
    assert left == 0, f"{left} files left open in the server"


def child(code: str, *args: str, pass_fds: tuple[int, ...] = (), check: bool = True) -> "subprocess.CompletedProcess[str]":
    """Run ``code`` in a new python (a separate user process); argv[1:] are ``args``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], pass_fds=pass_fds, env=env,
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}"
    return proc


def wait_for_files(k: RemoteKernel, want: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = k.stats()
        if st["files"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.01)


PRELUDE = """
import ctypes, mmap, os, socket, sys
from pyvfio.sim.remote import RemoteKernel
from pyvfio.uapi import vfio
from pyvfio.uapi import iommufd as iu
from edu_driver import Device, argsz, address_of, IOVA, BUF_SIZE, PAGE
k = RemoteKernel(sys.argv[1])
"""

LEGACY_A = PRELUDE + """
chan = socket.socket(fileno=int(sys.argv[2]))
c = k.open("/dev/vfio/vfio")
g = k.open("/dev/vfio/0")
k.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
k.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
d = Device(k, k.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:00:03.0")))
d.enable_bus_master()
ram = os.memfd_create("guest-ram")
os.ftruncate(ram, BUF_SIZE)
buf = mmap.mmap(ram, BUF_SIZE)
k.ioctl(c, vfio.VFIO_IOMMU_MAP_DMA, argsz(vfio.vfio_iommu_type1_dma_map, flags=%d, vaddr=address_of(buf),
                                          iova=IOVA, size=BUF_SIZE))
d.round_trip(buf, IOVA)  # DMA reaches A's memory
# the old side of CPR: invalidate the vaddrs (DMA stays mapped), hand everything over, go away
k.ioctl(c, vfio.VFIO_IOMMU_UNMAP_DMA, argsz(vfio.vfio_iommu_type1_dma_unmap, flags=vfio.VFIO_DMA_UNMAP_FLAG_VADDR,
                                            iova=IOVA, size=BUF_SIZE))
socket.send_fds(chan, [str(os.getpid()).encode()], [c, g, d.fd, ram])
""" % RW


def test_legacy_vaddr_moves_dma_to_the_new_process(server: ServerHandle, rk: RemoteKernel) -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        proc = child(LEGACY_A, server.path, str(theirs.fileno()), pass_fds=(theirs.fileno(),))
        msg, fds, _, _ = socket.recv_fds(mine, 64, 8)
    container, group, device, ram = fds
    assert int(msg) != os.getpid() and proc.returncode == 0 and server.alive()
    buf = mmap.mmap(ram, BUF_SIZE)
    try:
        assert rk.stats()["files"] == 3  # A is gone; the kernel objects are not
        dev = Device(rk, device)
        assert rk.ioctl(container, vfio.VFIO_CHECK_EXTENSION, vfio.VFIO_UPDATE_VADDR) == 1
        # A is dead, so process_vm_writev to its pid would fail: DMA now lands in this process or nowhere
        rk.ioctl(container, vfio.VFIO_IOMMU_MAP_DMA, argsz(
            vfio.vfio_iommu_type1_dma_map, flags=vfio.VFIO_DMA_MAP_FLAG_VADDR, vaddr=address_of(buf), iova=IOVA,
            size=BUF_SIZE))
        dev.round_trip(buf, IOVA)  # RAM -> device -> RAM, both legs through this process's mapping
        # and the device reaches B's *private* memory too: map another range at an anonymous buffer of B
        anon = mmap.mmap(-1, BUF_SIZE)
        rk.ioctl(container, vfio.VFIO_IOMMU_MAP_DMA, argsz(
            vfio.vfio_iommu_type1_dma_map, flags=RW, vaddr=address_of(anon), iova=IOVA + BUF_SIZE, size=BUF_SIZE))
        dev.round_trip(anon, IOVA + BUF_SIZE)
        anon.close()
    finally:
        buf.close()
        for fd in (device, group, container, ram):
            os.close(fd)
    assert wait_for_files(rk, 0)["files"] == 0


IOMMUFD_A = PRELUDE + """
chan = socket.socket(fileno=int(sys.argv[2]))
ictx = k.open("/dev/iommu")
alloc = argsz(iu.iommu_ioas_alloc)
k.ioctl(ictx, iu.IOMMU_IOAS_ALLOC, alloc)
dfd = k.open("/dev/vfio/devices/vfio0")
k.ioctl(dfd, vfio.VFIO_DEVICE_BIND_IOMMUFD, argsz(vfio.vfio_device_bind_iommufd, iommufd=ictx))
k.ioctl(dfd, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz(vfio.vfio_device_attach_iommufd_pt, pt_id=alloc.out_ioas_id))
d = Device(k, dfd)
d.enable_bus_master()
ram = os.memfd_create("guest-ram")
os.ftruncate(ram, BUF_SIZE)
buf = mmap.mmap(ram, BUF_SIZE)
k.ioctl(ictx, iu.IOMMU_IOAS_MAP_FILE, argsz(iu.iommu_ioas_map_file, ioas_id=alloc.out_ioas_id, fd=ram, start=0,
        length=BUF_SIZE, iova=IOVA, flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE
        | iu.IOMMU_IOAS_MAP_WRITEABLE))
d.round_trip(buf, IOVA)
socket.send_fds(chan, [str(alloc.out_ioas_id).encode()], [ictx, dfd, ram])
"""


def test_iommufd_change_process_moves_dma_to_the_new_process(server: ServerHandle, rk: RemoteKernel) -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        child(IOMMUFD_A, server.path, str(theirs.fileno()), pass_fds=(theirs.fileno(),))
        msg, fds, _, _ = socket.recv_fds(mine, 64, 8)
    ictx, device, ram = fds
    buf = mmap.mmap(ram, BUF_SIZE)
    try:
        assert server.alive() and rk.stats()["files"] == 2
        rk.ioctl(ictx, iu.IOMMU_IOAS_CHANGE_PROCESS, argsz(iu.iommu_ioas_change_process))
        dev = Device(rk, device)
        dev.round_trip(buf, IOVA)  # the file-backed mapping now belongs to this process
        # a plain user-VA mapping of this process works as well, and makes CHANGE_PROCESS refuse (not MAP_FILE)
        anon = mmap.mmap(-1, BUF_SIZE)
        rk.ioctl(ictx, iu.IOMMU_IOAS_MAP, argsz(
            iu.iommu_ioas_map, ioas_id=int(msg), user_va=address_of(anon), length=BUF_SIZE, iova=IOVA + BUF_SIZE,
            flags=iu.IOMMU_IOAS_MAP_FIXED_IOVA | iu.IOMMU_IOAS_MAP_READABLE | iu.IOMMU_IOAS_MAP_WRITEABLE))
        dev.round_trip(anon, IOVA + BUF_SIZE)
        with pytest.raises(OSError) as e:
            rk.ioctl(ictx, iu.IOMMU_IOAS_CHANGE_PROCESS, argsz(iu.iommu_ioas_change_process))
        assert e.value.errno == errno.EINVAL
        rk.ioctl(ictx, iu.IOMMU_IOAS_UNMAP, argsz(iu.iommu_ioas_unmap, ioas_id=int(msg), iova=IOVA + BUF_SIZE,
                                                  length=BUF_SIZE))
        anon.close()
    finally:
        buf.close()
        for fd in (device, ictx, ram):
            os.close(fd)
    assert wait_for_files(rk, 0)["files"] == 0


DIES = PRELUDE + """
import json
c = k.open("/dev/vfio/vfio")
g = k.open("/dev/vfio/0")
k.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
k.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
d = Device(k, k.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:00:03.0")))
buf = mmap.mmap(-1, BUF_SIZE)
k.ioctl(c, vfio.VFIO_IOMMU_MAP_DMA, argsz(vfio.vfio_iommu_type1_dma_map, flags=3, vaddr=address_of(buf),
                                          iova=IOVA, size=BUF_SIZE))
efd = os.eventfd(0)
d.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
m = k.mmap(d.fd, PAGE, d.region(0).offset)
ictx = k.open("/dev/iommu")
cdev = k.open("/dev/vfio/devices/vfio1")
k.ioctl(cdev, vfio.VFIO_DEVICE_BIND_IOMMUFD, argsz(vfio.vfio_device_bind_iommufd, iommufd=ictx))
print(json.dumps(k.stats()), flush=True)
os.kill(os.getpid(), 9)
"""


def test_client_killed_without_closing_leaks_nothing(server: ServerHandle, rk: RemoteKernel) -> None:
    before = rk.stats()
    proc = child(DIES, server.path, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    during = json.loads(proc.stdout)
    assert during["files"] == before["files"] + 5  # container, group, device, iommufd, cdev
    assert during["fds"] > before["fds"] + 5  # plus the eventfd the model holds
    after = wait_for_files(rk, before["files"])
    assert (after["files"], after["fds"]) == (before["files"], before["fds"])
    # and the device is free again: a new process can take it
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{EDU_GROUP}")
    rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
    rk.close(g)
    rk.close(c)


EXEC_PARENT = PRELUDE + """
import subprocess
c = k.open("/dev/vfio/vfio")
g = k.open("/dev/vfio/0")
k.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
k.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
d = Device(k, k.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:00:03.0")))
d.write32(0x04, 0x1234)  # liveness register: the new image reads back its complement
for fd in (c, g, d.fd):
    os.set_inheritable(fd, True)  # cpr-exec clears close-on-exec on what it preserves
os.environ["CPR_FDS"] = f"{c},{g},{d.fd}"
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2], sys.argv[1], str(os.getpid())])
"""

EXEC_CHILD = PRELUDE + """
import json
c, g, dfd = map(int, os.environ["CPR_FDS"].split(","))
d = Device(k, dfd)
info = d.info()
m = k.mmap(dfd, PAGE, d.region(0).offset)
out = {"pid": os.getpid(), "old_pid": int(sys.argv[2]), "ident": m.read32(0), "liveness": d.read32(0x04),
       "regions": info.num_regions, "files": k.stats()["files"]}
m.close()
for fd in (dfd, g, c):
    k.close(fd)
out["files_after"] = k.stats()["files"]
print(json.dumps(out))
"""


def test_device_fd_survives_exec(server: ServerHandle, rk: RemoteKernel) -> None:
    proc = child(EXEC_PARENT, server.path, textwrap.dedent(EXEC_CHILD))
    out = json.loads(proc.stdout)
    assert out["pid"] == out["old_pid"]  # the same process, a new image
    assert out["ident"] == EDU_IDENT_VALUE and out["liveness"] == (~0x1234) & 0xFFFFFFFF
    assert out["regions"] == vfio.VFIO_PCI_NUM_REGIONS
    assert (out["files"], out["files_after"]) == (3, 0)


# -- the protocol's edges ------------------------------------------------------------------------------

def test_errors_carry_the_kernel_errno(rk: RemoteKernel) -> None:
    with pytest.raises(OSError) as e:
        rk.open("/dev/vfio/77")
    assert e.value.errno == errno.ENOENT and "/dev/vfio/77" in str(e.value)
    efd = os.eventfd(0)
    closed = 1000
    assert not os.path.exists(f"/proc/self/fd/{closed}")
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{EDU_GROUP}")
    try:
        with pytest.raises(OSError) as e:  # not a descriptor of the simulated kernel
            rk.ioctl(efd, vfio.VFIO_GET_API_VERSION)
        assert e.value.errno == errno.ENOTTY
        with pytest.raises(OSError) as e:  # a closed number
            rk.ioctl(closed, vfio.VFIO_GET_API_VERSION)
        assert e.value.errno == errno.EBADF
        with pytest.raises(OSError) as e:  # the server asks for fd `closed`: the client says it is not open
            rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(closed))
        assert e.value.errno == errno.EBADF and "VFIO_GROUP_SET_CONTAINER" in str(e.value)
        with pytest.raises(OSError) as e:  # an open descriptor the model does not know
            rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(efd))
        assert e.value.errno == errno.EBADFD
        rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))  # the server recognises its own file
        st = argsz(vfio.vfio_group_status)
        rk.ioctl(g, vfio.VFIO_GROUP_GET_STATUS, st)
        assert st.flags & vfio.VFIO_GROUP_FLAGS_CONTAINER_SET
        with pytest.raises(OSError) as e:
            rk.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:00:1f.0"))
        assert e.value.errno == errno.ENODEV
    finally:
        rk.close(g)
        rk.close(c)
        os.close(efd)
    with pytest.raises(OSError) as e:
        rk.close(c)
    assert e.value.errno == errno.EBADF


def test_set_irqs_eventfd_travels_to_the_server(rk: RemoteKernel) -> None:
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{EDU_GROUP}")
    rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
    rk.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
    dev = Device(rk, rk.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(EDU.encode())))
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    memfd = os.memfd_create("not-an-eventfd")
    try:
        with pytest.raises(OSError) as e:
            dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, memfd)
        assert e.value.errno == errno.EINVAL
        dev.enable_bus_master()
        dev.set_irq_eventfd(vfio.VFIO_PCI_MSI_IRQ_INDEX, efd)
        dev.write32(0x60, 1)  # raise
        from edu_driver import wait_eventfd

        assert wait_eventfd(efd) == 1  # the server signalled this process's eventfd
        dev.ack_irq()
        dev.disable_irq(vfio.VFIO_PCI_MSI_IRQ_INDEX)
    finally:
        for fd in (dev.fd, g, c):
            rk.close(fd)
        os.close(efd)
        os.close(memfd)


def test_migration_data_fd_is_installed_in_the_caller(rk: RemoteKernel) -> None:
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{MTTY_GROUP}")
    rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
    rk.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
    dfd = rk.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(MTTY.encode()))
    try:
        data_fds = []
        for state in (vfio.VFIO_DEVICE_STATE_STOP, vfio.VFIO_DEVICE_STATE_STOP_COPY):
            st = vfio.vfio_device_feature_mig_state(device_state=state, data_fd=1234)
            n = ctypes.sizeof(st)
            arg = alloc_flex(vfio.vfio_device_feature, n,
                             flags=vfio.VFIO_DEVICE_FEATURE_SET | vfio.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)
            ctypes.memmove(ctypes.addressof(arg) + 8, ctypes.addressof(st), n)
            rk.ioctl(dfd, vfio.VFIO_DEVICE_FEATURE, arg)
            ctypes.memmove(ctypes.addressof(st), ctypes.addressof(arg) + 8, n)
            data_fds.append(int(st.data_fd))
        assert data_fds[0] == -1 and data_fds[1] >= 0
        data_fd = data_fds[1]
        assert not os.get_inheritable(data_fd)  # installed O_CLOEXEC, as the kernel does
        assert rk.stats()["files"] == 4
        stream = rk.read(data_fd, 1 << 16)
        assert len(stream) > 0
        with pytest.raises(OSError) as e:
            rk.pread(data_fd, 8, 0)  # a stream: no positioned I/O
        assert e.value.errno == errno.ESPIPE
        rk.close(data_fd)
        assert rk.stats()["files"] == 3
    finally:
        for fd in (dfd, g, c):
            rk.close(fd)


def test_bar_mapping_keeps_the_device_open(rk: RemoteKernel) -> None:
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{EDU_GROUP}")
    rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
    rk.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
    dev = Device(rk, rk.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(EDU.encode())))
    dev.enable_bus_master()
    m = rk.mmap(dev.fd, 0x40000 + PAGE, dev.region(0).offset)
    assert isinstance(m, RemoteMapping) and len(m) == 0x40000 + PAGE
    rk.close(dev.fd)
    assert rk.stats()["files"] == 3  # the mapping holds the device file, as a vma does
    assert m.read32(0) == EDU_IDENT_VALUE
    m[0x04:0x08] = (0x5A5A0F0F).to_bytes(4, "little")  # liveness: reads back inverted
    assert m[0x04:0x08] == (0xA5A5F0F0).to_bytes(4, "little") and isinstance(m[0], int)
    with pytest.raises(IndexError):
        m.read(len(m) - 2, 4)
    m.close()
    with pytest.raises(ValueError):
        m.read32(0)
    assert rk.stats()["files"] == 2
    rk.close(g)
    rk.close(c)


def test_large_transfers_are_split(rk: RemoteKernel) -> None:
    c = rk.open("/dev/vfio/vfio")
    g = rk.open(f"/dev/vfio/{EDU_GROUP}")
    rk.ioctl(g, vfio.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(c))
    rk.ioctl(c, vfio.VFIO_SET_IOMMU, vfio.VFIO_TYPE1v2_IOMMU)
    dev = Device(rk, rk.ioctl(g, vfio.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(EDU.encode())))
    try:
        bar0 = dev.region(0)
        assert bar0.size >= 0x1000 + CHUNK + PAGE
        # more than one message of writes, into the edu's unused register space (the edu ignores them)
        assert rk.pwrite(dev.fd, bytes(CHUNK + PAGE), bar0.offset + 0x1000) == CHUNK + PAGE
        whole = rk.pread(dev.fd, CHUNK + PAGE, bar0.offset + 0x1000)  # more than one message of reads
        assert len(whole) == CHUNK + PAGE
        assert rk.pread(dev.fd, 4, bar0.offset) == EDU_IDENT_VALUE.to_bytes(4, "little")
    finally:
        for fd in (dev.fd, g, c):
            rk.close(fd)


def test_server_cli_and_lifetime(tmp_path: Path) -> None:
    path = str(tmp_path / "k.sock")
    bad = subprocess.run([sys.executable, "-m", "pyvfio.sim", "serve", "--socket", path, "--device", "edu,name"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert bad.returncode == 2 and "key=value" in bad.stderr
    with start_server(path, devices=["edu,name=0000:00:09.0,group=7"]) as h:
        with h.connect() as k:
            assert k.server_pid == h.pid and k.stats()["devices"] == ["0000:00:09.0"]
            dev = k.add_device("mtty")
            assert dev.group == 8 and os.path.basename(dev.cdev) == "vfio1"
            second = subprocess.run([sys.executable, "-m", "pyvfio.sim", "serve", "--socket", path],
                                    capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            assert second.returncode == 1 and "already has a server" in second.stderr
            fd = k.open("/dev/vfio/7")
        assert h.stop() == 0 and not os.path.exists(path)
        with pytest.raises(OSError) as e:  # the kernel is gone: the descriptor is dead
            k.ioctl(fd, vfio.VFIO_GROUP_GET_STATUS, argsz(vfio.vfio_group_status))
        assert e.value.errno == errno.ENODEV
        os.close(fd)
    with pytest.raises(OSError) as e:
        RemoteKernel(path)
    assert e.value.errno in (errno.ENOENT, errno.ECONNREFUSED) and "no simulated kernel server" in str(e.value)


@pytest.mark.parametrize("scope, want", [("0", None), ("1", errno.EINVAL), ("3", errno.EPERM)])
def test_yama_scope_is_handled_on_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str,
                                          want: Any) -> None:
    """Scope 1: the client names the server with PR_SET_PTRACER (here without Yama, prctl says EINVAL and the
    error says why it was needed); scope 3: refused up front; 0: nothing to do."""
    from pyvfio.sim import remote

    fake = tmp_path / "ptrace_scope"
    fake.write_text(scope + "\n")
    monkeypatch.setattr(remote, "YAMA_SCOPE", str(fake))
    if want is None:
        remote.allow_ptracer(os.getppid())
        return
    if want == errno.EINVAL and os.path.exists("/proc/sys/kernel/yama/ptrace_scope"):
        pytest.skip("Yama is present: PR_SET_PTRACER would succeed")
    with pytest.raises(OSError) as e:
        remote.allow_ptracer(os.getppid())
    assert e.value.errno == want and "ptrace_scope" in str(e.value)
