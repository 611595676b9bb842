"""MigrationDevice (pyvfio.migration.device) on the simulated mtty: probe, states, the data fd, recovery.

Rules: SEMANTICS 7.1-7.4 and 8 (mtty).  Negative tests check the kernel's
errno; fault injection uses the model's ``fail_arcs`` (mtty never fails on its
own) and a small wrapper kernel for the behaviours mtty does not have
(``ENOMSG`` at the end of pre-copy data, a stray data fd).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
from typing import Any

import pytest

from pyvfio.migration import MigrationDevice, MigrationError, MigrationPlanError
from pyvfio.migration.device import DataFd
from pyvfio.migration.fsm import PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, RUNNING_P2P, STOP, STOP_COPY
from pyvfio.sim import Kernel
from pyvfio.uapi import vfio as uv

MTTY_HEADER = 24
MTTY_ONE_PORT = 60


@dataclasses.dataclass
class Opened:
    k: Any
    vdev: Any
    fds: list[int]
    mig: MigrationDevice

    def close(self) -> None:
        self.mig.close()
        for fd in reversed(self.fds):
            self.k.close(fd)


def open_mtty(k: Any, kind: str = "mtty", **options: Any) -> Opened:
    """An mtty (or other) device through group + type1v2 container, wrapped in a MigrationDevice."""
    vdev = k.add_device(kind, **options)
    container = k.open("/dev/vfio/vfio")
    group = k.open(f"/dev/vfio/{vdev.group_id}")
    k.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
    k.ioctl(container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    fd = k.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(vdev.name.encode()))
    return Opened(k, vdev, [container, group, fd], MigrationDevice(k, fd, name=vdev.name))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def h() -> Any:
    k = Kernel()
    opened = open_mtty(k)
    yield opened
    opened.close()
    k.check_invariants()
    assert not [f for f in k.open_files() if f.kind == "migration data fd"]


def test_probe_flags(h: Opened) -> None:
    """NOTES (real 7.3 mtty): flags 0x7."""
    assert h.mig.probe() == 0x7
    assert h.mig.has_precopy and h.mig.has_p2p


def test_probe_on_edu_is_none_and_flags_raises() -> None:
    """SEMANTICS 7.3: no mig_ops -> ENOTTY, which probe() turns into 'not migratable'."""
    k = Kernel()
    e = open_mtty(k, "edu")
    assert e.mig.probe() is None
    with pytest.raises(MigrationError, match="does not support migration"):
        e.mig.set_state(STOP)
    with pytest.raises(OSError) as err:
        e.mig.data_size()
    assert err.value.errno == errno.ENOTTY
    e.close()


def test_data_size_one_and_two_ports() -> None:
    """SEMANTICS 8: MIG_DATA_SIZE = 24 + 36 per port."""
    k = Kernel()
    assert open_mtty(k).mig.data_size() == MTTY_ONE_PORT
    assert open_mtty(k, nr_ports=2).mig.data_size() == 96


def test_precopy_session_fd_reused_into_stop_copy(h: Opened) -> None:
    """SEMANTICS 7.1/8: RUNNING -> PRE_COPY returns the fd; PRE_COPY -> STOP_COPY returns none, same fd."""
    base = fd_count()
    data = h.mig.set_state(PRE_COPY)
    assert isinstance(data, DataFd) and h.mig.data is data
    assert fd_count() == base + 1
    info = h.mig.precopy_info()
    assert (info.initial_bytes, info.dirty_bytes) == (MTTY_HEADER, 0)
    assert len(h.mig.read_available()) == MTTY_HEADER
    assert h.mig.read_available() == b""  # mtty's temporary end is a 0-byte read
    assert h.mig.set_state(STOP_COPY) is None
    assert h.mig.data is data and fd_count() == base + 1
    assert len(h.mig.read_available(chunk=7)) == MTTY_ONE_PORT - MTTY_HEADER
    assert h.mig.set_state(STOP) is None  # ends the session: our fd is closed
    assert h.mig.data is None and data.closed and fd_count() == base


def test_stop_copy_without_precopy_whole_state(h: Opened) -> None:
    h.mig.set_state(STOP)
    data = h.mig.set_state(STOP_COPY)
    assert data is not None
    blob = h.mig.read_available()
    assert len(blob) == MTTY_ONE_PORT and int.from_bytes(blob[:8], "little") == 0x7E9D09898C3E2C4E


def test_leaving_precopy_closes_session(h: Opened) -> None:
    data = h.mig.set_state(PRE_COPY)
    assert data is not None
    h.mig.set_state(RUNNING)
    assert data.closed and h.mig.data is None


def test_p2p_moves_keep_session(h: Opened) -> None:
    data = h.mig.set_state(PRE_COPY)
    assert h.mig.set_state(PRE_COPY_P2P) is None and h.mig.data is data
    assert h.mig.set_state(PRE_COPY) is None and h.mig.data is data and not data.closed


def test_impossible_request_refused_before_ioctl(h: Opened) -> None:
    """STOP_COPY -> PRE_COPY is planned as EINVAL: no ioctl, the device and session untouched."""
    h.mig.set_state(STOP_COPY)
    arcs_before = list(h.vdev.ops.pci.mig_ops.arcs)
    with pytest.raises(MigrationPlanError):
        h.mig.set_state(PRE_COPY)
    assert h.vdev.ops.pci.mig_ops.arcs == arcs_before
    assert h.mig.state == STOP_COPY and h.mig.data is not None


def test_precopy_info_outside_precopy_einval(h: Opened) -> None:
    h.mig.set_state(STOP_COPY)
    with pytest.raises(OSError) as e:
        h.mig.precopy_info()
    assert e.value.errno == errno.EINVAL


def test_precopy_info_without_session(h: Opened) -> None:
    with pytest.raises(MigrationError, match="no migration data session"):
        h.mig.precopy_info()


def test_precopy_info_v2_opt_in(h: Opened) -> None:
    """Linux 7.3: after the opt-in the flags are an output (mtty reports no REINIT)."""
    assert h.mig.enable_precopy_info_v2()
    h.mig.set_state(PRE_COPY)
    info = h.mig.precopy_info()
    assert info.flags_valid and not info.reinit


def test_precopy_info_v2_without_precopy_device() -> None:
    """A device without PRE_COPY answers EINVAL: the opt-in reports False instead of raising."""
    k = Kernel()
    o = open_mtty(k, migration_flags=uv.VFIO_MIGRATION_STOP_COPY)
    assert o.mig.enable_precopy_info_v2() is False
    o.close()


@pytest.mark.parametrize("recover_fails", [False, True])
def test_failure_returns_device_to_running(h: Opened, recover_fails: bool) -> None:
    """A failing arc: the session is dropped and the device ends RUNNING (by reset if recovery fails too)."""
    mig_ops = h.vdev.ops.pci.mig_ops
    data = h.mig.set_state(PRE_COPY)
    mig_ops.fail_arcs[(PRE_COPY_P2P, STOP_COPY)] = (errno.EIO, True)  # driver drops into ERROR
    with pytest.raises(OSError) as e:
        h.mig.set_state(STOP_COPY)
    assert e.value.errno == errno.EIO
    assert h.mig.state == RUNNING and h.mig.data is None and data is not None and data.closed


def test_resume_round_trip_and_bad_stream(h: Opened) -> None:
    """Destination: RESUMING takes the bytes; a short stream fails RESUMING -> STOP (EINVAL), device RUNNING."""
    k = h.k
    src = open_mtty(k)
    src.k.pwrite(src.fds[2], b"\x42", 7)  # SCR
    src.mig.set_state(STOP_COPY)
    blob = src.mig.read_available()
    src.close()
    data = h.mig.set_state(RESUMING)
    assert data is not None and data.writable
    h.mig.write_data(blob[:30])
    with pytest.raises(OSError) as e:
        h.mig.set_state(RUNNING)
    assert e.value.errno == errno.EINVAL
    assert h.mig.state == RUNNING and h.mig.data is None
    h.mig.set_state(RESUMING)
    h.mig.write_data(blob)
    h.mig.set_state(RUNNING)
    assert k.pread(h.fds[2], 1, 7) == b"\x42"


def test_resume_bad_header_efault(h: Opened) -> None:
    """SEMANTICS 8: a bad magic fails the write that completes the header with EFAULT."""
    h.mig.set_state(RESUMING)
    with pytest.raises(OSError) as e:
        h.mig.write_data(b"\x00" * MTTY_ONE_PORT)
    assert e.value.errno == errno.EFAULT
    h.mig.abort()
    assert h.mig.state == RUNNING and h.mig.data is None


class EnomsgKernel:
    """A kernel whose data fds end pre-copy data with ENOMSG (the uapi way; mlx5) instead of 0."""

    def __init__(self, inner: Kernel) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, fd: int, size: int) -> bytes:
        out = self.inner.read(fd, size)
        if not out:
            raise OSError(errno.ENOMSG, os.strerror(errno.ENOMSG))
        return out


def test_enomsg_is_end_of_available_data() -> None:
    k = Kernel()
    o = open_mtty(k)
    mig = MigrationDevice(EnomsgKernel(k), o.fds[2])
    mig.set_state(PRE_COPY)
    assert len(mig.read_available()) == MTTY_HEADER
    assert mig.read_available() == b""
    mig.close()
    o.close()


def test_other_read_errors_propagate(h: Opened) -> None:
    """A session ended behind our back (raw SET): the fd reads ENODEV (mtty) and DataFd does not hide it."""
    data = h.mig.set_state(PRE_COPY)
    assert data is not None
    h.mig._set(RUNNING)  # bypasses the bookkeeping that would close our fd
    with pytest.raises(OSError) as e:
        data.read(8)
    assert e.value.errno == errno.ENODEV
    with pytest.raises(OSError) as e:
        h.mig.read_available()
    assert e.value.errno == errno.ENODEV


class StrayFdKernel(EnomsgKernel):
    """Returns a data fd on every SET, even where no session opens: the 'data_fd out of sync' case."""

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        ret = self.inner.ioctl(fd, request, arg)
        if request == uv.VFIO_DEVICE_FEATURE and arg.flags & uv.VFIO_DEVICE_FEATURE_SET and \
                arg.flags & 0xFFFF == uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
            off = ctypes.sizeof(uv.vfio_device_feature) + 4
            stray = ctypes.c_int32.from_address(ctypes.addressof(arg) + off)
            if stray.value < 0:
                stray.value = os.open("/dev/null", os.O_RDONLY)
        return ret

    def close(self, fd: int) -> None:
        try:
            self.inner.close(fd)
        except OSError:
            os.close(fd)


def test_data_fd_out_of_sync_refused_and_recovered() -> None:
    k = Kernel()
    o = open_mtty(k)
    base = fd_count()
    mig = MigrationDevice(StrayFdKernel(k), o.fds[2])
    with pytest.raises(MigrationError, match="out of sync"):
        mig.set_state(STOP)
    assert mig.state == RUNNING and fd_count() == base
    o.close()


def test_abort_from_every_state_ends_running(h: Opened) -> None:
    for target in (STOP, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P):
        h.mig.set_state(target)
        h.mig.abort()
        assert h.mig.state == RUNNING and h.mig.data is None


def test_context_manager_closes_session() -> None:
    k = Kernel()
    o = open_mtty(k)
    base = fd_count()
    with MigrationDevice(k, o.fds[2]) as mig:
        mig.set_state(PRE_COPY)
        assert fd_count() == base + 1
    assert fd_count() == base
    assert "flags=0x7" in repr(mig)
    o.close()


def test_over_object_layer_device() -> None:
    """MigrationDevice.from_device over pyvfio.container's Device: same fd, same kernel, works end to end."""
    from pyvfio.container import Container
    k = Kernel()
    vdev = k.add_device("mtty")
    with Container(k) as c:
        grp = c.group(int(vdev.group_id))
        dev = grp.device(vdev.name)
        with MigrationDevice.from_device(dev) as mig:
            assert mig.probe() == 0x7
            mig.set_state(PRE_COPY)
            assert len(mig.read_available()) == MTTY_HEADER
            mig.set_state(RUNNING)
            assert mig.data is None
    assert not [f for f in k.open_files() if f.kind == "migration data fd"]
