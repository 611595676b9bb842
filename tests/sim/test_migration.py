"""Migration v2 through the syscall surface of the simulated kernel, on the mtty-like device.

Rules: SEMANTICS 7.1-7.3 (features, the data fd, PRECOPY_INFO, DMA logging)
and 8 (mtty), with the real-kernel facts of ``vm/NOTES.md`` (flags 0x7, 24
bytes of PRE_COPY data, 60 bytes per one-port device, STOP_COPY reusing the
PRE_COPY fd, STOP -> RESUMING -> STOP -> RUNNING on the destination).
Tests drive only ``Kernel`` + uapi structs; model internals are touched for
leak/invariant checks, for fault injection (``fail_arcs``, mtty never fails
on its own) and to make the device DMA (``VfioDevice.dma_write``), as mtty
has no DMA engine.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any, Iterator, Optional

import pytest

from pyvfio.sim import Kernel
from pyvfio.uapi import vfio as uv
from pyvfio.uapi.struct import alloc_flex

S = uv.VFIO_DEVICE_STATE_STOP
R = uv.VFIO_DEVICE_STATE_RUNNING
SC = uv.VFIO_DEVICE_STATE_STOP_COPY
RS = uv.VFIO_DEVICE_STATE_RESUMING
RP = uv.VFIO_DEVICE_STATE_RUNNING_P2P
PC = uv.VFIO_DEVICE_STATE_PRE_COPY
PP = uv.VFIO_DEVICE_STATE_PRE_COPY_P2P
ERR = uv.VFIO_DEVICE_STATE_ERROR
GET, SET, PROBE = uv.VFIO_DEVICE_FEATURE_GET, uv.VFIO_DEVICE_FEATURE_SET, uv.VFIO_DEVICE_FEATURE_PROBE
MIGRATION = uv.VFIO_DEVICE_FEATURE_MIGRATION
MIG_STATE = uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
DATA_SIZE = uv.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
PRECOPY_V2 = uv.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
LOG_START = uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_START
LOG_STOP = uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
LOG_REPORT = uv.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT
NONCANONICAL = 0x8000_0000_0000_0000
MTTY_MAGIC = 0x7E9D09898C3E2C4E
HEADER = struct.Struct("<QIIII")


def raises(exc_errno: int, fn: Any, *args: Any, **kwargs: Any) -> OSError:
    with pytest.raises(OSError) as e:
        fn(*args, **kwargs)
    assert e.value.errno == exc_errno, f"expected {errno.errorcode[exc_errno]}, got {e.value!r}"
    return e.value


class Dev:
    """A device opened through the group path (container + type1v2), plus feature helpers."""

    def __init__(self, k: Kernel, kind: str = "mtty", **options: Any) -> None:
        self.k = k
        self.vdev = k.add_device(kind, **options)
        self.container = k.open("/dev/vfio/vfio")
        self.group = k.open(f"/dev/vfio/{self.vdev.group_id}")
        k.ioctl(self.group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        k.ioctl(self.container, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
        self.fd = k.ioctl(self.group, uv.VFIO_GROUP_GET_DEVICE_FD,
                          ctypes.create_string_buffer(self.vdev.name.encode()))

    @property
    def mig(self) -> Any:
        return self.vdev.ops.pci.mig_ops

    def close(self) -> None:
        for fd in (self.fd, self.group, self.container):
            self.k.close(fd)

    def feature(self, flags: int, payload: Optional[ctypes.Structure] = None, argsz: Optional[int] = None) -> int:
        """VFIO_DEVICE_FEATURE with ``payload`` in data[]; the payload is updated from what the kernel wrote."""
        n = ctypes.sizeof(payload) if payload is not None else 0
        arg = alloc_flex(uv.vfio_device_feature, n, flags=flags)
        if payload is not None:
            ctypes.memmove(ctypes.addressof(arg) + 8, ctypes.addressof(payload), n)
        if argsz is not None:
            arg.argsz = argsz
        try:
            return self.k.ioctl(self.fd, uv.VFIO_DEVICE_FEATURE, arg)
        finally:
            if payload is not None:
                ctypes.memmove(ctypes.addressof(payload), ctypes.addressof(arg) + 8, n)

    def get_state(self) -> int:
        st = uv.vfio_device_feature_mig_state(device_state=0xAA, data_fd=1234)
        self.feature(GET | MIG_STATE, st)
        assert st.data_fd == -1
        return int(st.device_state)

    def set_state(self, state: int) -> int:
        st = uv.vfio_device_feature_mig_state(device_state=state, data_fd=1234)
        try:
            self.feature(SET | MIG_STATE, st)
        finally:
            self.last_data_fd = st.data_fd
        return int(st.data_fd)

    def precopy_info(self, data_fd: int, flags: int = 0, argsz: int = 24) -> uv.vfio_precopy_info:
        info = uv.vfio_precopy_info(argsz=argsz, flags=flags)
        self.k.ioctl(data_fd, uv.VFIO_MIG_GET_PRECOPY_INFO, info)
        return info

    def uart_write(self, reg: int, value: int, port: int = 0) -> None:
        self.k.pwrite(self.fd, bytes([value]), (port << 40) + reg)

    def uart_read(self, reg: int, port: int = 0) -> int:
        return self.k.pread(self.fd, 1, (port << 40) + reg)[0]


class CdevDev(Dev):
    """A device opened through its cdev and bound to an iommufd (no IOAS needed for migration)."""

    def __init__(self, k: Kernel, iommufd: int, kind: str = "mtty", **options: Any) -> None:
        self.k = k
        self.vdev = k.add_device(kind, **options)
        self.fd = k.open(self.vdev.cdev)
        bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=iommufd)
        k.ioctl(self.fd, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)

    def close(self) -> None:
        self.k.close(self.fd)


@pytest.fixture
def k() -> Iterator[Kernel]:
    kernel = Kernel()
    yield kernel
    kernel.check_invariants()


@pytest.fixture
def dev(k: Kernel) -> Iterator[Dev]:
    d = Dev(k)
    yield d


def migration_fds(k: Kernel) -> list[Any]:
    return [f for f in k.open_files() if f.kind == "migration data fd"]


def read_all(k: Kernel, fd: int, chunk: int = 7) -> bytes:
    out = b""
    while True:
        part = k.read(fd, chunk)
        if not part:
            return out
        out += part


def stir_uart(d: Dev) -> None:
    """Put recognisable state in port 0: scratch, line control, divisor, IER and three queued bytes."""
    d.uart_write(7, 0x5A)             # SCR
    d.uart_write(3, 0x80)             # LCR.DLAB
    d.uart_write(0, 0x0C)             # divisor low
    d.uart_write(1, 0x00)             # divisor high
    d.uart_write(3, 0x03)             # 8N1, DLAB off
    d.uart_write(2, 0x07)             # FCR: enable + clear FIFOs
    for ch in b"abc":
        d.uart_write(0, ch)           # TX loops back into RX
    d.uart_write(4, 0x0B)             # MCR: DTR|RTS|OUT2


# --- VFIO_DEVICE_FEATURE_MIGRATION / MIG_DATA_SIZE --------------------------------------------------

def test_migration_flags_stop_copy_p2p_pre_copy(dev: Dev) -> None:
    """NOTES (real 7.3 mtty): MIGRATION GET flags = STOP_COPY|P2P|PRE_COPY = 0x7 (SEMANTICS 7.1, 8)."""
    mig = uv.vfio_device_feature_migration(flags=0xFFFF)
    assert dev.feature(GET | MIGRATION, mig) == 0
    assert mig.flags == 0x7


def test_migration_probe(dev: Dev) -> None:
    """SEMANTICS 3 vfio_check_feature: PROBE|GET succeeds without a payload; PROBE|SET is EINVAL (GET only)."""
    assert dev.feature(PROBE | GET | MIGRATION) == 0
    raises(errno.EINVAL, dev.feature, PROBE | SET | MIGRATION)


def test_migration_set_einval(dev: Dev) -> None:
    """SEMANTICS 7.1: MIGRATION is GET only -> SET is EINVAL."""
    raises(errno.EINVAL, dev.feature, SET | MIGRATION, uv.vfio_device_feature_migration())


def test_migration_short_argsz_einval(dev: Dev) -> None:
    """SEMANTICS 3: argsz - 8 < sizeof(payload) -> EINVAL; the payload stays untouched."""
    mig = uv.vfio_device_feature_migration(flags=0x1234)
    raises(errno.EINVAL, dev.feature, GET | MIGRATION, mig, 12)
    assert mig.flags == 0x1234


def test_migration_no_direction_einval(dev: Dev) -> None:
    """SEMANTICS 3: neither GET, SET nor PROBE -> EINVAL."""
    raises(errno.EINVAL, dev.feature, MIGRATION, uv.vfio_device_feature_migration())


def test_migration_get_and_set_einval(dev: Dev) -> None:
    """SEMANTICS 3: GET|SET without PROBE -> EINVAL."""
    raises(errno.EINVAL, dev.feature, GET | SET | MIGRATION, uv.vfio_device_feature_migration())


@pytest.mark.parametrize("nr_ports,size", [(1, 60), (2, 96)])
def test_mig_data_size(k: Kernel, nr_ports: int, size: int) -> None:
    """NOTES/SEMANTICS 8: MIG_DATA_SIZE = 24-byte header + 36 bytes per port (60 for one port)."""
    d = Dev(k, nr_ports=nr_ports)
    ds = uv.vfio_device_feature_mig_data_size()
    d.feature(GET | DATA_SIZE, ds)
    assert ds.stop_copy_length == size


def test_mig_data_size_set_einval(dev: Dev) -> None:
    """SEMANTICS 7.3: MIG_DATA_SIZE is GET only."""
    raises(errno.EINVAL, dev.feature, SET | DATA_SIZE, uv.vfio_device_feature_mig_data_size())


def test_mig_data_size_short_argsz_einval(dev: Dev) -> None:
    """SEMANTICS 3: an argsz leaving less than the 8-byte payload -> EINVAL."""
    raises(errno.EINVAL, dev.feature, GET | DATA_SIZE, uv.vfio_device_feature_mig_data_size(), 15)


@pytest.mark.parametrize("feature", [MIGRATION, MIG_STATE, DATA_SIZE, LOG_START, LOG_STOP, LOG_REPORT])
def test_features_on_edu_enotty(k: Kernel, feature: int) -> None:
    """SEMANTICS 3: no mig_ops/log_ops (edu) -> ENOTTY for every migration and logging feature, even PROBE."""
    d = Dev(k, "edu")
    raises(errno.ENOTTY, d.feature, PROBE | GET | SET | feature)


def test_precopy_info_v2_on_edu_einval(k: Kernel) -> None:
    """Linux 7.3 MIG_PRECOPY_INFOv2: no PRE_COPY support -> EINVAL, checked before the PROBE."""
    d = Dev(k, "edu")
    raises(errno.EINVAL, d.feature, PROBE | SET | PRECOPY_V2)
    raises(errno.EINVAL, d.feature, SET | PRECOPY_V2)


# --- VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE ---------------------------------------------------------

def test_get_state_running_data_fd_minus_one(dev: Dev) -> None:
    """SEMANTICS 7.3: GET returns the current state (RUNNING after probe) and data_fd -1."""
    assert dev.get_state() == R


def test_mig_state_short_argsz_einval(dev: Dev) -> None:
    """SEMANTICS 7.3: minsz is 8 bytes of payload."""
    raises(errno.EINVAL, dev.feature, SET | MIG_STATE, uv.vfio_device_feature_mig_state(device_state=S), 12)
    assert dev.get_state() == R


def test_mig_state_probe_get_set(dev: Dev) -> None:
    """SEMANTICS 3: MIG_DEVICE_STATE supports GET and SET: PROBE|GET|SET succeeds and changes nothing."""
    assert dev.feature(PROBE | GET | SET | MIG_STATE) == 0
    assert dev.get_state() == R


def test_set_error_einval_data_fd_written(dev: Dev) -> None:
    """SEMANTICS 7.1: ERROR cannot be requested -> EINVAL; data_fd is written back as -1 anyway."""
    raises(errno.EINVAL, dev.set_state, ERR)
    assert dev.last_data_fd == -1
    assert dev.get_state() == R


@pytest.mark.parametrize("bad", [8, 100, 0xFFFFFFFF])
def test_set_out_of_range_state_einval(dev: Dev, bad: int) -> None:
    """SEMANTICS 7.2: a state value >= VFIO_DEVICE_STATE_NR -> EINVAL, state unchanged."""
    raises(errno.EINVAL, dev.set_state, bad)
    assert dev.get_state() == R


def test_set_current_state_is_noop(dev: Dev) -> None:
    """SEMANTICS 7.3: SET to the current state succeeds with data_fd -1 and no arc."""
    before = list(dev.mig.arcs)
    assert dev.set_state(R) == -1
    assert dev.mig.arcs == before


@pytest.mark.parametrize("target", [PC, PP])
def test_stop_copy_to_pre_copy_einval(k: Kernel, dev: Dev, target: int) -> None:
    """Pitfall 7 / uapi: STOP_COPY -> PRE_COPY* is not permitted; the session and its fd are untouched."""
    dev.set_state(S)
    fd = dev.set_state(SC)
    raises(errno.EINVAL, dev.set_state, target)
    assert dev.get_state() == SC
    assert len(read_all(k, fd)) == 60
    k.close(fd)


@pytest.mark.parametrize("flags,target", [(1, RP), (1, PC), (1, PP), (3, PC), (3, PP), (5, RP), (5, PP)])
def test_unsupported_optional_state_einval(k: Kernel, flags: int, target: int) -> None:
    """SEMANTICS 7.1: optional states a device lacks cannot be requested (EINVAL), state unchanged."""
    d = Dev(k, migration_flags=flags)
    mig = uv.vfio_device_feature_migration()
    d.feature(GET | MIGRATION, mig)
    assert mig.flags == flags
    raises(errno.EINVAL, d.set_state, target)
    assert d.get_state() == R


def test_skipped_states_driver_sees_direct_arcs(k: Kernel) -> None:
    """SEMANTICS 7.2: without P2P the driver sees RUNNING -> STOP and STOP -> RUNNING directly."""
    d = Dev(k, migration_flags=uv.VFIO_MIGRATION_STOP_COPY)
    assert d.set_state(S) == -1
    assert d.set_state(R) == -1
    assert d.mig.arcs == [(R, S), (S, R)]


def test_full_device_walks_through_p2p(dev: Dev) -> None:
    """SEMANTICS 7.2: with P2P, RUNNING -> STOP is two arcs (RUNNING_P2P in between), invisible to the user."""
    assert dev.set_state(S) == -1
    assert dev.mig.arcs == [(R, RP), (RP, S)]
    assert dev.get_state() == S


# --- the data fd --------------------------------------------------------------------------------------

def test_precopy_session_header_then_stop_copy_reuses_fd(k: Kernel, dev: Dev) -> None:
    """NOTES: PRE_COPY initial_bytes 24; STOP_COPY reuses the PRE_COPY data fd (-1); 60 bytes in all."""
    fd = dev.set_state(PC)
    assert fd >= 0
    info = dev.precopy_info(fd)
    assert (info.initial_bytes, info.dirty_bytes) == (24, 0)
    header = read_all(k, fd)
    assert HEADER.unpack(header) == (MTTY_MAGIC, 1, 0, 1, 0)
    assert dev.precopy_info(fd).initial_bytes == 0
    assert dev.set_state(SC) == -1
    rest = read_all(k, fd)
    assert len(header) + len(rest) == 60
    assert k.read(fd, 100) == b""  # permanent end of stream
    k.close(fd)


def test_stop_to_stop_copy_new_fd_with_whole_state(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.1/8: STOP -> STOP_COPY opens a new session holding header and ports (60 bytes)."""
    dev.set_state(S)
    fd = dev.set_state(SC)
    assert fd >= 0
    data = read_all(k, fd, 1000)
    assert len(data) == 60 and HEADER.unpack(data[:24])[0] == MTTY_MAGIC
    k.close(fd)


def test_read_at_precopy_end_returns_zero_not_enomsg(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 8: mtty returns 0 at the temporary end of the PRE_COPY stream (no ENOMSG)."""
    fd = dev.set_state(PC)
    k.read(fd, 24)
    assert k.read(fd, 24) == b""
    k.close(fd)


def test_precopy_fd_pread_espipe(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: the data fd is a stream: pread -> ESPIPE."""
    fd = dev.set_state(PC)
    raises(errno.ESPIPE, k.pread, fd, 4, 0)
    k.close(fd)


def test_resume_fd_pwrite_espipe(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: the resuming fd is a stream too: pwrite -> ESPIPE."""
    dev.set_state(S)
    fd = dev.set_state(RS)
    raises(errno.ESPIPE, k.pwrite, fd, b"x", 0)
    k.close(fd)


def test_save_fd_write_ebadf(k: Kernel, dev: Dev) -> None:
    """mtty opens the saving file O_RDONLY: write -> EBADF."""
    fd = dev.set_state(PC)
    raises(errno.EBADF, k.write, fd, b"x")
    k.close(fd)


def test_resume_fd_read_ebadf(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: the resuming fd is write-only: read -> EBADF."""
    dev.set_state(S)
    fd = dev.set_state(RS)
    raises(errno.EBADF, k.read, fd, 4)
    k.close(fd)


def test_read_after_session_end_enodev(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.1: leaving the saving group disables the file: later read -> ENODEV (fd stays open)."""
    fd = dev.set_state(PC)
    dev.set_state(R)
    raises(errno.ENODEV, k.read, fd, 4)
    assert dev.mig.saving_migf is None
    k.close(fd)


def test_precopy_info_short_argsz_einval(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: argsz < 24 -> EINVAL."""
    fd = dev.set_state(PC)
    raises(errno.EINVAL, dev.precopy_info, fd, 0, 16)
    k.close(fd)


def test_precopy_info_outside_pre_copy_einval(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: PRECOPY_INFO only in PRE_COPY/PRE_COPY_P2P: in STOP_COPY -> EINVAL."""
    fd = dev.set_state(PC)
    dev.set_state(PP)
    assert dev.precopy_info(fd).initial_bytes == 24  # PRE_COPY_P2P is fine
    dev.set_state(SC)
    raises(errno.EINVAL, dev.precopy_info, fd)
    k.close(fd)


def test_precopy_info_on_stale_fd_enodev(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 8: a disabled (old-session) fd in PRE_COPY -> ENODEV."""
    old = dev.set_state(PC)
    dev.set_state(R)
    new = dev.set_state(PC)
    raises(errno.ENODEV, dev.precopy_info, old)
    assert dev.precopy_info(new).initial_bytes == 24
    k.close(old)
    k.close(new)


def test_data_fd_other_ioctl_enotty(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.3: any other ioctl on the data fd -> ENOTTY."""
    fd = dev.set_state(PC)
    raises(errno.ENOTTY, k.ioctl, fd, uv.VFIO_DEVICE_GET_INFO, uv.vfio_device_info(argsz=24))
    k.close(fd)


def test_resume_fd_precopy_info_enotty(k: Kernel, dev: Dev) -> None:
    """mtty's resuming file has no ioctl at all: PRECOPY_INFO -> ENOTTY."""
    dev.set_state(S)
    fd = dev.set_state(RS)
    raises(errno.ENOTTY, dev.precopy_info, fd)
    k.close(fd)


def test_precopy_flags_echoed_without_opt_in(k: Kernel, dev: Dev) -> None:
    """uapi 7.3: without MIG_PRECOPY_INFOv2 the flags field is not an output: the caller's bits come back."""
    fd = dev.set_state(PC)
    assert dev.precopy_info(fd, flags=0xDEAD).flags == 0xDEAD
    k.close(fd)


def test_precopy_info_v2_opt_in_clears_flags(k: Kernel, dev: Dev) -> None:
    """uapi 7.3: after SET MIG_PRECOPY_INFOv2 flags is an output (0 here: mtty never reports REINIT)."""
    assert dev.feature(PROBE | SET | PRECOPY_V2) == 0
    assert dev.feature(SET | PRECOPY_V2) == 0
    fd = dev.set_state(PC)
    info = dev.precopy_info(fd, flags=0xDEAD)
    assert info.flags == 0 and info.initial_bytes == 24
    k.close(fd)


def test_precopy_info_v2_get_einval(dev: Dev) -> None:
    """uapi 7.3: MIG_PRECOPY_INFOv2 is SET only: GET -> EINVAL."""
    raises(errno.EINVAL, dev.feature, GET | PRECOPY_V2)


def test_precopy_info_v2_dropped_on_last_close(k: Kernel, dev: Dev) -> None:
    """Linux 7.3 vfio_df_device_last_close: the opt-in belongs to the open device and ends with it, so
    after a close and reopen the caller's flags are echoed again."""
    dev.feature(SET | PRECOPY_V2)
    second = k.ioctl(dev.group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(dev.vdev.name.encode()))
    k.close(second)  # not the last close: the opt-in stays
    fd = dev.set_state(PC)
    assert dev.precopy_info(fd, flags=0xBEEF).flags == 0
    k.close(fd)
    k.close(dev.fd)  # last close
    dev.fd = k.ioctl(dev.group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(dev.vdev.name.encode()))
    fd = dev.set_state(PC)
    assert dev.precopy_info(fd, flags=0xBEEF).flags == 0xBEEF
    k.close(fd)


def test_resume_write_too_long_enomem(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 8: writing past the device's state size (60) -> ENOMEM, nothing taken."""
    dev.set_state(S)
    fd = dev.set_state(RS)
    raises(errno.ENOMEM, k.write, fd, bytes(61))
    assert dev.mig.resuming_migf.filled == 0
    k.close(fd)


@pytest.mark.parametrize("field,value", [(0, 0x1234), (1, 2), (2, 1), (3, 2), (4, 1)],
                         ids=["magic", "major", "minor", "nr_ports", "flags"])
def test_resume_bad_header_efault(k: Kernel, dev: Dev, field: int, value: int) -> None:
    """SEMANTICS 8: a header failing mtty's check (magic, version, port count, flags) -> EFAULT on the
    write completing it; the bytes still count."""
    good = [MTTY_MAGIC, 1, 0, 1, 0]
    good[field] = value
    dev.set_state(S)
    fd = dev.set_state(RS)
    k.write(fd, HEADER.pack(*good)[:10])
    raises(errno.EFAULT, k.write, fd, HEADER.pack(*good)[10:])
    assert dev.mig.resuming_migf.filled == 24
    k.close(fd)


def test_resume_short_stream_einval_on_stop(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.1/8: RESUMING -> STOP with less than the whole state -> EINVAL; the device stays RESUMING
    and the rest can still be written."""
    src = Dev(k)
    src.set_state(S)
    sfd = src.set_state(SC)
    stream = read_all(k, sfd)
    dev.set_state(S)
    fd = dev.set_state(RS)
    k.write(fd, stream[:59])
    raises(errno.EINVAL, dev.set_state, S)
    assert dev.last_data_fd == -1
    assert dev.get_state() == RS
    k.write(fd, stream[59:])
    assert dev.set_state(S) == -1
    raises(errno.ENODEV, k.write, fd, b"x")
    for f in (fd, sfd):
        k.close(f)


def test_resume_after_bad_header_still_loads(k: Kernel, dev: Dev) -> None:
    """mtty quirk: RESUMING -> STOP checks only the length, so a stream whose header write got EFAULT loads."""
    dev.set_state(S)
    fd = dev.set_state(RS)
    raises(errno.EFAULT, k.write, fd, HEADER.pack(0, 1, 0, 1, 0) + bytes(36))
    assert dev.set_state(S) == -1
    k.close(fd)


# --- a whole migration ---------------------------------------------------------------------------

@pytest.mark.parametrize("nr_ports", [1, 2])
def test_round_trip_source_to_destination(k: Kernel, nr_ports: int) -> None:
    """SEMANTICS 7.1/7.3/8 and NOTES: PRE_COPY (header), STOP_COPY on the same fd, then the destination
    STOP -> RESUMING (stream written in odd pieces) -> STOP -> RUNNING holds the same UART state."""
    src, dst = Dev(k, nr_ports=nr_ports), Dev(k, nr_ports=nr_ports)
    stir_uart(src)
    if nr_ports == 2:
        src.uart_write(7, 0x77, port=1)
    fd = src.set_state(PC)
    stream = read_all(k, fd, 5)
    assert len(stream) == 24
    src.uart_write(0, ord("d"))  # the device keeps running during pre-copy; STOP_COPY sees this
    assert src.set_state(PP) == -1
    assert src.set_state(SC) == -1
    stream += read_all(k, fd, 11)
    size = uv.vfio_device_feature_mig_data_size()
    src.feature(GET | DATA_SIZE, size)
    assert len(stream) == size.stop_copy_length == 24 + 36 * nr_ports
    assert src.set_state(S) == -1
    raises(errno.ENODEV, k.read, fd, 1)
    k.close(fd)

    assert dst.set_state(S) == -1
    wfd = dst.set_state(RS)
    assert wfd >= 0
    for piece in (stream[:1], stream[1:24], stream[24:30], stream[30:]):
        assert k.write(wfd, piece) == len(piece)
    assert dst.set_state(S) == -1
    assert dst.set_state(R) == -1
    k.close(wfd)

    assert dst.vdev.ops.pci.save_ports() == src.vdev.ops.pci.save_ports()
    assert dst.uart_read(7) == 0x5A
    assert dst.uart_read(3) == 0x03
    assert [dst.uart_read(0) for _ in range(4)] == list(b"abcd")
    if nr_ports == 2:
        assert dst.uart_read(7, port=1) == 0x77
    assert not migration_fds(k)


def test_round_trip_over_cdev_and_iommufd(k: Kernel) -> None:
    """SEMANTICS 2.4/7: the same migration works on devices opened through their cdevs (iommufd bound),
    and the data fds outlive nothing: closing everything leaves no file open."""
    ictx = k.open("/dev/iommu")
    src, dst = CdevDev(k, ictx), CdevDev(k, ictx)
    src.uart_write(7, 0x42)
    src.set_state(S)
    fd = src.set_state(SC)
    stream = read_all(k, fd)
    assert len(stream) == 60
    dst.set_state(S)
    wfd = dst.set_state(RS)
    k.write(wfd, stream)
    dst.set_state(R)
    assert dst.uart_read(7) == 0x42
    for f in (fd, wfd):
        k.close(f)
    src.close()
    dst.close()
    k.close(ictx)
    assert not k.open_files()


def test_stream_is_deterministic_and_counts(k: Kernel) -> None:
    """SEMANTICS 8: the saved ports are mtty's struct serial_port (36 bytes, C layout)."""
    d = Dev(k)
    d.uart_write(7, 0xA5)
    d.set_state(S)
    fd = d.set_state(SC)
    data = read_all(k, fd)
    port = data[24:]
    assert port[7] == 0xA5          # uart_reg[UART_SCR]
    assert port[33] == 16           # max_fifo_size, after the u16 divisor at offset 30
    k.close(fd)


# --- reset and ERROR -------------------------------------------------------------------------------

def test_reset_returns_fsm_to_running_and_ends_session(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 3/8: VFIO_DEVICE_RESET puts the FSM back to RUNNING and disables the data files."""
    dev.set_state(S)
    fd = dev.set_state(SC)
    k.ioctl(dev.fd, uv.VFIO_DEVICE_RESET)
    assert dev.get_state() == R
    raises(errno.ENODEV, k.read, fd, 1)
    k.close(fd)


def test_error_state_rules(k: Kernel, dev: Dev) -> None:
    """SEMANTICS 7.1/7.3: an arc failing into ERROR: GET says ERROR, every SET is EINVAL except ERROR
    itself (a no-op), and only VFIO_DEVICE_RESET recovers to RUNNING."""
    dev.mig.fail_arcs[(RP, S)] = (errno.EIO, True)
    raises(errno.EIO, dev.set_state, S)
    assert dev.last_data_fd == -1
    assert dev.get_state() == ERR
    for target in (S, R, SC, RS, RP, PC, PP):
        raises(errno.EINVAL, dev.set_state, target)
    assert dev.set_state(ERR) == -1
    k.ioctl(dev.fd, uv.VFIO_DEVICE_RESET)
    assert dev.get_state() == R


def test_failing_arc_leaves_state_reached(dev: Dev) -> None:
    """SEMANTICS 7.3: on a failing combination transition the device is wherever the path stopped."""
    dev.mig.fail_arcs[(RP, S)] = (errno.EIO, False)
    raises(errno.EIO, dev.set_state, RS)
    assert dev.get_state() == RP


# --- DMA logging ---------------------------------------------------------------------------------------

def log_start(d: Dev, ranges: list[tuple[int, int]], page_size: int = 4096,
              ranges_ptr: Optional[int] = None, num: Optional[int] = None,
              flags: int = SET) -> uv.vfio_device_feature_dma_logging_control:
    arr = (uv.vfio_device_feature_dma_logging_range * max(1, len(ranges)))()
    for i, (iova, length) in enumerate(ranges):
        arr[i].iova, arr[i].length = iova, length
    ctl = uv.vfio_device_feature_dma_logging_control(
        page_size=page_size, num_ranges=len(ranges) if num is None else num,
        ranges=ctypes.addressof(arr) if ranges_ptr is None else ranges_ptr)
    d.feature(flags | LOG_START, ctl)
    return ctl


def log_report(d: Dev, iova: int, length: int, page_size: int = 4096,
               bitmap: Optional[Any] = None, bitmap_ptr: Optional[int] = None) -> list[int]:
    if bitmap is None:
        bitmap = (ctypes.c_uint64 * max(1, (length // max(page_size, 4096) + 63) // 64))()
    rep = uv.vfio_device_feature_dma_logging_report(
        iova=iova, length=length, page_size=page_size,
        bitmap=ctypes.addressof(bitmap) if bitmap_ptr is None else bitmap_ptr)
    d.feature(GET | LOG_REPORT, rep)
    return [b for b in range(64 * len(bitmap)) if bitmap[b // 64] >> (b % 64) & 1]


def test_log_start_zero_ranges_einval(dev: Dev) -> None:
    """SEMANTICS 7.3: num_ranges 0 -> EINVAL."""
    raises(errno.EINVAL, log_start, dev, [])


def test_log_start_too_many_ranges_e2big(dev: Dev) -> None:
    """SEMANTICS 7.3: more than PAGE_SIZE/16 = 256 ranges -> E2BIG (before reading them)."""
    raises(errno.E2BIG, log_start, dev, [(0, 4096)], num=257, ranges_ptr=NONCANONICAL)


def test_log_start_256_ranges_ok(dev: Dev) -> None:
    """SEMANTICS 7.3: exactly one page of ranges (256) is accepted."""
    log_start(dev, [(i * 8192, 4096) for i in range(256)])


def test_log_start_bad_ranges_pointer_efault(dev: Dev) -> None:
    """copy_from_user of the range array: an unmapped pointer -> EFAULT."""
    raises(errno.EFAULT, log_start, dev, [(0, 4096)], ranges_ptr=NONCANONICAL)


@pytest.mark.parametrize("rng", [(0x1800, 0x1000), (0x1000, 0x1800)], ids=["iova", "length"])
def test_log_start_unaligned_einval(dev: Dev, rng: tuple[int, int]) -> None:
    """SEMANTICS 7.3: iova or length not a multiple of page_size -> EINVAL."""
    raises(errno.EINVAL, log_start, dev, [rng])


def test_log_start_overflow_eoverflow(dev: Dev) -> None:
    """SEMANTICS 7.3: iova + length beyond 2^64 -> EOVERFLOW."""
    raises(errno.EOVERFLOW, log_start, dev, [(0xFFFF_FFFF_FFFF_F000, 0x2000)])


def test_log_start_overlap_einval(dev: Dev) -> None:
    """SEMANTICS 7.3: overlapping ranges -> EINVAL."""
    raises(errno.EINVAL, log_start, dev, [(0x0, 0x3000), (0x2000, 0x1000)])


def test_log_start_get_einval(dev: Dev) -> None:
    """SEMANTICS 3: DMA_LOGGING_START is SET only."""
    raises(errno.EINVAL, log_start, dev, [(0, 4096)], flags=GET)


def test_log_start_short_argsz_einval(dev: Dev) -> None:
    """SEMANTICS 3: the 24-byte control must fit in argsz."""
    ctl = uv.vfio_device_feature_dma_logging_control(page_size=4096, num_ranges=1)
    raises(errno.EINVAL, dev.feature, SET | LOG_START, ctl, 8 + 16)


def test_log_stop_get_einval(dev: Dev) -> None:
    """SEMANTICS 3: DMA_LOGGING_STOP is SET only."""
    raises(errno.EINVAL, dev.feature, GET | LOG_STOP)


@pytest.mark.parametrize("page_size", [0, 2048, 0x3000], ids=["zero", "2k", "not-pow2"])
def test_log_report_bad_page_size_einval(dev: Dev, page_size: int) -> None:
    """SEMANTICS 7.3: REPORT page_size below 4 KiB or not a power of two -> EINVAL."""
    raises(errno.EINVAL, log_report, dev, 0, 0x10000, page_size)


def test_log_report_overflow_eoverflow(dev: Dev) -> None:
    """SEMANTICS 7.3: REPORT iova + length beyond 2^64 -> EOVERFLOW."""
    raises(errno.EOVERFLOW, log_report, dev, 0xFFFF_FFFF_FFFF_0000, 0x20000)


def test_log_report_bad_bitmap_efault(dev: Dev) -> None:
    """iova_bitmap pins the user bitmap: unmapped -> EFAULT."""
    raises(errno.EFAULT, log_report, dev, 0, 0x10000, 4096, None, NONCANONICAL)


def test_log_report_zero_length_efault(dev: Dev) -> None:
    """iova_bitmap: length 0 wraps to a bitmap over all of IOVA space, walked until it faults -> EFAULT."""
    raises(errno.EFAULT, log_report, dev, 0, 0)


def test_mtty_stub_logging_accepts_everything(dev: Dev) -> None:
    """SEMANTICS 8: mtty's log ops are stubs: START twice, REPORT without START, STOP twice all succeed,
    the page size comes back as given and nothing is ever dirty."""
    assert log_report(dev, 0, 0x10000) == []
    ctl = log_start(dev, [(0, 0x10000)], page_size=0x2000)
    assert ctl.page_size == 0x2000
    log_start(dev, [(0, 0x10000)], page_size=0x2000)
    dev.feature(SET | LOG_STOP)
    dev.feature(SET | LOG_STOP)


def test_tracker_start_twice_einval(k: Kernel) -> None:
    """A hardware tracker (mlx5's rules): a second START without STOP -> EINVAL; after STOP it works."""
    d = Dev(k, dma_logging="tracker")
    log_start(d, [(0, 0x10000)])
    raises(errno.EINVAL, log_start, d, [(0, 0x10000)])
    d.feature(SET | LOG_STOP)
    log_start(d, [(0, 0x10000)])


def test_tracker_report_without_start_einval(k: Kernel) -> None:
    """mlx5's rules: REPORT while logging is off -> EINVAL (the header: 'an error will be returned')."""
    d = Dev(k, dma_logging="tracker")
    raises(errno.EINVAL, log_report, d, 0, 0x10000)
    d.feature(SET | LOG_STOP)  # STOP while stopped is fine


@pytest.mark.parametrize("hint,chosen", [(0x1000, 0x1000), (0x3000, 0x2000), (0x800, 0x1000), (1 << 40, 1 << 30)])
def test_tracker_page_size_written_back(k: Kernel, hint: int, chosen: int) -> None:
    """SEMANTICS 7.3: the driver may change page_size (power of two, 4 KiB..1 GiB), written back."""
    d = Dev(k, dma_logging="tracker")
    ctl = log_start(d, [(0, 1 << 40)], page_size=hint)
    assert ctl.page_size == chosen


def test_dma_writes_marked_and_reported(k: Kernel) -> None:
    """SEMANTICS 7.3: device DMA writes inside the logged ranges set bits (one per page, relative to the
    report's iova); REPORT only ORs into the user bitmap and clears what it reported."""
    d = Dev(k, dma_logging="tracker")
    buf = ctypes.create_string_buffer(16 * 4096 + 4096)
    base = (ctypes.addressof(buf) + 4095) & ~4095
    iova = 0x100000
    k.ioctl(d.container, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(
        argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE,
        vaddr=base, iova=iova, size=16 * 4096))
    log_start(d, [(iova, 8 * 4096)])
    d.vdev.dma_write(iova + 3 * 4096 + 100, b"x" * 10)
    d.vdev.dma_write(iova + 5 * 4096 - 2, b"yy" * 2)        # straddles pages 4 and 5
    d.vdev.dma_write(iova + 12 * 4096, b"z")               # outside the logged range
    assert ctypes.string_at(base + 3 * 4096 + 100, 10) == b"x" * 10
    bitmap = (ctypes.c_uint64 * 1)(1 << 63)                # the user's own bit stays set
    assert log_report(d, iova, 16 * 4096, bitmap=bitmap) == [3, 4, 5, 63]
    assert log_report(d, iova, 16 * 4096) == []            # read and cleared
    d.vdev.dma_write(iova + 6 * 4096, b"w")
    assert log_report(d, iova, 16 * 4096, page_size=8192) == [3]   # coarser report pages
    d.feature(SET | LOG_STOP)
    assert d.vdev.dma_log is None
    d.vdev.dma_write(iova, b"q")
    raises(errno.EINVAL, log_report, d, iova, 16 * 4096)


# --- leaks --------------------------------------------------------------------------------------------

def test_no_leaked_data_fds_after_failures(k: Kernel) -> None:
    """Failing SETs install no descriptor; the session fd survives its session until closed; nothing leaks."""
    d = Dev(k)
    before = len(k.open_files())
    for bad in (ERR, 8):
        raises(errno.EINVAL, d.set_state, bad)
    assert len(k.open_files()) == before
    d.set_state(S)
    sfd = d.set_state(SC)
    raises(errno.EINVAL, d.set_state, PC)
    assert d.last_data_fd == -1
    assert [f.name for f in migration_fds(k)] == ["anon_inode:mtty_mig"]
    assert "mtty_mig" in os.readlink(f"/proc/self/fd/{sfd}")
    d.set_state(S)
    assert d.mig.saving_migf is None and d.mig.resuming_migf is None
    assert len(migration_fds(k)) == 1          # disabled, but the descriptor is the user's to close
    k.close(sfd)
    assert not migration_fds(k)
    assert len(k.open_files()) == before
    d.close()
    assert not k.open_files()
