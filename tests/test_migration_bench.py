"""The migration benchmark script's parts work (figures themselves come from running it, not from tests)."""

from __future__ import annotations

import shutil

import pytest

from pyvfio.migration import bench
from pyvfio.migration.dirty import count_dirty, dirty_page_runs


def test_bitmaps_have_the_asked_dirty_fraction() -> None:
    uniform = bench.make_bitmap(1 << 16, 0.01)
    clustered = bench.make_clustered_bitmap(1 << 16, 0.01, mean_run=32)
    want = (1 << 16) * 8 // 100
    assert count_dirty(uniform) == count_dirty(clustered) == want
    assert len(dirty_page_runs(clustered)) < len(dirty_page_runs(uniform)) // 8  # runs, not scattered pages


@pytest.mark.parametrize("clustered", [False, True])
def test_bench_scan_small_checks_c_against_python(clustered: bool) -> None:
    r = bench.bench_scan(1 << 16, 0.01, repeat=1, clustered=clustered)
    assert r["runs"] > 0 and r["python_s"] > 0 and r["floor_compress_s"] > 0
    if shutil.which("cc") or shutil.which("gcc"):
        assert r["c_s"] is not None and r["ratio"] > 0  # bench_scan raised if C and Python disagreed
    else:
        assert r["c_s"] is None


def test_bench_data_path_small_all_modes() -> None:
    r = bench.bench_data_path(4 << 20, 1 << 20, pairs=1)
    assert set(r["runs_MBps"]) == {"raw", "checked", "unchecked"}
    assert all(len(v) == 1 and v[0] > 0 for v in r["runs_MBps"].values())
    assert r["ratio"] > 0 and r["unchecked_ratio"] > 0 and r["crc32_MBps"] > 0
