"""VFIO_DEVICE_GET_REGION_INFO: where each region of the device is in the device fd, and what it allows.

For each index below ``num_regions`` the kernel fills struct
vfio_region_info: ``size``, ``offset`` (where ``pread``/``pwrite``/``mmap`` of
the device fd reach this region -- vfio-pci puts index N at N << 40) and
``flags`` (READ, WRITE, MMAP, CAPS).  With CAPS, a chain of capabilities
follows the struct; when ``argsz`` is too small to hold it the kernel says
how much it needs in ``argsz`` and leaves ``cap_offset`` 0: call again with a
bigger buffer.  Indexes beyond the device's regions are EINVAL.

On the simulated kernel the edu device gets an MSI-X table in BAR1, so one
region carries a capability (MSIX_MAPPABLE) and the retry shows.
"""

from __future__ import annotations

import ctypes
import errno

from _common import argsz, errname, expect_errno, legacy, ran, run, say, summary, target, title

from pyvfio.uapi import vfio

NAMES = {vfio.VFIO_PCI_BAR0_REGION_INDEX + i: f"BAR{i}" for i in range(6)}
NAMES.update({vfio.VFIO_PCI_ROM_REGION_INDEX: "ROM", vfio.VFIO_PCI_CONFIG_REGION_INDEX: "config",
              vfio.VFIO_PCI_VGA_REGION_INDEX: "VGA"})


def caps_in(buf: ctypes.Array[ctypes.c_char], first: int) -> list[str]:
    """Walk the capability chain: each header gives its id, version and the offset of the next (0 ends it)."""
    found, offset = [], first
    while offset:
        hdr = vfio.vfio_info_cap_header.from_buffer(buf, offset)
        found.append(f"{vfio.VfioRegionInfoCap(hdr.id).name} v{hdr.version} at {offset}")
        offset = hdr.next
    return found


def main() -> int:
    t = target(summary(__doc__), msix_vectors=2)
    title(t, "VFIO_DEVICE_GET_REGION_INFO", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        dev = argsz(vfio.vfio_device_info)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_INFO, dev)
        for index in range(dev.num_regions):
            info = argsz(vfio.vfio_region_info, index=index)
            try:
                k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_REGION_INFO, info)
            except OSError as e:  # VGA on a device that is not a VGA controller
                say(f"{index} {NAMES.get(index, '?'):<6} -> {errname(e.errno)}: no such region here")
                continue
            line = (f"{index} {NAMES.get(index, 'dev-spec'):<6} size {info.size:#10x} offset {info.offset:#014x} "
                    f"flags {vfio.VfioRegionInfoFlag(info.flags)!r}")
            if info.flags & vfio.VFIO_REGION_INFO_FLAG_CAPS:
                needed = info.argsz
                buf = ctypes.create_string_buffer(needed)  # the struct, then room for the chain
                big = vfio.vfio_region_info.from_buffer(buf)
                big.argsz, big.index = needed, index
                k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_REGION_INFO, buf)
                line += f"\n      argsz {ctypes.sizeof(info)} was short: the kernel asked for {needed}; " \
                        f"again -> caps: {', '.join(caps_in(buf, big.cap_offset))}"
            say(line)
        expect_errno(f"index {dev.num_regions} (one past num_regions)", lambda: k.ioctl(
            lg.device, vfio.VFIO_DEVICE_GET_REGION_INFO, argsz(vfio.vfio_region_info, index=dev.num_regions)),
            errno.EINVAL)
    return ran(f"{dev.num_regions} regions listed")


if __name__ == "__main__":
    raise SystemExit(run(main))
