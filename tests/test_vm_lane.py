"""The VM lane from the host: boot a real Linux in QEMU once and run the real-kernel tests inside it.

Deselected by default (marker ``vm``); run it with ``python3 -m pytest -m vm tests/test_vm_lane.py``.
The kernel is ``PYVFIO_VM_KERNEL`` (+ ``PYVFIO_VM_MODULES``) when set, else Debian's stock 6.12.  The
guest's own pytest output is attached to any failure; its logs stay in the run folder printed there.
``python3 -m tests.vm`` does the same from the command line (and is what ``.ci/run`` calls).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from vm.harness import VmResult, default_test_files, run_tests

pytestmark = pytest.mark.vm


@pytest.fixture(scope="session")
def vm_run() -> Iterator[VmResult]:
    """One boot for the session: pytest on every ``tests/test_real_kernel_*.py`` in the guest."""
    result = run_tests(default_test_files())
    if result.status == "skipped":
        pytest.skip(f"VM lane skipped: {result.reason}")
    yield result


def _details(result: VmResult, lines: int = 150) -> str:
    out = "\n".join(result.output.splitlines()[-lines:])
    parts = [result.summary(), "--- guest output (tail):", out]
    if result.status == "error":
        parts += ["--- guest console (tail):", result.console_tail]
    return "\n".join(parts)


def test_vm_booted_and_reported(vm_run: VmResult) -> None:
    assert vm_run.status in ("passed", "failed"), _details(vm_run)
    assert vm_run.facts.get("edu"), "no edu device was bound to vfio-pci in the guest\n" + _details(vm_run)


def test_guest_pytest_passed(vm_run: VmResult) -> None:
    assert vm_run.counts is not None and vm_run.counts.total > 0, "the guest ran no test\n" + _details(vm_run)
    assert vm_run.status == "passed", _details(vm_run)
    assert vm_run.counts.failed == 0 and vm_run.counts.errors == 0, _details(vm_run)
