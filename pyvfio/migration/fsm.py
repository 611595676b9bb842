"""Planning migration state changes before asking the kernel for them.

The kernel walks ``VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`` requests arc by arc
through one table (``vfio_mig_get_next_state``); a VMM that wants to know what
a request will do -- which arcs the driver will see, whether a data fd comes
back, whether the request is legal at all -- must run the same algorithm.
Writing a second copy of the table is how user space and kernel drift apart,
so this module imports the simulated kernel's table and step function and only
adds the user-side view on top: the whole path, and a sentence per arc.
"""

from __future__ import annotations

import dataclasses
from typing import Final, Optional

from ..sim.errno import KernelError
from ..sim.migration import (
    ERROR, NUM_STATES, PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, RUNNING_P2P, SAVING_STATES, STATE_NAMES,
    STOP, STOP_COPY, mig_state_supported, state_name, vfio_mig_get_next_state,
)
from ..uapi import vfio as uv

__all__ = [
    "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
    "NUM_STATES", "STATE_NAMES", "Arc", "MigrationPlanError", "plan", "explain", "supported_states",
    "state_name", "state_value", "opens_session", "ends_session",
]

ALL_FLAGS: Final = uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_P2P | uv.VFIO_MIGRATION_PRE_COPY


class MigrationPlanError(ValueError):
    """A requested transition the kernel would refuse with ``EINVAL``; ``errno`` is kept for symmetry."""

    errno = 22  # EINVAL: what VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE answers for the same request


def state_value(name_or_value: "int | str") -> int:
    """A state from its value or its name ("STOP_COPY", case-insensitive, "VFIO_DEVICE_STATE_" optional)."""
    if isinstance(name_or_value, int):
        return name_or_value
    key = name_or_value.upper().removeprefix("VFIO_DEVICE_STATE_")
    for value, name in STATE_NAMES.items():
        if name == key:
            return value
    raise ValueError(f"unknown migration state {name_or_value!r}; known: {', '.join(STATE_NAMES.values())}")


def supported_states(migration_flags: int) -> list[int]:
    """The states a device with these ``VFIO_MIGRATION_*`` flags has (ERROR is never one)."""
    return [s for s in range(NUM_STATES) if mig_state_supported(migration_flags, s)]


def opens_session(cur: int, new: int) -> bool:
    """Whether the arc ``cur -> new`` creates a data fd: entering the saving group, or STOP -> RESUMING.

    Moving inside the saving group (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY)
    keeps the fd of the session already open, which is why PRE_COPY -> STOP_COPY
    returns no descriptor.
    """
    if new == RESUMING:
        return cur == STOP
    return new in SAVING_STATES and cur not in SAVING_STATES


def ends_session(cur: int, new: int) -> bool:
    """Whether ``cur -> new`` ends a data session (leaving the saving group, or RESUMING -> STOP)."""
    return (cur in SAVING_STATES and new not in SAVING_STATES) or (cur == RESUMING and new != RESUMING)


@dataclasses.dataclass(frozen=True)
class Arc:
    """One step the driver performs, and what it means for the caller."""

    cur: int
    new: int

    @property
    def opens_session(self) -> bool:
        return opens_session(self.cur, self.new)

    @property
    def ends_session(self) -> bool:
        return ends_session(self.cur, self.new)

    def __str__(self) -> str:
        return f"{state_name(self.cur)} -> {state_name(self.new)}"

    def describe(self) -> str:
        """A sentence on what this arc does to the device and to the data fd."""
        what = _ARC_WORDS.get((self.cur, self.new), "")
        fd = ""
        if self.opens_session:
            fd = "; opens a data session (a new data_fd)"
        elif self.ends_session:
            fd = "; ends the data session (its data_fd then fails with ENODEV)"
        elif self.cur in SAVING_STATES and self.new in SAVING_STATES:
            fd = "; the data session continues on the same data_fd"
        return f"{self}: {what}{fd}" if what else f"{self}{fd}"


_ARC_WORDS: Final[dict[tuple[int, int], str]] = {
    (RUNNING, RUNNING_P2P): "device keeps running but stops initiating peer-to-peer DMA",
    (RUNNING_P2P, RUNNING): "device resumes full operation",
    (RUNNING_P2P, STOP): "device stops",
    (STOP, RUNNING_P2P): "device starts, still quiet towards peers",
    (RUNNING, STOP): "device stops",
    (STOP, RUNNING): "device starts",
    (STOP, STOP_COPY): "device stays stopped and offers its whole state for reading",
    (STOP_COPY, STOP): "saving is over",
    (STOP, RESUMING): "device is ready to receive a saved state",
    (RESUMING, STOP): "device loads the state written to it (a bad state fails here)",
    (RUNNING, PRE_COPY): "device keeps running and offers initial state for reading",
    (PRE_COPY, RUNNING): "pre-copy is abandoned",
    (PRE_COPY, STOP_COPY): "device stops and appends its final state",
    (PRE_COPY, PRE_COPY_P2P): "pre-copy continues, peer-to-peer DMA stops",
    (PRE_COPY_P2P, PRE_COPY): "pre-copy continues, peer-to-peer DMA resumes",
    (PRE_COPY_P2P, RUNNING_P2P): "pre-copy is abandoned",
    (PRE_COPY_P2P, STOP_COPY): "device stops and appends its final state",
    (RUNNING_P2P, PRE_COPY_P2P): "device offers initial state for reading while quiet towards peers",
}


def plan(migration_flags: int, cur: int, new: int) -> list[Arc]:
    """The arcs the kernel will ask the driver for on a SET of ``new`` while in ``cur``.

    Empty when ``cur == new`` (a no-op success).  Raises
    :class:`MigrationPlanError` exactly where the kernel answers ``EINVAL``:
    ``cur`` is not a state of the device (ERROR included: only a reset leaves
    it), ``new`` is not one (ERROR can never be requested), or no path exists
    (STOP_COPY -> PRE_COPY*).  It uses the kernel model's own step function,
    so plan and kernel cannot disagree.
    """
    arcs: list[Arc] = []
    state = cur
    while state != new:
        try:
            nxt = vfio_mig_get_next_state(migration_flags, state, new)
        except KernelError as e:
            raise MigrationPlanError(f"{state_name(cur)} -> {state_name(new)} is not possible on a device with "
                                     f"migration flags {migration_flags:#x}: {e.reason}") from None
        arcs.append(Arc(state, nxt))
        state = nxt
    return arcs


def explain(migration_flags: int, cur: int, new: int) -> str:
    """Plain words for :func:`plan`: one line per arc, or why the request is refused."""
    head = f"{state_name(cur)} -> {state_name(new)} (migration flags {migration_flags:#x})"
    try:
        arcs = plan(migration_flags, cur, new)
    except MigrationPlanError as e:
        return f"{head}: refused with EINVAL: {e}"
    if not arcs:
        return f"{head}: already there, nothing to do"
    lines = [f"{head}: {len(arcs)} arc(s)"]
    lines += [f"  {i}. {arc.describe()}" for i, arc in enumerate(arcs, 1)]
    fd_arc: Optional[Arc] = arcs[-1] if arcs[-1].opens_session else None
    lines.append("  returns a data_fd" if fd_arc else "  returns no data_fd")
    return "\n".join(lines)
