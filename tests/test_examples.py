"""Every example in ``examples/`` runs green on the simulated kernel, and every ioctl has one.

The examples are programs for a learner (one per ioctl of vfio.h and
iommufd.h, see ``examples/README.md``).  Each is run here the way
``python3 examples/<name>.py`` runs it, but in this process (``runpy``) so
the 56 of them take well under a second each: ``sys.argv`` is the script
alone, so ``target()`` builds a fresh simulated machine.  Each must exit 0,
name its ioctl in its first line, end with one ``result:`` line, and leave no
descriptor behind.  Two of them also run as real subprocesses, to keep the
``python3 examples/x.py`` path itself honest.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pyvfio.uapi import iommufd, vfio

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
IOCTL_NAMES = [d.name for d in (*vfio.IOCTLS, *iommufd.IOCTLS)]
RESULT = re.compile(r"^result: (ran|kernel answered (E[A-Z0-9]+)|reference only|cannot run here)\b")


def example_path(name: str) -> Path:
    return EXAMPLES / f"{name.lower()}.py"


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def examples_importable() -> Iterator[None]:
    """``from _common import ...`` resolves as it does when a script runs from examples/."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLES))


def run_example(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    argv = sys.argv
    sys.argv = [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
        code: object = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    return (code if isinstance(code, int) else 1 if code else 0), out


def test_one_example_per_ioctl() -> None:
    assert len(IOCTL_NAMES) == 56 == len(set(IOCTL_NAMES))
    missing = [n for n in IOCTL_NAMES if not example_path(n).is_file()]
    assert not missing, f"ioctls without an example: {missing}"
    programs = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert programs == {n.lower() for n in IOCTL_NAMES}, programs ^ {n.lower() for n in IOCTL_NAMES}


def test_readme_indexes_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for name in IOCTL_NAMES:
        assert f"[{name.lower()}.py]({name.lower()}.py)" in readme, f"README does not index {name}"
        assert f"`{name}`" in readme, f"README does not name {name}"


@pytest.mark.parametrize("name", IOCTL_NAMES)
def test_example_runs_on_the_simulated_kernel(name: str, capsys: pytest.CaptureFixture[str],
                                              examples_importable: None) -> None:
    before = open_fds()
    code, out = run_example(example_path(name), capsys)
    assert code == 0, f"{name} exited {code}:\n{out}"
    lines = out.strip().splitlines()
    request = getattr(vfio, name, None) or getattr(iommufd, name)
    assert lines and lines[0].startswith(f"{name} (request {request:#x})"), lines[:1]
    results = [line for line in lines if line.startswith("result:")]
    assert len(results) == 1 and lines[-1] == results[0], f"{name}: expected one closing result line:\n{out}"
    m = RESULT.match(results[0])
    assert m, results[0]
    assert m.group(1) != "cannot run here", f"{name} must run on the simulated kernel: {results[0]}"
    assert "Traceback" not in out
    assert open_fds() == before, f"{name} left descriptors open"


@pytest.mark.parametrize("name", ["vfio_iommu_map_dma", "iommu_ioas_map"])
def test_example_runs_as_a_script(name: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this checkout's pyvfio, not an installed one
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith(name.upper())
    assert r.stdout.splitlines()[-1] == "result: ran (mapped; the device did DMA through the mapping)"


def test_help_names_the_device_option() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(EXAMPLES / "vfio_get_api_version.py"), "--help"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and "--device" in r.stdout and "VFIO_GET_API_VERSION" in r.stdout


def test_unknown_real_device_is_a_clear_error(capsys: pytest.CaptureFixture[str], examples_importable: None) -> None:
    code, _ = run_example(EXAMPLES / "vfio_get_api_version.py", capsys, "--device", "0000:ff:1f.7")
    assert code == 1  # SystemExit with a message (argparse-style): nothing half-done
