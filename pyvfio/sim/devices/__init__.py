"""Simulated PCI devices that can be plugged into the simulated kernel.

``create_device(kind, **options)`` builds one by name; ``DEVICE_KINDS`` maps
each name to ``"module:Class"`` so a device's module is imported only when
used: ``edu`` (QEMU's teaching device), ``mtty`` (the kernel's mdev sample,
written alongside migration) and ``pci`` (a configurable function for tests
of vfio-pci rules).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..pci_device import SimPciDevice

DEVICE_KINDS: dict[str, str] = {
    "edu": "pyvfio.sim.devices.edu:EduDevice",
    "mtty": "pyvfio.sim.devices.mtty:MttyDevice",
    "pci": "pyvfio.sim.devices.generic:GenericPciDevice",
}


def create_device(kind: str, **options: Any) -> SimPciDevice:
    """A new device of ``kind`` ("edu", "mtty"); ``options`` go to its constructor."""
    try:
        target = DEVICE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown device kind {kind!r}; known: {', '.join(sorted(DEVICE_KINDS))}") from None
    module_name, _, class_name = target.partition(":")
    if module_name.startswith("pyvfio.sim.devices."):
        module = importlib.import_module("." + module_name.rsplit(".", 1)[1], __name__)
    else:
        module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    device = cls(**options)
    if not isinstance(device, SimPciDevice):
        raise TypeError(f"{target} did not build a SimPciDevice")
    return device


__all__ = ["DEVICE_KINDS", "create_device"]
