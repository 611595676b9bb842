"""SEMANTICS 7.1/7.2: the migration v2 state machine, ``vfio_mig_get_next_state``, checked exhaustively.

Every (current, requested) pair for every combination of the optional P2P and
PRE_COPY capabilities (and for flag sets without STOP_COPY, where nothing is
a state) is compared with an independent formulation written from the uapi
header's words, not from the kernel's table: the arcs a driver implements
for its flags, the shortest path over them, never passing through a saving
state unless the whole trip stays in the saving group, and STOP_COPY ->
PRE_COPY* forbidden.  A second check walks the combination transitions the
kernel's own comment lists.
"""

from __future__ import annotations

import errno
import itertools
from typing import Optional

import pytest

from types import SimpleNamespace

from pyvfio.sim.errno import KernelError
from pyvfio.sim.file import File, UserArg
from pyvfio.sim.migration import (
    MIG_NEXT_STATE, STATE_FLAGS, MigrationFile, vfio_mig_get_next_state, vfio_mig_set_device_state,
)
from pyvfio.uapi import vfio as uv

E = uv.VFIO_DEVICE_STATE_ERROR
S = uv.VFIO_DEVICE_STATE_STOP
R = uv.VFIO_DEVICE_STATE_RUNNING
SC = uv.VFIO_DEVICE_STATE_STOP_COPY
RS = uv.VFIO_DEVICE_STATE_RESUMING
RP = uv.VFIO_DEVICE_STATE_RUNNING_P2P
PC = uv.VFIO_DEVICE_STATE_PRE_COPY
PP = uv.VFIO_DEVICE_STATE_PRE_COPY_P2P
ALL_STATES = (E, S, R, SC, RS, RP, PC, PP)
SAVING = {SC, PC, PP}
NAMES = {E: "ERROR", S: "STOP", R: "RUNNING", SC: "STOP_COPY", RS: "RESUMING", RP: "RUNNING_P2P",
         PC: "PRE_COPY", PP: "PRE_COPY_P2P"}
STOP_COPY_F = uv.VFIO_MIGRATION_STOP_COPY
P2P_F = uv.VFIO_MIGRATION_P2P
PRE_F = uv.VFIO_MIGRATION_PRE_COPY
FLAG_SETS = list(range(8))  # every combination of the three bits, valid or not


def supported_states(flags: int) -> set[int]:
    """The header's VFIO_DEVICE_FEATURE_MIGRATION text: STOP_COPY gives 4 states, P2P/PRE_COPY add more."""
    if not flags & STOP_COPY_F:
        return set()
    states = {S, R, SC, RS}
    if flags & P2P_F:
        states.add(RP)
    if flags & PRE_F:
        states.add(PC)
    if flags & P2P_F and flags & PRE_F:
        states.add(PP)
    return states


def driver_arcs(flags: int) -> set[tuple[int, int]]:
    """The FSM arcs a driver with these flags implements (uapi vfio.h, the enum's comment)."""
    arcs = {(RS, S), (S, RS), (S, SC), (SC, S)}
    p2p, pre = bool(flags & P2P_F), bool(flags & PRE_F)
    if p2p:
        arcs |= {(R, RP), (RP, R), (RP, S), (S, RP)}
    else:
        arcs |= {(R, S), (S, R)}
    if pre:
        arcs |= {(R, PC), (PC, R)}
        if not p2p:
            arcs.add((PC, SC))
    if p2p and pre:
        arcs |= {(PC, PP), (PP, PC), (PP, RP), (PP, SC), (RP, PP)}
    return arcs


def valid_path(path: tuple[int, ...]) -> bool:
    """Saving states may be interior only while the trip starts, stays and ends in the saving group."""
    start, end = path[0], path[-1]
    for i in range(1, len(path) - 1):
        if path[i] in SAVING and not (start in SAVING and end in SAVING
                                      and all(n in SAVING for n in path[: i + 1])):
            return False
    return True


def expected_next(flags: int, cur: int, new: int) -> Optional[int]:
    """The first step of the unique shortest valid path, ``None`` for EINVAL."""
    states = supported_states(flags)
    if cur not in states or new not in states:
        return None
    if cur == new:
        return cur
    if cur == SC and new in (PC, PP):
        return None  # "These arcs are not permitted"
    arcs = driver_arcs(flags)
    paths: list[tuple[int, ...]] = [(cur,)]
    for _ in range(len(ALL_STATES)):
        found = [p for p in paths if p[-1] == new and valid_path(p)]
        if found:
            firsts = {p[1] for p in found}
            assert len(firsts) == 1, f"ambiguous shortest paths {found}"
            return firsts.pop()
        paths = [p + (b,) for p in paths for (a, b) in arcs if a == p[-1] and b not in p]
    return None


def model_next(flags: int, cur: int, new: int) -> Optional[int]:
    try:
        return vfio_mig_get_next_state(flags, cur, new)
    except KernelError as e:
        assert e.errno == errno.EINVAL
        return None


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: f"flags{f:#x}")
def test_next_state_every_pair_matches_independent_formulation(flags: int) -> None:
    """SEMANTICS 7.2: all 64 (cur, new) pairs, for each of the 8 flag combinations, incl. EINVAL cases."""
    mismatches = []
    for cur, new in itertools.product(ALL_STATES, ALL_STATES):
        want, got = expected_next(flags, cur, new), model_next(flags, cur, new)
        if want != got:
            mismatches.append(f"{NAMES[cur]}->{NAMES[new]}: want {want} got {got}")
    assert not mismatches


def test_next_state_table_counts() -> None:
    """SEMANTICS 7.2: the number of valid (cur, new) pairs per flag set (4, 5, 5 and 7 states, ERROR excluded)."""
    counts = {f: sum(model_next(f, c, n) is not None for c in ALL_STATES for n in ALL_STATES) for f in FLAG_SETS}
    # n states, all pairs valid except STOP_COPY -> PRE_COPY* (1 with PRE_COPY, 2 with both).
    assert counts == {0: 0, 2: 0, 4: 0, 6: 0, 1: 16, 3: 25, 5: 25 - 1, 7: 49 - 2}


@pytest.mark.parametrize("flags", [1, 3, 5, 7])
def test_error_is_never_a_target_nor_a_start(flags: int) -> None:
    """SEMANTICS 7.1: ERROR cannot be requested (EINVAL) and nothing leaves it but a reset."""
    for state in ALL_STATES:
        assert model_next(flags, state, E) is None
        assert model_next(flags, E, state) is None


@pytest.mark.parametrize("bad", [8, 9, 0xFF, 0xFFFFFFFF])
def test_out_of_range_state_values_einval(bad: int) -> None:
    """SEMANTICS 7.2: a state value >= VFIO_DEVICE_STATE_NR is EINVAL as a target or a current state."""
    with pytest.raises(KernelError) as e:
        vfio_mig_get_next_state(7, R, bad)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        vfio_mig_get_next_state(7, bad, R)
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("target", [PC, PP])
def test_stop_copy_to_pre_copy_blocked_and_terminates(target: int) -> None:
    """Pitfall 7: STOP_COPY -> PRE_COPY* resolves to ERROR -> EINVAL (the kernel looped forever before the
    2026 fix that stops the skip loop at ERROR)."""
    with pytest.raises(KernelError) as e:
        vfio_mig_get_next_state(7, SC, target)
    assert e.value.errno == errno.EINVAL


def test_unsupported_state_skipped_without_p2p() -> None:
    """SEMANTICS 7.2 example: without P2P, RUNNING -> STOP is one arc (RUNNING_P2P is skipped)."""
    assert vfio_mig_get_next_state(STOP_COPY_F, R, S) == S
    assert vfio_mig_get_next_state(STOP_COPY_F | P2P_F, R, S) == RP
    assert vfio_mig_get_next_state(STOP_COPY_F | PRE_F, PC, SC) == SC
    assert vfio_mig_get_next_state(7, PC, SC) == PP


def walk(flags: int, cur: int, new: int) -> list[int]:
    path = [cur]
    while path[-1] != new:
        path.append(vfio_mig_get_next_state(flags, path[-1], new))
        assert len(path) <= len(ALL_STATES)
    return path


# The combination transitions the kernel's comment in vfio_mig_get_next_state lists (all features).
KERNEL_COMMENT_PATHS = [
    (PC, PP, SC), (PC, R, RP), (PC, R, RP, S), (PC, R, RP, S, RS), (PP, RP, R), (PP, RP, S),
    (PP, RP, S, RS), (RS, S, RP), (RS, S, RP, PP), (RS, S, RP, R), (RS, S, RP, R, PC), (RS, S, SC),
    (R, RP, PP), (R, RP, S), (R, RP, S, RS), (R, RP, S, SC), (RP, R, PC), (RP, S, RS), (RP, S, SC),
    (S, RP, PP), (S, RP, R), (S, RP, R, PC), (SC, S, RS), (SC, S, RP), (SC, S, RP, R),
]


@pytest.mark.parametrize("path", KERNEL_COMMENT_PATHS, ids=lambda p: "->".join(NAMES[s] for s in p))
def test_combination_paths_from_kernel_comment(path: tuple[int, ...]) -> None:
    """SEMANTICS 7.2: stepping the table reproduces each multi-arc path vfio_main.c documents."""
    assert tuple(walk(7, path[0], path[-1])) == path


@pytest.mark.parametrize("flags", [1, 3, 5, 7])
def test_every_walk_uses_only_driver_arcs(flags: int) -> None:
    """SEMANTICS 7.1: the arcs a driver sees are exactly the direct arcs it must implement."""
    arcs = driver_arcs(flags)
    seen: set[tuple[int, int]] = set()
    for cur, new in itertools.product(sorted(supported_states(flags)), repeat=2):
        if cur == SC and new in (PC, PP):
            continue
        path = walk(flags, cur, new)
        seen |= set(zip(path, path[1:]))
    assert seen <= arcs
    assert seen == arcs  # and every arc is used by some request


def test_table_constants_shape() -> None:
    """The reusable table: 8x8, ERROR row all ERROR, the diagonal is 'stay', ERROR needs every flag."""
    assert len(MIG_NEXT_STATE) == 8 and all(len(row) == 8 for row in MIG_NEXT_STATE)
    assert MIG_NEXT_STATE[E] == (E,) * 8
    assert all(MIG_NEXT_STATE[s][s] == s for s in ALL_STATES)
    assert STATE_FLAGS[E] & 0x7 == 0x7 and STATE_FLAGS[PP] == 0x7 and STATE_FLAGS[R] == STOP_COPY_F


class FakeDriver:
    """A driver whose every arc succeeds; ``file_on`` makes one arc return a data file."""

    def __init__(self, flags: int, file_on: Optional[tuple[int, int]] = None) -> None:
        self.flags = flags
        self.state = R
        self.file_on = file_on
        self.arcs: list[tuple[int, int]] = []

    def migration_get_state(self) -> int:
        return self.state

    def migration_get_data_size(self) -> int:
        return 0

    def migration_set_state(self, new: int) -> Optional[File]:
        self.arcs.append((self.state, new))
        arc, self.state = (self.state, new), new
        return File() if arc == self.file_on else None


def test_driver_loop_data_file_on_interior_arc_einval() -> None:
    """SEMANTICS 7.2: a data file from a non-final arc is a driver bug -> EINVAL (mtty WARNs)."""
    drv = FakeDriver(7, file_on=(R, RP))
    with pytest.raises(KernelError) as e:
        vfio_mig_set_device_state(drv, S)
    assert e.value.errno == errno.EINVAL
    assert drv.arcs == [(R, RP)]


def test_driver_loop_file_from_final_arc_returned() -> None:
    """SEMANTICS 7.2: the file of the last arc is what the ioctl turns into data_fd."""
    drv = FakeDriver(7, file_on=(S, SC))
    assert isinstance(vfio_mig_set_device_state(drv, SC), File)
    assert drv.arcs == [(R, RP), (RP, S), (S, SC)]


class PreCopyDriver:
    def migration_get_state(self) -> int:
        return PC


class ReinitFile(MigrationFile):
    def precopy_sizes(self) -> tuple[int, int, bool]:
        return 100, 7, True


@pytest.mark.parametrize("opted_in,flags_in,flags_out", [(False, 0x40, 0x40), (True, 0x40, uv.VFIO_PRECOPY_INFO_REINIT)])
def test_precopy_reinit_only_after_opt_in(opted_in: bool, flags_in: int, flags_out: int) -> None:
    """uapi 7.3: REINIT is reported only after MIG_PRECOPY_INFOv2; before it the caller's flags echo back."""
    f = ReinitFile(PreCopyDriver(), writable=False)
    f.vdev = SimpleNamespace(precopy_info_v2=opted_in)  # type: ignore[assignment]
    info = uv.vfio_precopy_info(argsz=24, flags=flags_in)
    arg = UserArg(buf=bytearray(bytes(info)))
    f.ioctl(None, uv.VFIO_MIG_GET_PRECOPY_INFO, arg)  # type: ignore[arg-type]
    out = uv.vfio_precopy_info.from_buffer_copy(bytes(arg.buf or b""))
    assert (out.flags, out.initial_bytes, out.dirty_bytes) == (flags_out, 100, 7)
