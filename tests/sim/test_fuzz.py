"""A few thousand seeded random calls: only OSError escapes, invariants hold after each, nothing leaks.

The 100,000-call run is a script (``python -m pyvfio.sim.fuzz --calls 100000``); this keeps a slice of it in
every test run so a regression in any handler's argument checking shows up at once.
"""

from __future__ import annotations

import pytest

from pyvfio.sim.fuzz import run


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_calls_only_raise_oserror_and_keep_invariants(seed: int) -> None:
    fz = run(1200, seed)
    assert fz.calls == 1200
    assert 0 < fz.errors < fz.calls  # both paths exercised
    assert len(fz.succeeded) >= 8  # the calls reach past argument checking into real state
