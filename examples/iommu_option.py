"""IOMMU_OPTION: read or change an iommufd-wide or per-object option.

struct iommu_option: ``option_id``, ``op`` (IOMMU_OPTION_OP_GET or _SET),
``object_id`` (0 for global options) and the value in ``val64`` (written
back on GET).  Two options exist:

* IOMMU_OPTION_RLIMIT_MODE (global): pinned memory is charged per user (0)
  or per process (1, what a VMM wants); SET needs CAP_SYS_RESOURCE and an
  iommufd with no objects yet;
* IOMMU_OPTION_HUGE_PAGES (per IOAS): 1 lets the IOMMU use large pages, 0
  forces 4 KiB ones (then any 4 KiB piece can be unmapped by itself).

An unknown option is EOPNOTSUPP.
"""

from __future__ import annotations

import errno
from typing import Any

from _common import argsz, expect_errno, ioas_alloc, open_iommufd, ran, run, say, show, summary, target, title

from pyvfio.uapi import iommufd as iu


def option(k: Any, fd: int, option_id: int, op: int, object_id: int = 0, val64: int = 0) -> int:
    req = argsz(iu.iommu_option, option_id=option_id, op=op, object_id=object_id, val64=val64)
    k.ioctl(fd, iu.IOMMU_OPTION, req)
    return int(req.val64)


def main() -> int:
    t = target(summary(__doc__))
    title(t, "IOMMU_OPTION", "the iommufd (/dev/iommu)")
    k = t.kernel
    fd = open_iommufd(t)
    try:
        get = argsz(iu.iommu_option, option_id=iu.IOMMU_OPTION_RLIMIT_MODE, op=iu.IOMMU_OPTION_OP_GET)
        show("before", get)
        k.ioctl(fd, iu.IOMMU_OPTION, get)
        show("after", get)
        say(f"RLIMIT_MODE = {get.val64} ({'per process' if get.val64 else 'per user'} accounting of pinned pages)")
        try:
            option(k, fd, iu.IOMMU_OPTION_RLIMIT_MODE, iu.IOMMU_OPTION_OP_SET, val64=1)
            mode = option(k, fd, iu.IOMMU_OPTION_RLIMIT_MODE, iu.IOMMU_OPTION_OP_GET)
            say(f"SET RLIMIT_MODE 1 -> 0; GET -> {mode} (allowed: no objects yet, and we may)")
        except OSError as e:
            say(f"SET RLIMIT_MODE 1 -> {errno.errorcode.get(e.errno or 0)} (needs CAP_SYS_RESOURCE)")
        ioas = ioas_alloc(k, fd)
        huge = option(k, fd, iu.IOMMU_OPTION_HUGE_PAGES, iu.IOMMU_OPTION_OP_GET, object_id=ioas)
        say(f"IOAS {ioas}: HUGE_PAGES = {huge}")
        option(k, fd, iu.IOMMU_OPTION_HUGE_PAGES, iu.IOMMU_OPTION_OP_SET, object_id=ioas, val64=0)
        huge = option(k, fd, iu.IOMMU_OPTION_HUGE_PAGES, iu.IOMMU_OPTION_OP_GET, object_id=ioas)
        say(f"SET HUGE_PAGES 0 -> 0; GET -> {huge}: this IOAS maps with 4 KiB IOMMU pages only")
        expect_errno("RLIMIT_MODE SET now that an IOAS exists", lambda: option(
            k, fd, iu.IOMMU_OPTION_RLIMIT_MODE, iu.IOMMU_OPTION_OP_SET, val64=0), errno.EBUSY, errno.EPERM)
        expect_errno("option_id 7 (no such option)", lambda: option(k, fd, 7, iu.IOMMU_OPTION_OP_GET),
                     errno.EOPNOTSUPP)
    finally:
        k.close(fd)
    return ran("options read and set")


if __name__ == "__main__":
    raise SystemExit(run(main))
