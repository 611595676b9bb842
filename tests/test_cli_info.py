"""``python -m pyvfio info`` and ``demo``: the report, the tour, and exit status 2 with a clear message on bad names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyvfio.cli import main

REPO = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_defaults_to_the_simulated_edu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "0000:00:03.0 [1234:11e8] class 00ff00 (simulated edu)"
    assert "opened through the cdev /dev/vfio/devices/vfio0 bound to /dev/iommu" in out
    assert "info flags: PCI; 9 regions, 5 IRQ indexes" in out
    assert "0 BAR0      0x100000 bytes at fd offset 0x0, READ|WRITE|MMAP" in out
    assert "7 CONFIG       0x100 bytes at fd offset 0x70000000000, READ|WRITE" in out
    assert "0 INTx   count 1, EVENTFD|MASKABLE|AUTOMASKED" in out
    assert "3 ERR    count 1, EVENTFD|NORESIZE" in out  # every PCI device has ERR since 7.3.4
    assert "migration: not supported" in out
    assert "IOMMU: iommufd" in out and "IOVA ranges: 0x0-0xfedfffff, 0xfef00000-0x7fffffffff (alignment 0x1000)" in out
    assert "hardware: INTEL_VTD, capabilities PCI_ATS_NOT_SUPPORTED" in out  # QEMU intel-iommu, as on 7.3.4


def test_info_mtty_shows_migration_and_type1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "mtty", "--backend", "type1")
    assert code == 0
    assert "[4348:3253] class 070002 (simulated mtty)" in out
    assert "group /dev/vfio/0 in a type1 container" in out
    assert "migration: STOP_COPY|P2P|PRE_COPY" in out and "device state: RUNNING" in out
    assert "stop-copy data: about" in out
    assert "MIG_DEVICE_STATE             GET/SET" in out
    assert "IOMMU: type1v2 container" in out and "IOVA_RANGE: 0x0-0xfedfffff" in out and "DMA_AVAIL" in out


def test_info_generic_pci_with_msix_caps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "pci")
    assert code == 0 and "(simulated pci)" in out and "1 BAR1    not implemented" in out


@pytest.mark.parametrize("name, words", [
    ("bogus", ["'bogus' is neither a simulated device kind (edu, mtty, pci) nor a PCI address"]),
    ("0000:00:1f.7", ["0000:00:1f.7"]),
])
def test_info_bad_names_exit_2(capsys: pytest.CaptureFixture[str], name: str, words: list[str]) -> None:
    code, out, err = run(capsys, "info", name)
    assert code == 2 and out == ""
    assert err.startswith("pyvfio info: ")
    for w in words:
        assert w in err


def test_demo_tells_the_tour_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0
    for step in ("[find] edu is 0000:00:03.0", "[open] opened /dev/vfio/devices/vfio0, bound it to /dev/iommu",
                 "ident register reads 0x010000ed", "identical", "eventfd counted 1 interrupt(s)",
                 "interrupt status was 0x100", "INTx is now masked", "no signal, as it should be",
                 "signalled again at once", "nothing left open"):
        assert step in out, step


def test_demo_on_type1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--backend", "type1")
    assert code == 0 and "chose the type1v2 IOMMU" in out and "identical" in out


def test_demo_as_a_program_is_quick() -> None:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pyvfio", "demo"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("find, open, map, DMA, interrupts, close.")
    assert elapsed < 2.0, f"the demo took {elapsed:.2f} s"
