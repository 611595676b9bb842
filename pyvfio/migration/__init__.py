"""Layer 7: VFIO migration v2 from the user side.

- :mod:`.fsm` -- plan and explain state changes with the kernel's own table;
- :mod:`.device` -- :class:`MigrationDevice`: states with recovery, the data fd, sizes, pre-copy info;
- :mod:`.stream` -- the framed, versioned, checksummed migration stream;
- :mod:`.dirty` -- dirty tracking (device DMA logging, iommufd HWPT, type1) and the bitmap scanner;
- :mod:`.live` -- source and destination of a live migration over any byte transport;
- :mod:`.sim_demo` -- the two-process demo on simulated kernels (mtty + guest memory).
"""

from .device import DataFd, MigrationDevice, MigrationError, PrecopyInfo
from .dirty import DeviceDmaLog, HwptDirtyTracker, Type1DirtyTracker, dirty_page_runs, dirty_ranges
from .fsm import Arc, MigrationPlanError, explain, plan, supported_states
from .stream import (
    CorruptStream, IncompatibleStream, MigrationImage, StreamError, StreamReader, StreamWriter,
    TruncatedStream, parse_stream,
)

__all__ = [
    "Arc", "CorruptStream", "DataFd", "DeviceDmaLog", "HwptDirtyTracker", "IncompatibleStream", "MigrationDevice",
    "MigrationError", "MigrationImage", "MigrationPlanError", "PrecopyInfo", "StreamError", "StreamReader",
    "StreamWriter", "TruncatedStream", "Type1DirtyTracker", "dirty_page_runs", "dirty_ranges", "explain",
    "parse_stream", "plan", "supported_states",
]
