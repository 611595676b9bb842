"""What every example shares: pick the kernel (simulated by default, real with --device) and find the device.

Examples are written once against the syscall surface.  Without arguments
they run on :class:`pyvfio.sim.Kernel` with a simulated ``edu`` device; with
``--device 0000:00:04.0`` they run on the real kernel against that device,
which must be bound to vfio-pci.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Optional

from pyvfio.kernel import Linux


@dataclass
class Target:
    """The kernel an example talks to and the device it uses (its PCI address, IOMMU group and cdev)."""

    kernel: Any
    address: str
    group: int
    cdev: Optional[str]
    simulated: bool


def sysfs_device(address: str) -> tuple[int, Optional[str]]:
    """IOMMU group and cdev path of a real PCI device, with errors that say what to do."""
    base = f"/sys/bus/pci/devices/{address}"
    if not os.path.exists(base):
        raise SystemExit(f"no PCI device {address} (see lspci -D)")
    driver = os.path.basename(os.readlink(f"{base}/driver")) if os.path.exists(f"{base}/driver") else None
    if driver != "vfio-pci":
        raise SystemExit(f"{address} is bound to {driver or 'no driver'}, not vfio-pci: "
                         f"echo {address} > /sys/bus/pci/drivers/vfio-pci/bind (after driver_override)")
    if not os.path.exists(f"{base}/iommu_group"):
        raise SystemExit(f"{address} has no IOMMU group: boot with intel_iommu=on (or amd_iommu=on)")
    group = int(os.path.basename(os.readlink(f"{base}/iommu_group")))
    cdevs = os.listdir(f"{base}/vfio-dev") if os.path.isdir(f"{base}/vfio-dev") else []
    return group, (f"/dev/vfio/devices/{cdevs[0]}" if cdevs else None)


def target(description: str, kind: str = "edu") -> Target:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", metavar="ADDRESS",
                        help="run on the real kernel against this PCI device (bound to vfio-pci)")
    args = parser.parse_args()
    if args.device:
        group, cdev = sysfs_device(args.device)
        return Target(Linux(), args.device, group, cdev, simulated=False)
    from pyvfio.sim import Kernel

    kernel = Kernel()
    dev = kernel.add_device(kind)
    return Target(kernel, dev.address, dev.group_id, dev.cdev, simulated=True)
