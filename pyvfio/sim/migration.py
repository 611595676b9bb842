"""Migration v2 and device DMA logging, the VFIO-core half (``drivers/vfio/vfio_main.c``).

What lives here is what every migratable driver shares:

- :func:`vfio_mig_get_next_state` -- the state machine of ``enum
  vfio_device_mig_state``: one table (:data:`MIG_NEXT_STATE`) that says, for a
  device with every optional state, which state to step to next on the way
  from ``cur`` to ``new``, plus the rule that skips states a device does not
  support.  The table is data so the user side (a later migration planner)
  can reuse it.
- :func:`vfio_mig_set_device_state` -- the loop drivers run around it
  (``mtty_set_state``, ``mlx5vf_pci_set_device_state`` ...): step arc by arc
  through the device's ``migration_set_state``.
- the ``VFIO_DEVICE_FEATURE`` handlers the vfio-pci core routes here:
  MIGRATION, MIG_DEVICE_STATE, MIG_DATA_SIZE, DMA_LOGGING_START/STOP/REPORT
  and (routed by ``vfio_main``) MIG_PRECOPY_INFOv2.
- :class:`MigrationFile` -- the data fd a state change returns: a stream
  (``read``/``write``, never positioned) plus ``VFIO_MIG_GET_PRECOPY_INFO``.
- :class:`IovaBitmap` (``drivers/vfio/iova_bitmap.c``) and two kinds of
  device log ops: :class:`StubDmaLogOps` (mtty's: accepts everything, logs
  nothing) and :class:`DeviceDirtyTracker` (a hardware tracker with mlx5's
  rules).

Each feature handler receives the whole ``VFIO_DEVICE_FEATURE`` argument
(header at offset 0, payload at offset 8), after ``vfio_main`` checked the
header, and returns 0 or raises :class:`KernelError`.

What a device provides (``SimPciDevice.mig_ops`` / ``.log_ops``, ``None`` = the
feature does not exist and the ioctl fails with ``ENOTTY``):

- ``mig_ops.flags`` (``VFIO_MIGRATION_*``), ``migration_get_state()``,
  ``migration_get_data_size()`` and ``migration_set_state(next)`` which
  performs ONE arc of the FSM (the kernel's ``*_step_state``) and returns the
  data :class:`~pyvfio.sim.file.File` when that arc opens a stream.  Unlike the
  kernel, where each driver owns the loop, the loop is written once here; the
  arcs a driver sees are the same.
- ``log_ops.log_start(vdev, ranges, page_size) -> page_size``,
  ``log_stop(vdev)``, ``log_read_and_clear(vdev, iova, length, bitmap)``.
"""

from __future__ import annotations

import bisect
import ctypes
from typing import TYPE_CHECKING, Final, Optional, Protocol

from ..uapi import vfio as uv
from .errno import (
    E2BIG, EBADF, EFAULT, EINVAL, ENODEV, ENOMEM, ENOTTY, EOVERFLOW, KernelError,
)
from .file import File, Task, UserArg, stream_offset
from .memory import ProcessMemory
from .vfio_main import vfio_check_feature

if TYPE_CHECKING:
    from .vfio_main import VfioDevice

# --- the state machine ----------------------------------------------------------------------------

ERROR: Final = uv.VFIO_DEVICE_STATE_ERROR
STOP: Final = uv.VFIO_DEVICE_STATE_STOP
RUNNING: Final = uv.VFIO_DEVICE_STATE_RUNNING
STOP_COPY: Final = uv.VFIO_DEVICE_STATE_STOP_COPY
RESUMING: Final = uv.VFIO_DEVICE_STATE_RESUMING
RUNNING_P2P: Final = uv.VFIO_DEVICE_STATE_RUNNING_P2P
PRE_COPY: Final = uv.VFIO_DEVICE_STATE_PRE_COPY
PRE_COPY_P2P: Final = uv.VFIO_DEVICE_STATE_PRE_COPY_P2P
NUM_STATES: Final = PRE_COPY_P2P + 1

#: Short names, for messages ("RUNNING -> STOP_COPY").
STATE_NAMES: Final[dict[int, str]] = {
    ERROR: "ERROR", STOP: "STOP", RUNNING: "RUNNING", STOP_COPY: "STOP_COPY", RESUMING: "RESUMING",
    RUNNING_P2P: "RUNNING_P2P", PRE_COPY: "PRE_COPY", PRE_COPY_P2P: "PRE_COPY_P2P",
}

#: The states that share one data session: moving among them keeps the data fd.
SAVING_STATES: Final = frozenset({PRE_COPY, PRE_COPY_P2P, STOP_COPY})

_E, _S, _R, _SC, _RS, _RP, _PC, _PP = (ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P,
                                       PRE_COPY, PRE_COPY_P2P)

#: ``MIG_NEXT_STATE[cur][new]``: the next step from ``cur`` towards ``new`` on a device that
#: supports every optional state (the kernel's ``vfio_from_fsm_table``).  Row and column
#: order is the state value (ERROR=0 ... PRE_COPY_P2P=7).  Paths are shortest, never pass
#: through a saving state on the way somewhere else, and STOP_COPY -> PRE_COPY* is ERROR
#: (forbidden).  Devices without P2P/PRE_COPY use it through :func:`vfio_mig_get_next_state`,
#: which skips the states they lack.
MIG_NEXT_STATE: Final[tuple[tuple[int, ...], ...]] = (
    #   ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY PRE_COPY_P2P   <- new
    (_E, _E, _E, _E, _E, _E, _E, _E),           # from ERROR: nothing leaves ERROR but a reset
    (_E, _S, _RP, _SC, _RS, _RP, _RP, _RP),     # from STOP
    (_E, _RP, _R, _RP, _RP, _RP, _PC, _RP),     # from RUNNING
    (_E, _S, _S, _SC, _S, _S, _E, _E),          # from STOP_COPY
    (_E, _S, _S, _S, _RS, _S, _S, _S),          # from RESUMING
    (_E, _S, _R, _S, _S, _RP, _R, _PP),         # from RUNNING_P2P
    (_E, _R, _R, _PP, _R, _R, _PC, _PP),        # from PRE_COPY
    (_E, _RP, _RP, _SC, _RP, _RP, _PC, _PP),    # from PRE_COPY_P2P
)

#: The ``VFIO_MIGRATION_*`` flags a device needs for a state to exist (``state_flags_table``).
#: ERROR needs every bit, i.e. it is never a supported state: it can be neither the start
#: of a step nor a target.
STATE_FLAGS: Final[tuple[int, ...]] = (
    0xFFFFFFFF,                                                                  # ERROR
    uv.VFIO_MIGRATION_STOP_COPY,                                                 # STOP
    uv.VFIO_MIGRATION_STOP_COPY,                                                 # RUNNING
    uv.VFIO_MIGRATION_STOP_COPY,                                                 # STOP_COPY
    uv.VFIO_MIGRATION_STOP_COPY,                                                 # RESUMING
    uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_P2P,                         # RUNNING_P2P
    uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_PRE_COPY,                    # PRE_COPY
    uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_P2P | uv.VFIO_MIGRATION_PRE_COPY,  # PRE_COPY_P2P
)


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"state {state}")


def mig_state_supported(migration_flags: int, state: int) -> bool:
    """Whether a device with ``migration_flags`` has ``state`` (ERROR and unknown values: never)."""
    return 0 <= state < NUM_STATES and STATE_FLAGS[state] & migration_flags == STATE_FLAGS[state]


def vfio_mig_get_next_state(migration_flags: int, cur: int, new: int) -> int:
    """The next state to step to from ``cur`` towards ``new`` (``vfio_mig_get_next_state``).

    ``EINVAL`` when ``cur`` is not a state of this device (ERROR included --
    the kernel also WARNs, since a driver should never ask), when ``new`` is
    not one (ERROR can never be requested), or when no path exists
    (STOP_COPY -> PRE_COPY*).  States the device lacks are skipped by looking
    the table up again from the skipped state, so a device without P2P sees
    RUNNING -> STOP directly instead of RUNNING -> RUNNING_P2P -> STOP.
    """
    if not mig_state_supported(migration_flags, cur):
        raise KernelError(EINVAL, f"current migration state {state_name(cur)} is not a state this device "
                                  "can leave (only VFIO_DEVICE_RESET leaves ERROR)")
    if not mig_state_supported(migration_flags, new):
        raise KernelError(EINVAL, f"{state_name(new)} cannot be requested on this device "
                                  f"(migration flags {migration_flags:#x})")
    nxt = MIG_NEXT_STATE[cur][new]
    # Stop at ERROR: before the June 2026 fix the kernel's loop spun forever on STOP_COPY -> PRE_COPY*.
    while not mig_state_supported(migration_flags, nxt) and nxt != ERROR:
        nxt = MIG_NEXT_STATE[nxt][new]
    if nxt == ERROR:
        raise KernelError(EINVAL, f"no migration arc leads from {state_name(cur)} to {state_name(new)}")
    return nxt


class VfioMigrationOps(Protocol):
    """What a migratable device implements (``struct vfio_migration_ops`` plus ``migration_flags``)."""

    flags: int

    def migration_set_state(self, new_state: int) -> Optional[File]: ...

    def migration_get_state(self) -> int: ...

    def migration_get_data_size(self) -> int: ...


def vfio_mig_set_device_state(mig: VfioMigrationOps, new_state: int) -> Optional[File]:
    """Walk the FSM from the device's state to ``new_state``, one arc per ``migration_set_state`` call.

    This is the loop every driver runs (``mtty_set_state``).  A failing arc
    stops the walk and its error is the ioctl's: the device stays where the
    failed arc left it (the state before it, or ERROR if the driver could not
    recover), which is why the user must GET the state after an error.  Only
    the last arc may open a stream; a data file from an interior arc is a
    driver bug (mtty WARNs and fails with ``EINVAL``).  Asking for the current
    state is a no-op success -- even for ERROR while in ERROR.
    """
    file: Optional[File] = None
    while (cur := mig.migration_get_state()) != new_state:
        nxt = vfio_mig_get_next_state(mig.flags, cur, new_state)
        file = mig.migration_set_state(nxt)
        if file is not None and nxt != new_state:
            raise KernelError(EINVAL, f"driver returned a data fd on the interior arc "
                                      f"{state_name(cur)} -> {state_name(nxt)}")
    return file


# --- VFIO_DEVICE_FEATURE payload helpers -----------------------------------------------------------

_HDR = ctypes.sizeof(uv.vfio_device_feature)


def _argsz(arg: UserArg) -> int:
    return int(uv.vfio_device_feature.from_buffer_copy(arg.bytes(0, _HDR)).argsz)


def _get_payload(arg: UserArg, cls: type[ctypes.Structure]) -> ctypes.Structure:
    """``copy_from_user`` of the feature payload (EFAULT if the caller's buffer is shorter)."""
    return cls.from_buffer_copy(arg.bytes(_HDR, ctypes.sizeof(cls)))


def _put_payload(arg: UserArg, obj: ctypes.Structure) -> None:
    """``copy_to_user`` of the feature payload."""
    arg.write(_HDR, bytes(obj))


def _mig_ops(vdev: "VfioDevice") -> Optional[VfioMigrationOps]:
    pci = getattr(vdev.ops, "pci", None)
    ops: Optional[VfioMigrationOps] = getattr(pci, "mig_ops", None)
    return ops


def _require_mig_ops(vdev: "VfioDevice", what: str) -> VfioMigrationOps:
    ops = _mig_ops(vdev)
    if ops is None:
        raise KernelError(ENOTTY, f"{what}: {vdev.name} does not support migration")
    return ops


# --- the migration features ----------------------------------------------------------------------

def feature_migration(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_MIGRATION`` (GET): which optional states the device has.

    A successful GET is how userspace learns a device is migratable at all;
    ``ENOTTY`` means it is not.
    """
    mig = _require_mig_ops(vdev, "VFIO_DEVICE_FEATURE_MIGRATION")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_GET,
                              ctypes.sizeof(uv.vfio_device_feature_migration)):
        return 0
    _put_payload(arg, uv.vfio_device_feature_migration(flags=mig.flags))
    return 0


def feature_mig_data_size(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`` (GET, any state): the device's estimate of its STOP_COPY stream."""
    mig = _require_mig_ops(vdev, "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_GET,
                              ctypes.sizeof(uv.vfio_device_feature_mig_data_size)):
        return 0
    size = mig.migration_get_data_size()
    _put_payload(arg, uv.vfio_device_feature_mig_data_size(stop_copy_length=size))
    return 0


def feature_mig_device_state(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE``: GET the state, or SET one and maybe get a data fd.

    GET answers ``{state, -1}``.  SET walks the arcs
    (:func:`vfio_mig_set_device_state`); when the last arc opens a data
    session its file becomes a new descriptor of the caller in ``data_fd``,
    otherwise ``data_fd`` is -1.  On failure the payload is still written back
    with ``data_fd = -1`` (``vfio_ioctl_device_feature_mig_device_state``'s
    ``out_copy``), so a caller never mistakes stale memory for a descriptor.
    """
    mig = _require_mig_ops(vdev, "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_GET | uv.VFIO_DEVICE_FEATURE_SET,
                              ctypes.sizeof(uv.vfio_device_feature_mig_state)):
        return 0
    state = _get_payload(arg, uv.vfio_device_feature_mig_state)
    assert isinstance(state, uv.vfio_device_feature_mig_state)
    if flags & uv.VFIO_DEVICE_FEATURE_GET:
        state.device_state = mig.migration_get_state()
        state.data_fd = -1
        _put_payload(arg, state)
        return 0
    try:
        file = vfio_mig_set_device_state(mig, state.device_state)
    except KernelError:
        state.data_fd = -1
        _put_payload(arg, state)
        raise
    if file is None:
        state.data_fd = -1
        _put_payload(arg, state)
        return 0
    if isinstance(file, MigrationFile):
        file.vdev = vdev
    state.data_fd = task.fd_install(file)
    _put_payload(arg, state)
    return 0


def feature_mig_precopy_info_v2(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`` (SET, no payload; Linux 7.3): opt in to precopy flags.

    Before this, drivers copied the caller's ``vfio_precopy_info.flags`` back
    unchanged, so the field could carry nothing.  After a SET, every
    ``VFIO_MIG_GET_PRECOPY_INFO`` on this device starts from ``flags = 0`` and
    the driver may report ``VFIO_PRECOPY_INFO_REINIT``.  The opt-in belongs to
    the device, not the fd, and is dropped on the device's last close.  The
    PRE_COPY test comes before the feature checks, so even a PROBE on a
    device without PRE_COPY (or without migration) fails with ``EINVAL``.
    """
    mig = _mig_ops(vdev)
    if mig is None or not mig.flags & uv.VFIO_MIGRATION_PRE_COPY:
        raise KernelError(EINVAL, f"VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: {vdev.name} has no PRE_COPY state")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_SET, 0):
        return 0
    vdev.precopy_info_v2 = True
    return 0


# --- the data fd ------------------------------------------------------------------------------

def vfio_check_precopy_ioctl(vdev: Optional["VfioDevice"], request: int, arg: UserArg) -> uv.vfio_precopy_info:
    """``vfio_check_precopy_ioctl``: the shared first half of every driver's ``VFIO_MIG_GET_PRECOPY_INFO``.

    Any other request is ``ENOTTY``; ``argsz`` below 24 is ``EINVAL``.  The
    caller's ``flags`` stay in the returned struct (and so are echoed back)
    unless the device opted in with MIG_PRECOPY_INFOv2, which zeroes them.
    """
    if request != uv.VFIO_MIG_GET_PRECOPY_INFO:
        raise KernelError(ENOTTY, f"migration data fd has no ioctl {request:#x}")
    minsz = ctypes.sizeof(uv.vfio_precopy_info)
    info = uv.vfio_precopy_info.from_buffer_copy(arg.bytes(0, minsz))
    if info.argsz < minsz:
        raise KernelError(EINVAL, f"argsz {info.argsz} < {minsz}")
    if vdev is not None and vdev.precopy_info_v2:
        info.flags = 0
    return info


class MigrationDriver(Protocol):
    """What a :class:`MigrationFile` asks of the device that created it."""

    def migration_get_state(self) -> int: ...


class MigrationFile(File):
    """A migration data fd (``anon_inode_getfile`` + ``stream_open``), as the mtty sample builds it.

    A *saving* file (``writable=False``, opened read-only) streams
    ``data[:filled]``; the driver appends to it as the session moves on
    (header on entering PRE_COPY, device state on STOP_COPY).  A *resuming*
    file (``writable=True``, write-only) accepts up to ``capacity`` bytes.
    ``pos`` is the file position (``f_pos``): both are streams, so ``pread``
    and ``pwrite`` fail with ``ESPIPE`` and every read/write continues where
    the last stopped.  When the session ends the driver disables the file:
    it is emptied and any later use is ``ENODEV`` -- the descriptor itself
    stays valid until the user closes it.
    """

    kind = "migration data fd"

    def __init__(self, driver: MigrationDriver, *, writable: bool, name: str = "anon_inode:[vfio-mig]",
                 capacity: int = 0, header_size: int = 0,
                 validate_header: Optional["HeaderCheck"] = None) -> None:
        self.driver = driver
        self.writable = writable
        self.name = name
        self.capacity = capacity
        self.header_size = header_size
        self.validate_header = validate_header
        self.data = bytearray(capacity)
        self.filled = 0
        self.pos = 0
        self.disabled = False
        self.released = False
        self.vdev: Optional["VfioDevice"] = None  # set when the core installs it (for the PRECOPY_INFOv2 opt-in)

    def __repr__(self) -> str:
        mode = "resume" if self.writable else "save"
        state = "disabled" if self.disabled else f"{self.pos}/{self.filled}"
        return f"<MigrationFile {self.name} {mode} {state}>"

    # -- driver side -------------------------------------------------------------------------------
    def append(self, data: bytes) -> None:
        """The driver adds saved state to the stream (``mtty_save_state``)."""
        self.data[self.filled: self.filled + len(data)] = data
        self.filled += len(data)

    def disable(self) -> None:
        """End of session (``mtty_disable_file``): drop the data, rewind; later I/O is ``ENODEV``."""
        self.disabled = True
        self.filled = 0
        self.pos = 0
        self.data = bytearray(self.capacity)

    def check_invariants(self) -> None:
        assert 0 <= self.pos <= self.filled or self.disabled, self
        assert not self.disabled or self.filled == 0, self

    # -- file operations ---------------------------------------------------------------------------
    def read(self, task: Task, size: int, offset: Optional[int]) -> bytes:
        """``mtty_save_read``: the next bytes of the stream; 0 bytes at its current end.

        In PRE_COPY the end is temporary (more comes after STOP_COPY).  mtty
        returns 0 there; the uapi allows ``ENOMSG`` (mlx5) -- this model
        follows mtty.
        """
        stream_offset(offset)
        if self.writable:
            raise KernelError(EBADF, f"{self.name} is the resuming side, opened write-only")
        if self.disabled:
            raise KernelError(ENODEV, f"{self.name}: the migration session has ended")
        if self.pos > self.filled:
            raise KernelError(EINVAL, f"{self.name}: position {self.pos} beyond the {self.filled} bytes saved")
        n = max(0, min(size, self.filled - self.pos))
        out = bytes(self.data[self.pos: self.pos + n])
        self.pos += n
        return out

    def write(self, task: Task, data: bytes, offset: Optional[int]) -> int:
        """``mtty_resume_write``: append to the incoming state; the header is checked once complete.

        Longer than the device state -> ``ENOMEM`` (before anything else,
        even on a disabled file).  A header that fails the driver's check ->
        ``EFAULT``, but the bytes are kept and counted, as mtty does; the
        RESUMING -> STOP arc only checks that enough bytes arrived.
        """
        stream_offset(offset)
        if not self.writable:
            raise KernelError(EBADF, f"{self.name} is the saving side, opened read-only")
        n = len(data)
        if self.pos + n > self.capacity:
            raise KernelError(ENOMEM, f"{self.name}: {self.pos + n} bytes exceed the device state size "
                                      f"{self.capacity}")
        if self.disabled:
            raise KernelError(ENODEV, f"{self.name}: the migration session has ended")
        self.data[self.pos: self.pos + n] = data
        self.pos += n
        old = self.filled
        self.filled += n
        if self.validate_header is not None and old < self.header_size <= self.filled:
            problem = self.validate_header(bytes(self.data[: self.header_size]))
            if problem:
                raise KernelError(EFAULT, f"{self.name}: incoming state rejected: {problem}")
        return n

    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        """``VFIO_MIG_GET_PRECOPY_INFO`` on the saving file (the resuming file has no ioctls).

        Only in PRE_COPY/PRE_COPY_P2P (else ``EINVAL``), ``ENODEV`` once
        disabled.  ``initial_bytes`` is what is still unread of the stream,
        ``dirty_bytes`` 0 -- mtty's stream in pre-copy is just its header.
        """
        if self.writable:
            raise KernelError(ENOTTY, f"{self.name} (resuming side) has no ioctl {request:#x}")
        info = vfio_check_precopy_ioctl(self.vdev, request, arg)
        state = self.driver.migration_get_state()
        if state not in (PRE_COPY, PRE_COPY_P2P):
            raise KernelError(EINVAL, f"VFIO_MIG_GET_PRECOPY_INFO in {state_name(state)}: only valid in "
                                      "PRE_COPY or PRE_COPY_P2P")
        if self.disabled:
            raise KernelError(ENODEV, f"{self.name}: the migration session has ended")
        if self.pos > self.filled:
            raise KernelError(EINVAL, f"{self.name}: position {self.pos} beyond the {self.filled} bytes saved")
        initial, dirty, reinit = self.precopy_sizes()
        info.initial_bytes = initial
        info.dirty_bytes = dirty
        if reinit and self.vdev is not None and self.vdev.precopy_info_v2:
            info.flags |= uv.VFIO_PRECOPY_INFO_REINIT
        arg.write(0, bytes(info))
        return 0

    def precopy_sizes(self) -> tuple[int, int, bool]:
        """(initial_bytes, dirty_bytes, new initial data appeared): mtty's answer, the unread rest."""
        return self.filled - self.pos, 0, False

    def release(self) -> None:
        """The user closed the descriptor; the device may still hold the session (it disables it later)."""
        self.released = True


class HeaderCheck(Protocol):
    def __call__(self, header: bytes) -> Optional[str]: ...


# --- device DMA logging ----------------------------------------------------------------------------

PAGE_SIZE: Final = 4096
#: ``LOG_MAX_RANGES``: the core guarantees as many ranges as fit in one kernel page.
LOG_MAX_RANGES: Final = PAGE_SIZE // ctypes.sizeof(uv.vfio_device_feature_dma_logging_range)
_U64: Final = (1 << 64) - 1


class IovaBitmap:
    """A user bitmap of dirty pages (``drivers/vfio/iova_bitmap.c``): bit i = page i after ``iova``.

    The kernel pins the user's bitmap a window (2 MiB of bitmap) at a time
    and sets bits in place; the model checks the first window up front
    (``EFAULT`` before the log is read), collects the bits and ORs them into
    the user's words at :meth:`flush` (read-modify-write: REPORT only ever
    sets bits; an unwritable word there is ``EFAULT`` too).  A zero
    ``length`` wraps to a bitmap spanning the whole 64-bit IOVA space, which
    the kernel walks until it faults: ``EFAULT``.
    """

    #: Bytes of user bitmap pinned at once: 512 pages (one page of ``struct page`` pointers).
    WINDOW: Final = 512 * PAGE_SIZE

    def __init__(self, mm: ProcessMemory, iova: int, length: int, page_size: int, bitmap: int) -> None:
        self.mm = mm
        self.iova = iova
        self.length = length
        self.page_size = page_size
        self.pgshift = page_size.bit_length() - 1
        self.addr = bitmap
        # As iova_bitmap_alloc: the index of the last byte's word, + 1 (length 0 wraps, as in C).
        self.nwords = ((length - 1) & _U64) // (64 * page_size) + 1
        self.bits: dict[int, int] = {}
        mm.check(bitmap, min(self.nwords * 8, self.WINDOW))
        if length == 0:
            raise KernelError(EFAULT, "length 0 makes the bitmap cover all 2^64 bytes of IOVA; the kernel "
                                      "walks the user bitmap until it faults")

    def set(self, iova: int, length: int) -> None:
        """``iova_bitmap_set``: mark every page touching ``[iova, iova + length)`` (clipped to the bitmap)."""
        if length <= 0:
            return
        lo = max(iova, self.iova)
        hi = min(iova + length, self.iova + self.length)
        if lo >= hi:
            return
        first = (lo - self.iova) >> self.pgshift
        last = (hi - 1 - self.iova) >> self.pgshift
        for bit in range(first, last + 1):
            self.bits[bit // 64] = self.bits.get(bit // 64, 0) | (1 << (bit % 64))

    def flush(self) -> None:
        for word, bits in sorted(self.bits.items()):
            addr = self.addr + 8 * word
            old = int.from_bytes(self.mm.read(addr, 8), "little")
            self.mm.write(addr, (old | bits).to_bytes(8, "little"))
        self.bits.clear()


class VfioLogOps(Protocol):
    """``struct vfio_log_ops``: a device's DMA-write logger."""

    def log_start(self, vdev: "VfioDevice", ranges: list[tuple[int, int]], page_size: int) -> int: ...

    def log_stop(self, vdev: "VfioDevice") -> None: ...

    def log_read_and_clear(self, vdev: "VfioDevice", iova: int, length: int, dirty: IovaBitmap) -> None: ...


class StubDmaLogOps:
    """The mtty sample's log ops: every call succeeds and nothing is ever dirty.

    That is what the real mtty does (it does no DMA), so START twice, REPORT
    without START and STOP without START all succeed and the page size comes
    back as given.
    """

    def log_start(self, vdev: "VfioDevice", ranges: list[tuple[int, int]], page_size: int) -> int:
        return page_size

    def log_stop(self, vdev: "VfioDevice") -> None:
        return None

    def log_read_and_clear(self, vdev: "VfioDevice", iova: int, length: int, dirty: IovaBitmap) -> None:
        return None


class DmaLog:
    """The pages a device wrote since the last report, within the ranges it was asked to track.

    ``VfioDevice.dma_write`` calls :meth:`mark` for every DMA write the
    device makes while logging is on.
    """

    def __init__(self, ranges: list[tuple[int, int]], page_size: int) -> None:
        self.ranges = sorted(ranges)  # closed intervals (first, last)
        self.starts = [r[0] for r in self.ranges]
        self.page_size = page_size
        self.dirty: set[int] = set()  # page numbers (iova // page_size)

    def _tracked(self, page: int) -> bool:
        lo, hi = page * self.page_size, (page + 1) * self.page_size - 1
        i = bisect.bisect_right(self.starts, hi) - 1
        return i >= 0 and self.ranges[i][1] >= lo

    def mark(self, iova: int, length: int) -> None:
        if length <= 0:
            return
        for page in range(iova // self.page_size, (iova + length - 1) // self.page_size + 1):
            if self._tracked(page):
                self.dirty.add(page)


class DeviceDirtyTracker:
    """A device's hardware dirty tracker with mlx5's rules (``mlx5vf_start_page_tracker`` & co).

    START while started -> ``EINVAL``; REPORT while stopped -> ``EINVAL``;
    STOP while stopped succeeds.  The page size is the hint rounded down to a
    power of two and clamped to what the tracker supports (4 KiB .. 1 GiB).
    Reading a range clears what it reported.
    """

    min_page_shift = 12
    max_page_shift = 30

    def __init__(self) -> None:
        self.log: Optional[DmaLog] = None

    def log_start(self, vdev: "VfioDevice", ranges: list[tuple[int, int]], page_size: int) -> int:
        if self.log is not None:
            raise KernelError(EINVAL, "DMA logging is already started: stop it first")
        shift = max(self.min_page_shift, min(self.max_page_shift, page_size.bit_length() - 1))
        self.log = DmaLog(ranges, 1 << shift)
        vdev.dma_log = self.log
        return 1 << shift

    def log_stop(self, vdev: "VfioDevice") -> None:
        self.log = None
        vdev.dma_log = None

    def log_read_and_clear(self, vdev: "VfioDevice", iova: int, length: int, dirty: IovaBitmap) -> None:
        if self.log is None:
            raise KernelError(EINVAL, "DMA logging is not started")
        ps = self.log.page_size
        end = iova + length
        for page in sorted(self.log.dirty):
            lo = page * ps
            if lo < end and iova < lo + ps:
                dirty.set(lo, ps)
                self.log.dirty.discard(page)


def _log_ops(vdev: "VfioDevice", what: str) -> VfioLogOps:
    pci = getattr(vdev.ops, "pci", None)
    ops: Optional[VfioLogOps] = getattr(pci, "log_ops", None)
    if ops is None:
        raise KernelError(ENOTTY, f"{what}: {vdev.name} has no device DMA logging")
    return ops


def _aligned(value: int, page_size: int) -> bool:
    """``IS_ALIGNED`` on u64: ``value & (page_size - 1) == 0``, whatever page_size is (0 included)."""
    return value & ((page_size - 1) & _U64) == 0


def feature_dma_logging_start(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_DMA_LOGGING_START`` (SET): log DMA writes to these IOVA ranges.

    The core checks the ranges (``vfio_ioctl_device_feature_logging_start``):
    none -> ``EINVAL``; more than fit in a page (256) -> ``E2BIG``; an
    unreadable array -> ``EFAULT``; iova or length not a multiple of
    ``page_size`` -> ``EINVAL``; ``iova + length`` beyond 2^64 ->
    ``EOVERFLOW``; two ranges overlapping -> ``EINVAL``.  The driver then
    starts and may change ``page_size``, which is written back.
    """
    log_ops = _log_ops(vdev, "VFIO_DEVICE_FEATURE_DMA_LOGGING_START")
    control_size = ctypes.sizeof(uv.vfio_device_feature_dma_logging_control)
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_SET, control_size):
        return 0
    control = _get_payload(arg, uv.vfio_device_feature_dma_logging_control)
    assert isinstance(control, uv.vfio_device_feature_dma_logging_control)
    nnodes = control.num_ranges
    if nnodes == 0:
        raise KernelError(EINVAL, "num_ranges is 0")
    if nnodes > LOG_MAX_RANGES:
        raise KernelError(E2BIG, f"{nnodes} ranges: at most {LOG_MAX_RANGES} (one page of ranges)")
    range_size = ctypes.sizeof(uv.vfio_device_feature_dma_logging_range)
    page_size = control.page_size
    nodes: list[tuple[int, int]] = []
    for i in range(nnodes):
        raw = task.mm.read(control.ranges + i * range_size, range_size)
        rng = uv.vfio_device_feature_dma_logging_range.from_buffer_copy(raw)
        if not _aligned(rng.iova, page_size) or not _aligned(rng.length, page_size):
            raise KernelError(EINVAL, f"range {i} ({rng.iova:#x}+{rng.length:#x}) is not aligned to "
                                      f"page_size {page_size:#x}")
        if rng.iova + rng.length > _U64:
            raise KernelError(EOVERFLOW, f"range {i}: {rng.iova:#x}+{rng.length:#x} overflows 64 bits")
        first, last = rng.iova, (rng.iova + rng.length - 1) & _U64
        for j, (s, e) in enumerate(nodes):  # interval_tree_iter_first: node.start <= last && node.last >= first
            if s <= last and e >= first:
                raise KernelError(EINVAL, f"range {i} overlaps range {j}")
        nodes.append((first, last))
    control.page_size = log_ops.log_start(vdev, nodes, page_size)
    _put_payload(arg, control)
    return 0


def feature_dma_logging_stop(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`` (SET, no payload)."""
    log_ops = _log_ops(vdev, "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_SET, 0):
        return 0
    log_ops.log_stop(vdev)
    return 0


def feature_dma_logging_report(vdev: "VfioDevice", task: Task, flags: int, arg: UserArg) -> int:
    """``VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`` (GET): OR the dirty pages of a range into a user bitmap.

    ``page_size`` must be a power of two of at least 4 KiB (``EINVAL``) and
    need not match START's; ``iova + length`` beyond 2^64 -> ``EOVERFLOW``;
    an unwritable bitmap -> ``EFAULT``.  The report clears what it returned;
    after any error the user must treat the log as lost.
    """
    log_ops = _log_ops(vdev, "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT")
    if not vfio_check_feature(flags, _argsz(arg), uv.VFIO_DEVICE_FEATURE_GET,
                              ctypes.sizeof(uv.vfio_device_feature_dma_logging_report)):
        return 0
    report = _get_payload(arg, uv.vfio_device_feature_dma_logging_report)
    assert isinstance(report, uv.vfio_device_feature_dma_logging_report)
    ps = report.page_size
    if ps < 4096 or ps & (ps - 1):
        raise KernelError(EINVAL, f"page_size {ps:#x} is not a power of two >= 4 KiB")
    if report.iova + report.length > _U64:
        raise KernelError(EOVERFLOW, f"{report.iova:#x}+{report.length:#x} overflows 64 bits")
    bitmap = IovaBitmap(task.mm, report.iova, report.length, ps, report.bitmap)
    log_ops.log_read_and_clear(vdev, report.iova, report.length, bitmap)
    bitmap.flush()
    return 0


__all__ = [
    "DeviceDirtyTracker", "DmaLog", "IovaBitmap", "LOG_MAX_RANGES", "MIG_NEXT_STATE", "MigrationFile",
    "NUM_STATES", "SAVING_STATES", "STATE_FLAGS", "STATE_NAMES", "StubDmaLogOps", "VfioLogOps",
    "VfioMigrationOps", "feature_dma_logging_report", "feature_dma_logging_start", "feature_dma_logging_stop",
    "feature_mig_data_size", "feature_mig_device_state", "feature_mig_precopy_info_v2", "feature_migration",
    "mig_state_supported", "state_name", "vfio_check_precopy_ioctl", "vfio_mig_get_next_state",
    "vfio_mig_set_device_state",
]
