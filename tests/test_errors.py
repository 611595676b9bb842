"""VfioError keeps the errno, names the ioctl and survives pickling (it crosses process boundaries)."""

from __future__ import annotations

import errno
import pickle

from pyvfio.errors import VfioError


def test_message_and_errno() -> None:
    e = VfioError(errno.EINVAL, "VFIO_IOMMU_MAP_DMA", "iova 0x1001 is not page aligned")
    assert isinstance(e, OSError) and e.errno == errno.EINVAL
    assert str(e) == "VFIO_IOMMU_MAP_DMA: EINVAL (Invalid argument): iova 0x1001 is not page aligned"
    assert str(VfioError(errno.ENOENT, "open", filename="/dev/vfio/7")) == (
        "open: ENOENT (No such file or directory) on /dev/vfio/7"
    )


def test_pickle_round_trip() -> None:
    e = pickle.loads(pickle.dumps(VfioError(errno.EBUSY, "IOMMU_DESTROY", "ioas 2 is attached")))
    assert isinstance(e, VfioError)
    assert (e.errno, e.ioctl, e.reason) == (errno.EBUSY, "IOMMU_DESTROY", "ioas 2 is attached")
