"""pyvfio.discovery: finding a device by PCI address (sysfs) or by name (simulated), and the set-up errors.

The sysfs checks run against a small fake sysfs/dev tree built in a temporary folder, one mistake at a
time, so every "what to do" message is exercised without a real machine; the simulated-kernel lookups
and ``open_device`` run on the fixtures.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import EduDevice
from pyvfio import discovery
from pyvfio.discovery import (
    DeviceLocation, find_device, iommufd_available, list_devices, normalize_pci_address, open_device,
)
from pyvfio.errors import VfioError


class FakeSys:
    """A minimal sysfs + /dev: PCI devices with a driver link, IOMMU groups, cdevs and VFIO nodes."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys"
        self.dev = root / "dev"
        (self.sys / "bus/pci/devices").mkdir(parents=True)
        (self.sys / "bus/pci/drivers").mkdir(parents=True)
        (self.dev / "vfio/devices").mkdir(parents=True)

    def device(self, addr: str, *, driver: Optional[str] = "vfio-pci", group: Optional[int] = 7,
               cdev: Optional[int] = 0, ids: tuple[int, int] = (0x1234, 0x11E8), node: bool = True,
               group_name: str = "") -> None:
        d = self.sys / "bus/pci/devices" / addr
        d.mkdir()
        (d / "vendor").write_text(f"{ids[0]:#06x}\n")
        (d / "device").write_text(f"{ids[1]:#06x}\n")
        if driver:
            drv = self.sys / "bus/pci/drivers" / driver
            drv.mkdir(exist_ok=True)
            (d / "driver").symlink_to(drv)
        if group is not None:
            g = self.sys / "kernel/iommu_groups" / str(group)
            (g / "devices").mkdir(parents=True, exist_ok=True)
            if group_name:
                (g / "name").write_text(group_name + "\n")
            (g / "devices" / addr).symlink_to(d)
            (d / "iommu_group").symlink_to(g)
            if node:
                prefix = "noiommu-" if group_name == "vfio-noiommu" else ""
                (self.dev / "vfio" / f"{prefix}{group}").touch()
        if cdev is not None:
            (d / "vfio-dev" / f"vfio{cdev}").mkdir(parents=True)
            (self.dev / "vfio/devices" / f"vfio{cdev}").touch()

    def find(self, name: str) -> DeviceLocation:
        return find_device(object(), name, sysfs=str(self.sys), devfs=str(self.dev))


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def expect(fake: FakeSys, name: str, err: int, *words: str) -> VfioError:
    with pytest.raises(VfioError) as e:
        fake.find(name)
    assert e.value.errno == err, e.value
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    return e.value


def test_normalize_pci_address() -> None:
    assert normalize_pci_address("00:04.0") == "0000:00:04.0"
    assert normalize_pci_address("0000:AF:1f.7") == "0000:af:1f.7"
    assert normalize_pci_address("edu") is None and normalize_pci_address("0000:00:04.8") is None


def test_sysfs_finds_group_cdev_and_ids(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", group=7, cdev=2)
    loc = fake.find("00:04.0")
    assert (loc.name, loc.group_id, loc.driver) == ("0000:00:04.0", 7, "vfio-pci")
    assert loc.group_path == f"{fake.dev}/vfio/7" and loc.cdev == f"{fake.dev}/vfio/devices/vfio2"
    assert (loc.vendor, loc.device, loc.simulated) == (0x1234, 0x11E8, False)
    assert "1234:11e8" in str(loc) and "IOMMU group 7" in str(loc)


def test_sysfs_without_cdev_support(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", cdev=None)
    assert fake.find("0000:00:04.0").cdev is None


def test_sysfs_no_such_device(fake: FakeSys) -> None:
    expect(fake, "0000:00:09.0", errno.ENODEV, "no PCI device 0000:00:09.0", "lspci -D")
    expect(fake, "not-an-address", errno.EINVAL, "not a PCI address")


@pytest.mark.parametrize("driver", ["e1000e", None])
def test_sysfs_not_bound_to_vfio_pci(fake: FakeSys, driver: Optional[str]) -> None:
    fake.device("0000:00:04.0", driver=driver)
    e = expect(fake, "0000:00:04.0", errno.ENODEV, "not vfio-pci", "driver_override", "drivers_probe")
    assert (f"bound to {driver}" if driver else "not bound to any driver") in str(e)


def test_sysfs_no_iommu(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", group=None)
    expect(fake, "0000:00:04.0", errno.ENODEV, "no IOMMU group", "intel_iommu=on", "enable_unsafe_noiommu_mode")


def test_sysfs_group_not_viable(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", group=7)
    fake.device("0000:00:04.1", group=7, driver="snd_hda_intel", cdev=None)
    fake.device("0000:00:1c.0", group=7, driver="pcieport", cdev=None)  # a bridge driver is harmless
    expect(fake, "0000:00:04.0", errno.EPERM, "group 7 is not viable", "0000:00:04.1 (snd_hda_intel)",
           "bind every device")


def test_sysfs_vfio_not_loaded(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", node=False)
    expect(fake, "0000:00:04.0", errno.ENOENT, "modprobe vfio-pci")


def test_sysfs_no_permission(fake: FakeSys, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.device("0000:00:04.0")
    real_access = os.access
    monkeypatch.setattr(discovery.os, "access",
                        lambda p, mode: False if str(p).endswith("/vfio/7") else real_access(p, mode))
    expect(fake, "0000:00:04.0", errno.EACCES, "no permission", "run as root")


def test_sysfs_noiommu_group(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", group=3, group_name="vfio-noiommu")
    assert fake.find("0000:00:04.0").group_path == f"{fake.dev}/vfio/noiommu-3"


def test_sysfs_list_devices(fake: FakeSys) -> None:
    fake.device("0000:00:04.0", group=7, cdev=0)
    fake.device("0000:00:05.0", group=8, cdev=1, driver="virtio-pci")
    fake.device("0000:00:06.0", group=9, cdev=2)
    found = list_devices(object(), sysfs=str(fake.sys), devfs=str(fake.dev))
    assert [d.name for d in found] == ["0000:00:04.0", "0000:00:06.0"]


# ---------------------------------------------------------------------------------------------------------
# the simulated kernel, and open_device


@pytest.fixture
def sim() -> Any:
    from pyvfio.sim import Kernel

    k = Kernel()
    k.add_device("edu")
    k.add_device("mtty", name="0000:00:07.0", group=4)
    return k


def test_sim_lookup_by_kind_name_and_address(sim: Any) -> None:
    by_kind = find_device(sim, "mtty")
    assert (by_kind.name, by_kind.group_id, by_kind.kind, by_kind.simulated) == ("0000:00:07.0", 4, "mtty", True)
    assert by_kind.group_path == "/dev/vfio/4" and by_kind.cdev is not None
    assert find_device(sim, "00:07.0") == by_kind == find_device(sim, "0000:00:07.0")
    edu = find_device(sim, "edu")
    assert (edu.vendor, edu.device) == (0x1234, 0x11E8) and "simulated edu" in str(edu)
    assert [d.kind for d in list_devices(sim)] == ["edu", "mtty"]


def test_sim_unknown_name_lists_what_exists(sim: Any) -> None:
    with pytest.raises(VfioError) as e:
        find_device(sim, "gpu")
    assert e.value.errno == errno.ENODEV and "0000:00:07.0 (mtty)" in str(e.value) and "add_device" in str(e.value)


def test_open_device_backends(kernel: Any, edu: EduDevice) -> None:
    auto = "iommufd" if edu.cdev is not None and iommufd_available(kernel) else "type1"
    with open_device(kernel, edu.address) as od:
        assert od.backend == auto and od.device.name == edu.address
        assert (od.container is None) == (auto == "iommufd") and (od.ioas is None) == (auto == "type1")
        assert f"via {auto}" in repr(od)
    assert od.closed and od.device.closed and "closed" in repr(od)
    with open_device(kernel, find_device(kernel, edu.address), backend="type1") as od2:
        assert od2.backend == "type1" and od2.container is not None and od2.iommu is od2.container
    with pytest.raises(ValueError, match="backend must be one of"):
        open_device(kernel, edu.address, backend="vfio")


def test_open_device_iommufd_needs_a_cdev(sim: Any) -> None:
    loc = find_device(sim, "edu")
    no_cdev = DeviceLocation(loc.name, loc.group_id, loc.group_path, None, loc.driver, simulated=True)
    with pytest.raises(VfioError) as e:
        open_device(sim, no_cdev, backend="iommufd")
    assert "CONFIG_VFIO_DEVICE_CDEV" in str(e.value)
    with open_device(sim, no_cdev) as od:  # auto falls back to the group path
        assert od.backend == "type1"
    assert sim.open_files() == []


def test_iommufd_available(sim: Any) -> None:
    assert iommufd_available(sim) is True
    assert sim.open_files() == []
