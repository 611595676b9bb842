"""The user side of migration v2 on one device: states, the data fd, sizes, pre-copy info.

A :class:`MigrationDevice` wraps an open VFIO device descriptor (raw: a
kernel and an fd, so it works before and without the object layer) and owns
what the kernel hands back during migration: the data fd.  The rules it
enforces are the ones VMMs kept getting wrong:

- a data fd comes back only on the arc that *opens* a session (entering the
  saving group, or STOP -> RESUMING); PRE_COPY -> STOP_COPY continues on the
  fd already held, so a second fd while one is open means user space and
  device are out of sync (QEMU calls it that) and is refused;
- the session's fd is closed by us when an arc ends the session;
- during PRE_COPY the end of the currently available data is signalled either
  by ``ENOMSG`` (the uapi's way, mlx5) or by a 0-byte read (mtty): both mean
  "nothing more for now", while a 0 in STOP_COPY is the real end;
- any failure of a state change leaves the device RUNNING (or reset, if even
  that fails): a VMM must never strand a device in a stopped state because a
  migration broke half way.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import logging
import os
from typing import Any, Iterator, Optional

from ..uapi import vfio as uv
from ..uapi.struct import alloc_flex
from .fsm import (
    PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, STOP_COPY, Arc, MigrationPlanError, plan, state_name,
)

log = logging.getLogger("pyvfio.migration")

__all__ = ["DataFd", "MigrationDevice", "MigrationError", "PrecopyInfo", "feature"]

_HDR = ctypes.sizeof(uv.vfio_device_feature)


class MigrationError(Exception):
    """Migration could not proceed; the message says which step and what was left behind."""


def feature(kernel: Any, fd: int, flags: int, payload: Optional[ctypes.Structure] = None) -> int:
    """``VFIO_DEVICE_FEATURE`` with ``payload`` as data[]; the payload is updated with what the kernel wrote.

    Raw-surface fallback for the object layer's ``Device.feature``: it builds
    the flexible struct with :func:`alloc_flex` so argsz is always right.
    """
    n = ctypes.sizeof(payload) if payload is not None else 0
    arg = alloc_flex(uv.vfio_device_feature, n, flags=flags)
    if payload is not None:
        ctypes.memmove(ctypes.addressof(arg) + _HDR, ctypes.addressof(payload), n)
    try:
        return int(kernel.ioctl(fd, uv.VFIO_DEVICE_FEATURE, arg))
    finally:
        if payload is not None:
            ctypes.memmove(ctypes.addressof(payload), ctypes.addressof(arg) + _HDR, n)


@dataclasses.dataclass(frozen=True)
class PrecopyInfo:
    """``VFIO_MIG_GET_PRECOPY_INFO``: what is still to be read in pre-copy.

    ``reinit`` is the Linux 7.3 ``VFIO_PRECOPY_INFO_REINIT`` flag, meaningful
    only after the MIG_PRECOPY_INFOv2 opt-in (``flags_valid``): new initial
    data appeared, so a destination must receive it before switching over.
    """

    initial_bytes: int
    dirty_bytes: int
    reinit: bool = False
    flags_valid: bool = False


class DataFd:
    """A migration data fd: a stream (never positioned), closed exactly once.

    Reads use the kernel's ``read`` when it has one (the simulated kernel),
    else ``os.read`` on the descriptor (Linux).
    """

    def __init__(self, kernel: Any, fd: int, *, writable: bool) -> None:
        self.kernel = kernel
        self.fd = fd
        self.writable = writable
        self.closed = False

    def __repr__(self) -> str:
        return f"<DataFd fd={self.fd} {'resume' if self.writable else 'save'}{' closed' if self.closed else ''}>"

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` when nothing is available now (0 bytes read or ``ENOMSG``)."""
        reader = getattr(self.kernel, "read", None)
        try:
            if reader is not None:
                return bytes(reader(self.fd, size))
            return os.read(self.fd, size)
        except OSError as e:
            if e.errno == _errno.ENOMSG:
                return b""
            raise

    def write_all(self, data: bytes) -> None:
        """Write every byte (the resume side accepts any segmentation, but may take less per call)."""
        writer = getattr(self.kernel, "write", None)
        view = memoryview(data)
        while view:
            n = int(writer(self.fd, bytes(view)) if writer is not None else os.write(self.fd, view))
            if n <= 0:
                raise MigrationError(f"data fd {self.fd}: write made no progress ({n})")
            view = view[n:]

    def precopy_info(self) -> PrecopyInfo:
        info = uv.vfio_precopy_info(argsz=ctypes.sizeof(uv.vfio_precopy_info), flags=0)
        self.kernel.ioctl(self.fd, uv.VFIO_MIG_GET_PRECOPY_INFO, info)
        return PrecopyInfo(int(info.initial_bytes), int(info.dirty_bytes),
                           bool(info.flags & uv.VFIO_PRECOPY_INFO_REINIT))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.kernel.close(self.fd)


class MigrationDevice:
    """Migration v2 control of one open device: probe, state changes with recovery, the data session.

    ``kernel``/``fd`` are the device's (``Device.kernel``/``Device.fd`` of the
    object layer, or a raw descriptor).  The device descriptor stays the
    caller's; the data fd is ours and is closed by :meth:`close`.
    """

    def __init__(self, kernel: Any, fd: int, *, name: str = "") -> None:
        self.kernel = kernel
        self.fd = fd
        self.name = name or f"device fd {fd}"
        self.data: Optional[DataFd] = None
        self._flags: Optional[int] = None
        self._precopy_v2 = False

    @classmethod
    def from_device(cls, device: Any) -> "MigrationDevice":
        """Over an object-layer ``Device`` (anything with ``.kernel`` and ``.fd``)."""
        return cls(device.kernel, int(device.fd), name=str(getattr(device, "name", "")))

    def __repr__(self) -> str:
        flags = "?" if self._flags is None else f"{self._flags:#x}"
        return f"<MigrationDevice {self.name} flags={flags} data={self.data!r}>"

    def __enter__(self) -> "MigrationDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the data fd if a session is open (the device fd is the caller's)."""
        if self.data is not None:
            self.data.close()
            self.data = None

    # -- capability ----------------------------------------------------------------------------
    def probe(self) -> Optional[int]:
        """``VFIO_DEVICE_FEATURE_MIGRATION`` flags, or None when the device cannot migrate (``ENOTTY``)."""
        mig = uv.vfio_device_feature_migration(flags=0)
        try:
            feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_MIGRATION, mig)
        except OSError as e:
            if e.errno == _errno.ENOTTY:
                return None
            raise
        self._flags = int(mig.flags)
        return self._flags

    @property
    def flags(self) -> int:
        """The migration flags; a device without migration raises :class:`MigrationError` here."""
        if self._flags is None and self.probe() is None:
            raise MigrationError(f"{self.name} does not support migration "
                                 "(VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)")
        assert self._flags is not None
        return self._flags

    @property
    def has_precopy(self) -> bool:
        return bool(self.flags & uv.VFIO_MIGRATION_PRE_COPY)

    @property
    def has_p2p(self) -> bool:
        return bool(self.flags & uv.VFIO_MIGRATION_P2P)

    def enable_precopy_info_v2(self) -> bool:
        """Opt in to PRECOPY_INFO flags (Linux 7.3 ``MIG_PRECOPY_INFOv2``); False where not offered.

        Older kernels answer ``ENOTTY`` (no such feature) and devices without
        PRE_COPY ``EINVAL``; either way ``flags`` stays an echo of the input
        and :attr:`PrecopyInfo.reinit` is never reported.
        """
        try:
            feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_SET | uv.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2)
        except OSError as e:
            if e.errno in (_errno.ENOTTY, _errno.EINVAL):
                return False
            raise
        self._precopy_v2 = True
        return True

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> int:
        st = uv.vfio_device_feature_mig_state(device_state=0, data_fd=-1)
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, st)
        return int(st.device_state)

    def plan(self, new: int) -> list[Arc]:
        flags = self.flags
        return plan(flags, self.state, new)

    def _set_no_session(self, new: int) -> None:
        """SET for recovery: a data fd coming back here would belong to nobody, so it is closed at once."""
        fd = self._set(new)
        if fd >= 0:
            self.kernel.close(fd)

    def _set(self, new: int) -> int:
        st = uv.vfio_device_feature_mig_state(device_state=new, data_fd=-1)
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_SET | uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, st)
        return int(st.data_fd)

    def set_state(self, new: int, *, recover: int = RUNNING) -> Optional[DataFd]:
        """Move to ``new``; returns the data fd when this request opens a session, else None.

        The path is planned first (an impossible request fails with
        :class:`MigrationPlanError` before any ioctl).  If the kernel fails,
        the session is dropped and the device is brought to ``recover`` (a
        reset if that fails too); the original error is raised.
        """
        flags = self.flags  # a device without migration fails here, with a clear message
        cur = self.state
        arcs = plan(flags, cur, new)
        if not arcs:
            return None
        try:
            data_fd = self._set(new)
        except OSError as e:
            self._recover(recover, f"{state_name(cur)} -> {state_name(new)} failed: {e}")
            raise
        opened = arcs[-1].opens_session
        if data_fd >= 0:
            if self.data is not None or not opened:
                # a second session fd: the kernel and our bookkeeping disagree on the session
                self.kernel.close(data_fd)
                self._recover(recover, "data_fd out of sync")
                raise MigrationError(f"{self.name}: {state_name(cur)} -> {state_name(new)} returned a data fd "
                                     "while one was already open or where no session starts (data_fd out of "
                                     "sync); device recovered")
            self.data = DataFd(self.kernel, data_fd, writable=(new == RESUMING))
            return self.data
        if opened:
            self._recover(recover, "no data fd")
            raise MigrationError(f"{self.name}: {state_name(cur)} -> {state_name(new)} opened no data fd")
        if any(a.ends_session for a in arcs):
            self.close()
        return None

    def _recover(self, recover: int, why: str) -> None:
        """Drop the session and bring the device to ``recover``; reset if that fails too (QEMU's rule)."""
        self.close()
        log.warning("%s: %s; recovering to %s", self.name, why, state_name(recover))
        try:
            if self.state != recover:
                self._set_no_session(recover)
            return
        except OSError as e:
            log.warning("%s: recovery to %s failed (%s); resetting", self.name, state_name(recover), e)
        self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_RESET)

    def abort(self) -> None:
        """Give up the migration: close the session and leave the device RUNNING (reset as last resort)."""
        try:
            cur: Optional[int] = self.state
        except OSError:
            cur = None
        self.close()
        if cur == RUNNING:
            return
        try:
            self._set_no_session(RUNNING)
        except OSError:
            self.kernel.ioctl(self.fd, uv.VFIO_DEVICE_RESET)

    # -- data ----------------------------------------------------------------------------------
    def data_size(self) -> int:
        """``MIG_DATA_SIZE``: the device's estimate of its STOP_COPY stream, valid in any state."""
        size = uv.vfio_device_feature_mig_data_size(stop_copy_length=0)
        feature(self.kernel, self.fd, uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, size)
        return int(size.stop_copy_length)

    def _session(self) -> DataFd:
        if self.data is None:
            raise MigrationError(f"{self.name}: no migration data session is open")
        return self.data

    def precopy_info(self) -> PrecopyInfo:
        info = self._session().precopy_info()
        return dataclasses.replace(info, flags_valid=self._precopy_v2,
                                   reinit=info.reinit and self._precopy_v2)

    def iter_available(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The readable data in chunks, up to the temporary end (pre-copy) or EOF (STOP_COPY)."""
        data = self._session()
        while True:
            part = data.read(chunk)
            if not part:
                return
            yield part

    def read_available(self, chunk: int = 1 << 20) -> bytes:
        """Everything readable now: in pre-copy up to the temporary end, in STOP_COPY up to EOF."""
        data = self._session()
        parts: list[bytes] = []
        while True:
            part = data.read(chunk)
            if not part:
                return b"".join(parts)
            parts.append(part)

    def write_data(self, payload: bytes) -> None:
        self._session().write_all(payload)

    def in_precopy(self) -> bool:
        return self.state in (PRE_COPY, PRE_COPY_P2P)

    def in_stop_copy(self) -> bool:
        return self.state == STOP_COPY

