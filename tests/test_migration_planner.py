"""The user-side planner (pyvfio.migration.fsm) against the simulated kernel's driver.

For every combination of the optional P2P and PRE_COPY capabilities and every
(current, requested) pair, the planned arcs must be exactly the arcs the mtty
driver is asked for by a real SET, and every EINVAL the kernel gives must be
predicted (SEMANTICS 7.1, 7.2).
"""

from __future__ import annotations

import errno
import itertools

import pytest

from pyvfio.migration import MigrationDevice, MigrationPlanError, explain, plan, supported_states
from pyvfio.migration.fsm import (
    ERROR, PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, RUNNING_P2P, STOP, STOP_COPY, Arc, opens_session,
    state_value,
)
from pyvfio.sim import Kernel
from pyvfio.uapi import vfio as uv

from test_migration_device import open_mtty

SC_F, P2P_F, PC_F = uv.VFIO_MIGRATION_STOP_COPY, uv.VFIO_MIGRATION_P2P, uv.VFIO_MIGRATION_PRE_COPY
FLAG_SETS = [SC_F, SC_F | P2P_F, SC_F | PC_F, SC_F | P2P_F | PC_F]
ALL_STATES = range(8)


def test_supported_states_per_flags() -> None:
    """SEMANTICS 7.1: STOP_COPY gives 4 states; P2P adds RUNNING_P2P; PRE_COPY adds PRE_COPY; both add PP."""
    assert supported_states(SC_F) == [STOP, RUNNING, STOP_COPY, RESUMING]
    assert supported_states(SC_F | P2P_F) == [STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P]
    assert supported_states(SC_F | PC_F) == [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY]
    assert supported_states(SC_F | P2P_F | PC_F) == list(range(1, 8))


def _drive_to(mdev: MigrationDevice, target: int, blob: bytes) -> bool:
    """Bring the device to ``target``; False if it does not have it.  RESUMING gets a valid state to load."""
    if target not in supported_states(mdev.flags):
        return False
    mdev.abort()
    if target == RUNNING:
        return True
    mdev.set_state(target)
    if target == RESUMING:
        mdev.write_data(blob)
    return True


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: f"flags{f:#x}")
def test_plan_matches_driver_arcs_for_every_pair(flags: int) -> None:
    """Every supported cur x every requested state: plan == the arcs mtty sees, EINVAL predicted exactly."""
    k = Kernel()
    h = open_mtty(k, migration_flags=flags)
    mig = h.vdev.ops.pci.mig_ops
    h.mig.set_state(STOP_COPY)
    blob = h.mig.read_available()
    checked = 0
    for cur, new in itertools.product(ALL_STATES, ALL_STATES):
        if not _drive_to(h.mig, cur, blob):
            if cur == new:  # the kernel's loop: asking for the current state is a no-op, even ERROR
                assert plan(flags, cur, new) == []
            else:
                with pytest.raises(MigrationPlanError):
                    plan(flags, cur, new)
            continue
        try:
            arcs = plan(flags, cur, new)
        except MigrationPlanError:
            with pytest.raises(OSError) as e:
                h.mig._set(new)
            assert e.value.errno == errno.EINVAL
            assert h.mig.state == cur  # refused before any arc
            checked += 1
            continue
        del mig.arcs[:]
        data_fd = h.mig._set(new)
        assert [(a.cur, a.new) for a in arcs] == mig.arcs, (cur, new)
        assert h.mig.state == new
        assert (data_fd >= 0) == bool(arcs and arcs[-1].opens_session), (cur, new)
        if data_fd >= 0:
            k.close(data_fd)
        checked += 1
    h.close()
    assert checked == len(supported_states(flags)) * 8


def test_plan_error_is_einval_and_names_states() -> None:
    with pytest.raises(MigrationPlanError) as e:
        plan(SC_F | P2P_F | PC_F, STOP_COPY, PRE_COPY)
    assert e.value.errno == errno.EINVAL
    assert "STOP_COPY -> PRE_COPY" in str(e.value)
    with pytest.raises(MigrationPlanError):
        plan(SC_F, RUNNING, ERROR)  # ERROR can never be requested
    with pytest.raises(MigrationPlanError):
        plan(SC_F, ERROR, RUNNING)  # only a reset leaves ERROR
    with pytest.raises(MigrationPlanError):
        plan(SC_F, RUNNING, PRE_COPY)  # not a state of this device


def test_skipped_states_give_direct_arcs() -> None:
    """SEMANTICS 7.2 example: without P2P, RUNNING -> STOP is one arc; with it, two via RUNNING_P2P."""
    assert plan(SC_F, RUNNING, STOP) == [Arc(RUNNING, STOP)]
    assert plan(SC_F | P2P_F, RUNNING, STOP) == [Arc(RUNNING, RUNNING_P2P), Arc(RUNNING_P2P, STOP)]
    assert plan(SC_F | PC_F, PRE_COPY, STOP_COPY) == [Arc(PRE_COPY, STOP_COPY)]
    assert plan(SC_F | P2P_F | PC_F, PRE_COPY, STOP_COPY) == [Arc(PRE_COPY, PRE_COPY_P2P),
                                                               Arc(PRE_COPY_P2P, STOP_COPY)]
    assert plan(SC_F, RUNNING, RUNNING) == []


def test_session_rules() -> None:
    """SEMANTICS 7.1: sessions open entering the saving group or on STOP -> RESUMING, nowhere else."""
    assert opens_session(RUNNING, PRE_COPY) and opens_session(STOP, STOP_COPY) and opens_session(STOP, RESUMING)
    assert opens_session(RUNNING_P2P, PRE_COPY_P2P)
    assert not opens_session(PRE_COPY, STOP_COPY) and not opens_session(PRE_COPY_P2P, STOP_COPY)
    assert Arc(STOP_COPY, STOP).ends_session and Arc(RESUMING, STOP).ends_session
    assert Arc(PRE_COPY, RUNNING).ends_session and not Arc(PRE_COPY, PRE_COPY_P2P).ends_session


def test_explain_words() -> None:
    text = explain(SC_F | P2P_F | PC_F, RUNNING, STOP_COPY)
    assert "3 arc(s)" in text and "RUNNING -> RUNNING_P2P" in text and "returns a data_fd" in text
    assert "opens a data session" in text
    assert "refused with EINVAL" in explain(SC_F, STOP_COPY, PRE_COPY)
    assert "nothing to do" in explain(SC_F, STOP, STOP)
    assert "same data_fd" in explain(SC_F | P2P_F | PC_F, PRE_COPY, STOP_COPY)


def test_state_value_names() -> None:
    assert state_value("stop_copy") == STOP_COPY
    assert state_value("VFIO_DEVICE_STATE_PRE_COPY_P2P") == PRE_COPY_P2P
    assert state_value(3) == 3
    with pytest.raises(ValueError, match="unknown migration state"):
        state_value("PAUSED")
