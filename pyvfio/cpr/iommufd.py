"""CPR for iommufd: file-backed mappings move to the new process with one ioctl.

Guest RAM is mapped with ``IOMMU_IOAS_MAP_FILE`` from a memfd, so a mapping
names (file, offset), not a virtual address, and nothing needs re-registering.
The new process calls ``IOMMU_IOAS_CHANGE_PROCESS`` to take over the pinned
page accounting, and rebuilds its view of the devices from the saved ids
(devid, ioas_id, hwpt_id) without BIND, IOAS_ALLOC or ATTACH.  The old side
probes the same ioctl beforehand (a no-op while the process is unchanged): it
fails exactly when some mapping is not file-backed.
"""

from __future__ import annotations

import ctypes
from typing import Any, Iterable

from ..errors import VfioError
from ..uapi import iommufd as ui
from .blockers import Blocker, iommufd_mapping_blockers
from .state import MappingRecord


def change_process(kernel: Any, iommufd: int) -> None:
    kernel.ioctl(iommufd, ui.IOMMU_IOAS_CHANGE_PROCESS,
                 ui.iommu_ioas_change_process(size=ctypes.sizeof(ui.iommu_ioas_change_process)))


def blockers(kernel: Any, iommufd: int, mappings: Iterable[MappingRecord]) -> list[Blocker]:
    out = iommufd_mapping_blockers(mappings)
    try:
        change_process(kernel, iommufd)
    except VfioError as e:
        out.append(Blocker("iommufd", f"IOMMU_IOAS_CHANGE_PROCESS fails ({e.strerror}): some memory is not "
                                      "file-backed, or the kernel lacks it"))
    return out


def map_file(kernel: Any, iommufd: int, ioas_id: int, memfd: int, offset: int, iova: int, size: int) -> None:
    """A fixed-IOVA read/write mapping of ``size`` bytes of ``memfd`` at ``offset``."""
    kernel.ioctl(iommufd, ui.IOMMU_IOAS_MAP_FILE, ui.iommu_ioas_map_file(
        size=ctypes.sizeof(ui.iommu_ioas_map_file), ioas_id=ioas_id, fd=memfd, start=offset, length=size, iova=iova,
        flags=ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_READABLE | ui.IOMMU_IOAS_MAP_WRITEABLE))
