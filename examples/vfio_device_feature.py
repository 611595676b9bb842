"""VFIO_DEVICE_FEATURE: probe, get and set optional device features (migration, low power, DMA logging...).

One ioctl multiplexes many features.  struct vfio_device_feature holds
``argsz``, ``flags`` and a feature-specific payload in ``data[]``; the low 16
bits of ``flags`` pick the feature (VFIO_DEVICE_FEATURE_MIGRATION = 1, ...)
and the high bits say what to do: GET, SET, or PROBE together with GET/SET
("would this work?" -- no side effects).  The kernel answers ENOTTY for a
feature the device lacks, EINVAL for an operation the feature does not take,
and EINVAL for GET|SET without PROBE.

The simulated device here is mtty (the kernel's migratable serial sample),
so GET MIGRATION reports its migration flags; QEMU's edu has no migration
and answers ENOTTY there.
"""

from __future__ import annotations

import errno
from typing import Any

from _common import errname, expect_errno, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio
from pyvfio.uapi.struct import alloc_flex, flex_array

GET, SET, PROBE = vfio.VFIO_DEVICE_FEATURE_GET, vfio.VFIO_DEVICE_FEATURE_SET, vfio.VFIO_DEVICE_FEATURE_PROBE


def probe(k: Any, device: int, feature: int, op: int) -> str:
    """PROBE|op for one feature: 'yes', or the errno that says no."""
    req = alloc_flex(vfio.vfio_device_feature, 0, flags=PROBE | op | feature)
    try:
        k.ioctl(device, vfio.VFIO_DEVICE_FEATURE, req)
    except OSError as e:
        return errname(e.errno)
    return "yes"


def main() -> int:
    t = target(summary(__doc__), kind="mtty")
    title(t, "VFIO_DEVICE_FEATURE", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        say(f"{'feature':<30} PROBE|GET  PROBE|SET")
        for feature in vfio.VfioDeviceFeature:
            get, set_ = probe(k, lg.device, feature, GET), probe(k, lg.device, feature, SET)
            say(f"{int(feature):>2} {feature.name:<27} {get:<10} {set_}")

        # GET MIGRATION: the payload is struct vfio_device_feature_migration (one u64 of flags)
        req = alloc_flex(vfio.vfio_device_feature, 8, flags=GET | vfio.VFIO_DEVICE_FEATURE_MIGRATION)
        show("request", req)
        try:
            k.ioctl(lg.device, vfio.VFIO_DEVICE_FEATURE, req)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            say("GET MIGRATION -> ENOTTY: this device cannot be migrated")
            outcome = "probed every feature; the device has no migration"
        else:
            mig = vfio.vfio_device_feature_migration.from_buffer(flex_array(req))
            say(f"GET MIGRATION -> 0; data[] = {mig!r}: {vfio.VfioMigrationFlag(mig.flags)!r}")
            outcome = "probed every feature and read the migration flags"
        bad = alloc_flex(vfio.vfio_device_feature, 8, flags=GET | SET | vfio.VFIO_DEVICE_FEATURE_MIGRATION)
        expect_errno("GET|SET together without PROBE",
                     lambda: k.ioctl(lg.device, vfio.VFIO_DEVICE_FEATURE, bad), errno.EINVAL)
    return ran(outcome)


if __name__ == "__main__":
    raise SystemExit(run(main))
