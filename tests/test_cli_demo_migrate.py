"""``python -m pyvfio demo migrate``: the two-process live migration ends with one JSON line that says it worked."""

from __future__ import annotations

import json

import pytest

from pyvfio.cli import main


@pytest.mark.parametrize("precopy", ["--precopy", "--no-precopy"])
def test_demo_migrate_json_line(capsys: pytest.CaptureFixture[str], precopy: str) -> None:
    code = main(["demo", "migrate", precopy, "--pages", "16", "--rounds", "3"])
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[-1])
    assert code == 0
    assert result["state_ok"] is True and result["memory_ok"] is True and result["config_ok"] is True \
        and result["irq_ok"] is True
    assert result["bytes_device"] > 0 and result["bytes_memory"] >= 16 * 4096
    assert (result["precopy_rounds"] > 0) == (precopy == "--precopy")
    assert result["downtime_ms"] > 0


def test_demo_migrate_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "migrate", "--pages", "0"]) == 2
    assert "--pages and --rounds > 0" in capsys.readouterr().err
