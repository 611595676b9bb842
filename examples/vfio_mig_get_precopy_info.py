"""VFIO_MIG_GET_PRECOPY_INFO: during live migration's pre-copy phase, how much device state is left to send.

Migration v2 moves a device through states with VFIO_DEVICE_FEATURE
(MIG_DEVICE_STATE).  Entering PRE_COPY hands back a *data fd*: the device's
state is read from it while the device keeps running.  This ioctl goes to
that data fd and fills struct vfio_precopy_info: ``initial_bytes`` (state
that must be sent before stopping the device) and ``dirty_bytes`` (state that
changed since and may change again).  A VMM reads until ``initial_bytes`` is
0, then stops the device (STOP_COPY) and reads the rest.  Outside PRE_COPY
the ioctl is EINVAL.

It needs a device that supports PRE_COPY: the simulated mtty does; a real
one is e.g. an mtty mdev (``--device <uuid>``).  QEMU's edu cannot migrate.
"""

from __future__ import annotations

import errno
from typing import Any

from _common import Unavailable, argsz, expect_errno, legacy, ran, read_fd, run, say, show, summary, target, title

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array

S = vfio.vfio_device_mig_state


def set_state(k: Any, device: int, state: int) -> int:
    """VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE; returns the data fd the kernel hands back (or -1)."""
    req = alloc_flex(vfio.vfio_device_feature, 8, flags=vfio.VFIO_DEVICE_FEATURE_SET
                     | vfio.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)
    payload = vfio.vfio_device_feature_mig_state.from_buffer(flex_array(req))
    payload.device_state = state
    k.ioctl(device, vfio.VFIO_DEVICE_FEATURE, req)
    return int(payload.data_fd)


def main() -> int:
    t = target(summary(__doc__), kind="mtty")
    title(t, "VFIO_MIG_GET_PRECOPY_INFO", "the migration data fd")
    k = t.kernel
    with legacy(t) as lg:
        mig = alloc_flex(vfio.vfio_device_feature, 8, flags=vfio.VFIO_DEVICE_FEATURE_GET
                         | vfio.VFIO_DEVICE_FEATURE_MIGRATION)
        try:
            k.ioctl(lg.device, vfio.VFIO_DEVICE_FEATURE, mig)
        except OSError as e:
            if e.errno == errno.ENOTTY:
                raise Unavailable(f"{t.address} does not support migration (VFIO_DEVICE_FEATURE_MIGRATION is "
                                  "ENOTTY): use a migratable device, e.g. an mtty mdev") from None
            raise
        flags = vfio.vfio_device_feature_migration.from_buffer(flex_array(mig)).flags
        say(f"migration flags {vfio.VfioMigrationFlag(flags)!r}")
        if not flags & vfio.VFIO_MIGRATION_PRE_COPY:
            raise Unavailable(f"{t.address} migrates without a PRE_COPY phase: no data fd to ask")

        data_fd = set_state(k, lg.device, S.VFIO_DEVICE_STATE_PRE_COPY)
        say(f"RUNNING -> PRE_COPY: the kernel returned data fd {data_fd}")
        try:
            info = argsz(vfio.vfio_precopy_info)
            show("before", info)
            k.ioctl(data_fd, vfio.VFIO_MIG_GET_PRECOPY_INFO, info)
            show("after", info)
            first = int(info.initial_bytes)
            chunk = read_fd(k, data_fd, first)
            say(f"read {len(chunk)} bytes of initial state from the data fd")
            k.ioctl(data_fd, vfio.VFIO_MIG_GET_PRECOPY_INFO, info)
            say(f"asked again: initial_bytes {info.initial_bytes}, dirty_bytes {info.dirty_bytes} "
                "-- time to stop the device")
            set_state(k, lg.device, S.VFIO_DEVICE_STATE_STOP_COPY)  # mtty keeps using the same data fd
            expect_errno("the same ioctl in STOP_COPY", lambda: k.ioctl(
                data_fd, vfio.VFIO_MIG_GET_PRECOPY_INFO, argsz(vfio.vfio_precopy_info)), errno.EINVAL)
            set_state(k, lg.device, S.VFIO_DEVICE_STATE_STOP)
            set_state(k, lg.device, S.VFIO_DEVICE_STATE_RUNNING)
            say("STOP_COPY -> STOP -> RUNNING: migration abandoned, the device runs on")
        finally:
            k.close(data_fd)
    return ran(f"{first} bytes of initial pre-copy state reported")


if __name__ == "__main__":
    raise SystemExit(run(main))
