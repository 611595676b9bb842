"""Test-wide setup: make the tests folder importable for its small shared helpers.

Kernel-parametrised fixtures: ``kernel`` is the simulated kernel (``pyvfio.sim.Kernel()``, a fresh
machine per test) by default and the running Linux (``pyvfio.kernel.Linux()``) when
``PYVFIO_KERNEL=real`` -- which the VM lane sets inside its QEMU guest (``python3 -m tests.vm``).  ``edu``
is QEMU's edu DMA device on that kernel: plugged into the simulated machine, or found in sysfs bound to
vfio-pci.  A test written against these two fixtures and the syscall surface runs unchanged on both.
With ``PYVFIO_KERNEL=sim-server`` ``kernel`` is a :class:`pyvfio.sim.remote.RemoteKernel` on one simulated
kernel server process for the session (``python -m pyvfio.sim serve``), reset to a fresh machine per test;
each test must leave no file open in the server.

Markers: ``realkernel`` (only meaningful on a real kernel: skipped on the simulated one) and ``vm`` (boots
the VM lane from the host: deselected unless ``-m`` names it).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

sys.path.insert(0, str(Path(__file__).parent))

EDU_VENDOR, EDU_DEVICE = 0x1234, 0x11E8


def require_linux(kernel: Any, version: tuple[int, int], why: str) -> None:
    """Skip on a real kernel older than ``version``: behaviour the simulated kernel models as of that release.

    The simulated kernel follows Linux 7.3; the VM lane's fallback kernel (Debian 6.12) predates some rules.
    The reason starts "needs Linux X.Y", which the differential report counts as a documented gap.
    """
    from pyvfio.kernel import Linux

    if not isinstance(kernel, Linux):
        return
    release = os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if m and (int(m.group(1)), int(m.group(2))) < version:
        pytest.skip(f"needs Linux {version[0]}.{version[1]}: {why} (running {release})")


def real_kernel_requested() -> bool:
    """True when the tests should run on the running Linux (``PYVFIO_KERNEL=real``)."""
    return os.environ.get("PYVFIO_KERNEL", "sim").lower() in ("real", "linux")


def real_vfio_missing() -> Optional[str]:
    """Why the running kernel cannot serve the real-kernel tests, or None when it can."""
    if not os.path.exists("/dev/vfio/vfio"):
        return ("PYVFIO_KERNEL=real but this machine has no /dev/vfio/vfio: run the real-kernel tests in the "
                "VM lane (python3 -m tests.vm)")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the VM lane boots a guest: run it only when asked for by marker expression (-m vm)
    markexpr = config.getoption("markexpr", "") or ""
    if "vm" not in re.findall(r"[\w-]+", markexpr):
        deselected = [i for i in items if i.get_closest_marker("vm") is not None]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [i for i in items if i.get_closest_marker("vm") is None]
    real = real_kernel_requested()
    missing = real_vfio_missing() if real else None
    for item in items:
        if item.get_closest_marker("realkernel") is not None and not real:
            item.add_marker(pytest.mark.skip(
                reason="needs a real VFIO kernel: runs in the VM lane (python3 -m tests.vm, PYVFIO_KERNEL=real)"))
        elif missing and (_uses_kernel_fixture(item) or item.get_closest_marker("realkernel") is not None):
            item.add_marker(pytest.mark.skip(reason=missing))


def _uses_kernel_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` gets ``kernel`` or ``edu`` from this file (a test module may define its own)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in ("kernel", "edu"):
        defs = info.name2fixturedefs.get(name, ())
        if defs and getattr(defs[-1].func, "__module__", None) == __name__:
            return True
    return False


def sim_server_requested() -> bool:
    """True when ``kernel`` should be the simulated kernel in a server process (``PYVFIO_KERNEL=sim-server``)."""
    return os.environ.get("PYVFIO_KERNEL", "sim").lower() == "sim-server"


@pytest.fixture(scope="session")
def sim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``python -m pyvfio.sim serve`` process for the session (no devices; tests add their own)."""
    from pyvfio.sim.remote import start_server

    handle = start_server(str(tmp_path_factory.mktemp("sim-server") / "kernel.sock"), devices=())
    yield handle
    handle.stop()


@pytest.fixture
def kernel(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The kernel under test: ``pyvfio.sim.Kernel()`` by default, ``pyvfio.kernel.Linux()`` with PYVFIO_KERNEL=real,
    a :class:`~pyvfio.sim.remote.RemoteKernel` on a fresh machine with PYVFIO_KERNEL=sim-server."""
    if sim_server_requested():
        from pyvfio.sim.remote import RemoteKernel

        remote = RemoteKernel(request.getfixturevalue("sim_server").path)
        remote.reset()
        yield remote
        left = remote.stats()["files"]
        remote.reset()
        remote.shutdown()
        assert left == 0, f"the test left {left} files open in the simulated kernel server"
        return
    if real_kernel_requested():
        missing = real_vfio_missing()
        if missing:
            pytest.skip(missing)
        from pyvfio.kernel import Linux

        yield Linux()
        return
    from pyvfio.sim import Kernel

    yield Kernel()


@dataclasses.dataclass(frozen=True)
class EduDevice:
    """Where QEMU's edu device (1234:11e8) is, as a VFIO user sees it."""

    address: str  # PCI address, the name VFIO_GROUP_GET_DEVICE_FD takes
    group: int  # IOMMU group: /dev/vfio/<group>
    cdev: Optional[str]  # /dev/vfio/devices/vfioN, None without VFIO_DEVICE_CDEV


def find_real_edu() -> Optional[EduDevice]:
    """The first edu device bound to vfio-pci, from sysfs."""
    root = Path("/sys/bus/pci/devices")
    if not root.is_dir():
        return None
    for dev in sorted(root.iterdir()):
        try:
            ids = (int((dev / "vendor").read_text(), 16), int((dev / "device").read_text(), 16))
            driver = os.path.basename(os.readlink(dev / "driver")) if (dev / "driver").exists() else ""
        except (OSError, ValueError):
            continue
        if ids != (EDU_VENDOR, EDU_DEVICE) or driver != "vfio-pci":
            continue
        group = int(os.path.basename(os.readlink(dev / "iommu_group")))
        cdevs = sorted((dev / "vfio-dev").glob("vfio*")) if (dev / "vfio-dev").is_dir() else []
        cdev = f"/dev/vfio/devices/{cdevs[0].name}" if cdevs else None
        return EduDevice(address=dev.name, group=group,
                         cdev=cdev if cdev is not None and os.path.exists(cdev) else None)
    return None


@pytest.fixture
def edu(kernel: Any) -> EduDevice:
    """QEMU's edu device on ``kernel``: plugged into the simulated machine, or found bound to vfio-pci."""
    if real_kernel_requested():
        found = find_real_edu()
        if found is None:
            pytest.skip("no edu device (1234:11e8) bound to vfio-pci on this machine: the VM lane binds one "
                        "(QEMU -device edu)")
        return found
    dev = kernel.add_device("edu")
    return EduDevice(address=dev.address, group=int(dev.group_id), cdev=dev.cdev)
