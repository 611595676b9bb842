"""Finding a device, and opening it the best way the kernel allows.

On a real kernel a VFIO user starts from a PCI address and needs three
things sysfs knows: the IOMMU group (``/sys/bus/pci/devices/<addr>/iommu_group``
-> ``/dev/vfio/<group>``), the cdev (``.../vfio-dev/vfioN`` ->
``/dev/vfio/devices/vfioN``) and the bound driver, which must be vfio-pci.
Most first attempts fail on one of a handful of set-up mistakes -- the device
is still bound to its normal driver, another device in the group is, the
machine booted without an IOMMU, the node is root-only -- and the kernel's
answer to each is a bare errno from ``open`` or ``VFIO_GROUP_SET_CONTAINER``.
:func:`find_device` checks for each of them first and raises a
:class:`~pyvfio.errors.VfioError` whose message says what to run.

On the simulated kernel the same questions are answered from its device
table (``kernel.devices``), by PCI name or by device kind (``"edu"``).

:func:`open_device` then opens the device the way a modern VMM does: through
its cdev and iommufd when the kernel has them (QEMU's ``iommufd`` backend),
else through its group and a type1 container (the legacy backend), and
returns one object holding the device and its IOMMU context.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from ._resource import Resource
from .container import Container
from .device import Device
from .dma import DmaBuffer, DmaMapping, IommuContext
from .errors import VfioError
from .iommufd import Ioas, Iommufd
from .kernel.base import Kernel

__all__ = ["DeviceLocation", "OpenDevice", "find_device", "list_devices", "iommufd_available", "open_device",
           "is_simulated", "normalize_pci_address", "BACKENDS"]

#: ``open_device(backend=...)`` values: "auto" prefers iommufd when the device has a cdev and /dev/iommu opens.
BACKENDS = ("auto", "iommufd", "type1")

_PCI_ADDRESS = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
#: Drivers that leave a group viable: vfio-pci itself, pci-stub, and drivers that never do DMA of their own
#: (the kernel's ``driver_managed_dma``), e.g. pcieport on a bridge in the group.
_VIABLE_DRIVERS = {"vfio-pci", "pci-stub", "pcieport", None}


@dataclass(frozen=True)
class DeviceLocation:
    """Where a device is, as VFIO sees it: the name to open it by, its group node and its cdev."""

    name: str  # the PCI address: the name VFIO_GROUP_GET_DEVICE_FD takes
    group_id: int
    group_path: str  # /dev/vfio/<group>, or /dev/vfio/noiommu-<group>
    cdev: Optional[str]  # /dev/vfio/devices/vfioN, None without VFIO_DEVICE_CDEV
    driver: Optional[str]
    vendor: Optional[int] = None
    device: Optional[int] = None
    kind: Optional[str] = None  # the simulated device's kind ("edu", "mtty")
    simulated: bool = False

    def __str__(self) -> str:
        ids = f" {self.vendor:04x}:{self.device:04x}" if self.vendor is not None and self.device is not None else ""
        what = f" (simulated {self.kind})" if self.simulated else ""
        return f"{self.name}{ids}{what}, IOMMU group {self.group_id}, cdev {self.cdev or 'none'}"


def is_simulated(kernel: Any) -> bool:
    """Whether ``kernel`` is pyvfio's simulated kernel (it has a device table) rather than a real one."""
    return hasattr(kernel, "devices") and hasattr(kernel, "add_device")


def normalize_pci_address(text: str) -> Optional[str]:
    """``00:04.0`` or ``0000:00:04.0`` -> ``0000:00:04.0``; None if ``text`` is not a PCI address."""
    m = _PCI_ADDRESS.match(text.strip())
    if m is None:
        return None
    dom, bus, slot, fn = m.groups()
    return f"{(dom or '0000').lower()}:{bus.lower()}:{slot.lower()}.{fn}"


# ---------------------------------------------------------------------------------------------------------
# the simulated kernel


def _sim_location(vdev: Any) -> DeviceLocation:
    pci = getattr(getattr(vdev, "ops", None), "pci", None)
    vendor = getattr(pci, "vendor_id", None)
    device = getattr(pci, "device_id", None)
    group = vdev.group
    path = getattr(group, "path", f"/dev/vfio/{vdev.group_id}")
    return DeviceLocation(name=vdev.address, group_id=int(vdev.group_id), group_path=path, cdev=vdev.cdev,
                          driver="vfio-pci", vendor=vendor, device=device, kind=getattr(vdev, "kind", None),
                          simulated=True)


def _find_sim(kernel: Any, name: str) -> DeviceLocation:
    devices: dict[str, Any] = kernel.devices
    addr = normalize_pci_address(name)
    if addr is not None and addr in devices:
        return _sim_location(devices[addr])
    if name in devices:
        return _sim_location(devices[name])
    for vdev in devices.values():
        if getattr(vdev, "kind", None) == name:
            return _sim_location(vdev)
    have = ", ".join(f"{d.address} ({getattr(d, 'kind', '?')})" for d in devices.values()) or "none"
    raise VfioError(errno.ENODEV, "discovery", f"the simulated kernel has no device {name!r} (it has: {have}); "
                                               "plug one in with kernel.add_device('edu')")


# ---------------------------------------------------------------------------------------------------------
# sysfs on a real kernel


def _readlink_base(path: str) -> Optional[str]:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _read_hex(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().strip(), 16)
    except (OSError, ValueError):
        return None


def _bind_hint(addr: str, sysfs: str) -> str:
    base = f"{sysfs}/bus/pci/devices/{addr}"
    return (f"bind it to vfio-pci: modprobe vfio-pci; echo vfio-pci > {base}/driver_override; "
            f"echo {addr} > {base}/driver/unbind; echo {addr} > {sysfs}/bus/pci/drivers_probe")


def _find_sysfs(name: str, sysfs: str, devfs: str) -> DeviceLocation:
    addr = normalize_pci_address(name)
    if addr is None:
        raise VfioError(errno.EINVAL, "discovery", f"{name!r} is not a PCI address (expected DDDD:BB:SS.F, e.g. "
                                                   "0000:00:04.0; lspci -D lists them)")
    base = f"{sysfs}/bus/pci/devices/{addr}"
    if not os.path.isdir(base):
        raise VfioError(errno.ENODEV, "discovery", f"no PCI device {addr} ({base} does not exist; lspci -D lists "
                                                   "the devices)")
    driver = _readlink_base(f"{base}/driver")
    if driver != "vfio-pci":
        now = f"bound to {driver}" if driver else "not bound to any driver"
        raise VfioError(errno.ENODEV, "discovery", f"{addr} is {now}, not vfio-pci: {_bind_hint(addr, sysfs)}")
    group_name = _readlink_base(f"{base}/iommu_group")
    if group_name is None or not group_name.isdigit():
        raise VfioError(errno.ENODEV, "discovery",
                        f"{addr} has no IOMMU group: the machine runs without an IOMMU. Boot with intel_iommu=on "
                        "(or amd_iommu=on), or, unsafely and as root, load vfio with enable_unsafe_noiommu_mode=1")
    group_id = int(group_name)
    group_dir = f"{sysfs}/kernel/iommu_groups/{group_id}"
    noiommu = False
    try:
        with open(f"{group_dir}/name") as f:
            noiommu = f.read().strip() == "vfio-noiommu"
    except OSError:
        pass
    offenders = []
    try:
        members = sorted(os.listdir(f"{group_dir}/devices"))
    except OSError:
        members = []
    for member in members:
        drv = _readlink_base(f"{group_dir}/devices/{member}/driver")
        if drv not in _VIABLE_DRIVERS:
            offenders.append(f"{member} ({drv})")
    if offenders:
        raise VfioError(errno.EPERM, "discovery",
                        f"IOMMU group {group_id} is not viable: {', '.join(offenders)} "
                        f"{'is' if len(offenders) == 1 else 'are'} bound to a kernel driver that does DMA; bind "
                        "every device of the group to vfio-pci (or unbind it), or move the card to a slot with "
                        "its own group")
    group_path = f"{devfs}/vfio/{'noiommu-' if noiommu else ''}{group_id}"
    if not os.path.exists(group_path):
        raise VfioError(errno.ENOENT, "discovery", f"no {group_path}: is the vfio module loaded (modprobe vfio-pci)?")
    if not os.access(group_path, os.R_OK | os.W_OK):
        raise VfioError(errno.EACCES, "discovery", f"no permission on {group_path}: run as root, or give your user "
                                                   f"the node (chown $USER {group_path})")
    cdev = None
    try:
        nodes = sorted(n for n in os.listdir(f"{base}/vfio-dev") if n.startswith("vfio"))
    except OSError:
        nodes = []
    if nodes and os.path.exists(f"{devfs}/vfio/devices/{nodes[0]}"):
        cdev = f"{devfs}/vfio/devices/{nodes[0]}"
    return DeviceLocation(name=addr, group_id=group_id, group_path=group_path, cdev=cdev, driver=driver,
                          vendor=_read_hex(f"{base}/vendor"), device=_read_hex(f"{base}/device"))


# ---------------------------------------------------------------------------------------------------------
# public API


def find_device(kernel: Any, name: str, *, sysfs: str = "/sys", devfs: str = "/dev") -> DeviceLocation:
    """Locate ``name``: a PCI address (real kernel: checked in sysfs), or a simulated device's name or kind.

    Raises :class:`VfioError` with a message that says what to do when the
    device is missing, not bound to vfio-pci, in a non-viable group, without
    an IOMMU, or its node is not accessible.
    """
    if is_simulated(kernel):
        return _find_sim(kernel, name)
    return _find_sysfs(name, sysfs, devfs)


def list_devices(kernel: Any, *, sysfs: str = "/sys", devfs: str = "/dev") -> list[DeviceLocation]:
    """Every device VFIO can open: the simulated kernel's devices, or the PCI devices bound to vfio-pci."""
    if is_simulated(kernel):
        return [_sim_location(v) for v in kernel.devices.values()]
    out = []
    try:
        names = sorted(os.listdir(f"{sysfs}/bus/pci/devices"))
    except OSError:
        return []
    for n in names:
        if _readlink_base(f"{sysfs}/bus/pci/devices/{n}/driver") == "vfio-pci":
            try:
                out.append(_find_sysfs(n, sysfs, devfs))
            except VfioError:
                continue
    return out


def iommufd_available(kernel: Kernel) -> bool:
    """Whether ``/dev/iommu`` opens on this kernel."""
    try:
        fd = kernel.open("/dev/iommu")
    except OSError:
        return False
    kernel.close(fd)
    return True


class OpenDevice(Resource):
    """A device opened with its IOMMU context: ``.device``, ``.iommu`` (map DMA here), ``.backend``.

    Closing it closes the device, its group or IOAS, and the container or iommufd.
    """

    def __init__(self, location: DeviceLocation, backend: str, root: Union[Container, Iommufd], device: Device,
                 iommu: Union[Container, Ioas]) -> None:
        super().__init__()
        self.location = location
        self.backend = backend
        self.root = root
        self.device = device
        self.iommu: IommuContext = iommu
        self._adopt(root)

    @property
    def container(self) -> Optional[Container]:
        return self.root if isinstance(self.root, Container) else None

    @property
    def iommufd(self) -> Optional[Iommufd]:
        return self.root if isinstance(self.root, Iommufd) else None

    @property
    def ioas(self) -> Optional[Ioas]:
        return self.iommu if isinstance(self.iommu, Ioas) else None

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<OpenDevice {self.location.name} via {self.backend}{state}: {self.device!r}>"

    def map(self, buf: DmaBuffer, iova: Optional[int] = None, **kw: Any) -> DmaMapping:
        return self.iommu.map(buf, iova, **kw)

    def dma(self, size: int, **kw: Any) -> DmaMapping:
        return self.iommu.dma(size, **kw)


def open_device(kernel: Kernel, device: Union[str, DeviceLocation], *, backend: str = "auto") -> OpenDevice:
    """Open a device and an IOMMU context for it, undoing everything if a step fails.

    ``backend``: ``"iommufd"`` (cdev bound to a new iommufd, attached to a new
    IOAS), ``"type1"`` (group in a new container), or ``"auto"`` -- iommufd
    when the device has a cdev and ``/dev/iommu`` opens, else type1.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    loc = device if isinstance(device, DeviceLocation) else find_device(kernel, device)
    if backend == "auto":
        backend = "iommufd" if loc.cdev is not None and iommufd_available(kernel) else "type1"
    if backend == "iommufd":
        if loc.cdev is None:
            raise VfioError(errno.ENODEV, "discovery", f"{loc.name} has no VFIO cdev (the kernel lacks "
                                                       "CONFIG_VFIO_DEVICE_CDEV): use backend='type1'")
        ictx = Iommufd(kernel)
        try:
            ioas = ictx.ioas()
            dev = ictx.device(loc.cdev, name=loc.name, attach=ioas)
            return OpenDevice(loc, "iommufd", ictx, dev, ioas)
        except BaseException:
            ictx.close()
            raise
    container = Container(kernel)
    try:
        grp = container.group(loc.group_id, path=loc.group_path)
        dev = grp.device(loc.name)
        return OpenDevice(loc, "type1", container, dev, container)
    except BaseException:
        container.close()
        raise
