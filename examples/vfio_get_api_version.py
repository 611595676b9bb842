"""VFIO_GET_API_VERSION: the first ioctl any VFIO user makes, on a fresh container.

The kernel answers VFIO_API_VERSION (0).  Anything else means this program
and the kernel disagree about the whole interface, so a VMM stops here.
"""

from __future__ import annotations

from _common import target

from pyvfio.uapi import vfio


def main() -> int:
    t = target((__doc__ or "").splitlines()[0])
    container = t.kernel.open("/dev/vfio/vfio")
    try:
        version = t.kernel.ioctl(container, vfio.VFIO_GET_API_VERSION)
        print(f"VFIO_GET_API_VERSION ({vfio.VFIO_GET_API_VERSION:#x}) on /dev/vfio/vfio -> {version}")
        print("matches VFIO_API_VERSION" if version == vfio.VFIO_API_VERSION else "MISMATCH: stop here")
        return 0 if version == vfio.VFIO_API_VERSION else 1
    finally:
        t.kernel.close(container)


if __name__ == "__main__":
    raise SystemExit(main())
