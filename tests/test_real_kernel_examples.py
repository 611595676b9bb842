"""The ioctl examples (``examples/``) against the real kernel, with ``--device <edu address>``.

Runs in the VM lane (``python3 -m tests.vm``): the guest binds QEMU's edu to
vfio-pci and the ``edu`` fixture finds it.  Each example runs in this process
(``runpy``, as ``tests/test_examples.py`` does on the simulated kernel) and
must exit 0 with one ``result:`` line -- on real hardware "cannot run here"
is a legitimate result (no migratable device, no dirty tracking in QEMU's
VT-d...).  The examples whose simulated device is mtty get an mtty mdev
when the guest has the mtty sample loaded.  Every result line is appended to
``$PYVFIO_VM_OUT/examples-results.txt`` (their whole output to ``examples-output.txt``) so a lane
run leaves the table behind.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from conftest import EduDevice
from pyvfio.uapi import iommufd, vfio

pytestmark = pytest.mark.realkernel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IOCTL_NAMES = [d.name for d in (*vfio.IOCTLS, *iommufd.IOCTLS)]
MTTY_EXAMPLES = {"VFIO_DEVICE_FEATURE", "VFIO_MIG_GET_PRECOPY_INFO"}
MTTY_TYPES = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
RESULT = re.compile(r"^result: (ran|kernel answered E[A-Z0-9]+|reference only|cannot run here)\b")


@pytest.fixture(scope="module")
def mtty() -> Iterator[Optional[str]]:
    """A fresh mtty mdev's UUID when the mtty sample is loaded, else None."""
    types = sorted(MTTY_TYPES.iterdir()) if MTTY_TYPES.is_dir() else []
    if not types:
        yield None
        return
    name = str(uuid.uuid4())
    try:
        (types[0] / "create").write_text(name)
    except OSError:  # no instance left: the migration examples then say they cannot run
        yield None
        return
    dev = Path("/sys/bus/mdev/devices") / name
    deadline = time.monotonic() + 5
    while not (dev / "iommu_group").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    group = os.path.basename(os.readlink(dev / "iommu_group"))
    while not os.path.exists(f"/dev/vfio/{group}") and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield name
    finally:
        (dev / "remove").write_text("1")


def record(line: str, output: str) -> None:
    """Append the result line (and the whole output) to the lane's run folder, when there is one."""
    out = os.environ.get("PYVFIO_VM_OUT")
    if out:
        with open(Path(out) / "examples-results.txt", "a") as f:
            f.write(line + "\n")
        with open(Path(out) / "examples-output.txt", "a") as f:
            f.write(output + "\n")


@pytest.mark.parametrize("name", IOCTL_NAMES)
def test_example_on_the_real_kernel(name: str, edu: EduDevice, mtty: Optional[str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    device = mtty if name in MTTY_EXAMPLES and mtty else edu.address
    path = EXAMPLES / f"{name.lower()}.py"
    sys.path.insert(0, str(EXAMPLES))
    argv, sys.argv = sys.argv, [str(path), "--device", device]
    code: object = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
        sys.path.remove(str(EXAMPLES))
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    results = [line for line in lines if line.startswith("result:")]
    record(f"{name} [{'mtty' if device == mtty else 'edu'}]: {results[-1] if results else f'exit {code}'}", out)
    assert code in (0, None), f"{name} exited {code!r}:\n{out}"
    assert lines and lines[0].startswith(name), lines[:1]
    assert len(results) == 1 and RESULT.match(results[0]), out
