"""VFIO_GET_API_VERSION: the first ioctl any VFIO user makes, on a fresh container.

The kernel answers VFIO_API_VERSION (0).  Anything else means this program
and the kernel disagree about the whole interface, so a VMM stops here.
The request takes no argument: the answer is the ioctl's return value.
"""

from __future__ import annotations

from _common import expect_errno, ran, run, say, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__))
    title(t, "VFIO_GET_API_VERSION", "the container fd (/dev/vfio/vfio)")
    k = t.kernel
    container = k.open("/dev/vfio/vfio")
    try:
        version = k.ioctl(container, vfio.VFIO_GET_API_VERSION)
        say(f"ioctl(container, VFIO_GET_API_VERSION) -> {version}; this program speaks {vfio.VFIO_API_VERSION}")
        if version != vfio.VFIO_API_VERSION:
            say("MISMATCH: stop here")
            return 1
        # Only the container answers it: a group fd is a different file with its own ioctls.
        group = k.open(f"/dev/vfio/{t.group}")
        try:
            expect_errno("the same request on a group fd", lambda: k.ioctl(group, vfio.VFIO_GET_API_VERSION))
        finally:
            k.close(group)
    finally:
        k.close(container)
    return ran("the API version matches")


if __name__ == "__main__":
    raise SystemExit(run(main))
