"""Reasons CPR cannot succeed, found before anything is changed.

QEMU adds these as migration blockers for the CPR modes so a live update is
refused up front rather than failing half-way.  Every check returns a list
(possibly empty) of :class:`Blocker` -- always a list, never ``None`` or a
bool, because a helper whose return type drifted is exactly how a blocker
gets silently ignored (seed 000); :func:`require_none` turns them into one
exception naming every cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..uapi import vfio as uv


@dataclass(frozen=True)
class Blocker:
    """``what`` names the object (container, device, mapping); ``reason`` says why CPR cannot proceed."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


class CprBlocked(RuntimeError):
    """CPR refused before it started; ``blockers`` lists every cause."""

    def __init__(self, blockers: list[Blocker]) -> None:
        self.blockers = blockers
        super().__init__("CPR is blocked: " + "; ".join(str(b) for b in blockers))


def legacy_container_blockers(kernel: Any, container_fd: int) -> list[Blocker]:
    """The type1 container must offer VFIO_UPDATE_VADDR and VFIO_UNMAP_ALL.

    The kernel reports UPDATE_VADDR as 0 while any emulated (mdev-style)
    group is in the container, since such drivers read guest memory by
    virtual address and an invalid vaddr would stall them; that case is named
    explicitly so the user knows which device to remove.
    """
    out: list[Blocker] = []
    emulated = kernel.ioctl(container_fd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) != 1
    if emulated:
        out.append(Blocker("VFIO container", "does not support VFIO_UPDATE_VADDR (an mdev-style, emulated-IOMMU "
                                              "group in the container disables it)"))
    if kernel.ioctl(container_fd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UNMAP_ALL) != 1:
        out.append(Blocker("VFIO container", "does not support VFIO_UNMAP_ALL"))
    return out


def mdev_blockers(devices: Iterable[tuple[str, bool]]) -> list[Blocker]:
    """``(name, is_mdev)`` pairs: an mdev-style device in a legacy container cannot be preserved."""
    return [Blocker(f"device {name}", "is an mdev-style (emulated IOMMU) device in a legacy container; its driver "
                                      "needs valid virtual addresses throughout the hand-off")
            for name, is_mdev in devices if is_mdev]


def iommufd_mapping_blockers(mappings: Iterable[Any]) -> list[Blocker]:
    """Every IOAS mapping must be file-backed (IOMMU_IOAS_MAP_FILE): CHANGE_PROCESS refuses user-VA pages."""
    from .state import MAPPING_FILE

    return [Blocker(f"mapping iova {m.iova:#x}+{m.size:#x}", "guest RAM is not file-backed (mapped by virtual "
                                                             "address, not IOMMU_IOAS_MAP_FILE)")
            for m in mappings if not m.flags & MAPPING_FILE]


def reuse_blockers(devices: Iterable[tuple[str, str]]) -> list[Blocker]:
    """``(name, why_not)`` pairs from the owner: a device it cannot reuse without reset names its reason."""
    return [Blocker(f"device {name}", f"is not reusable: {why}") for name, why in devices if why]


def require_none(blockers: list[Blocker]) -> None:
    if not isinstance(blockers, list):  # the seed-000 bug: a helper that stopped returning a list
        raise TypeError(f"blocker checks return a list, got {type(blockers).__name__}")
    if blockers:
        raise CprBlocked(blockers)
