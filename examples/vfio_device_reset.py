"""VFIO_DEVICE_RESET: reset the device (function level), putting its registers back to power-on values.

No argument.  It only works when VFIO_DEVICE_GET_INFO reports
VFIO_DEVICE_FLAGS_RESET -- the kernel found a reset method for this one
function (PCIe FLR, a PM reset, or a bus reset when it is alone on its bus);
otherwise the answer is EINVAL.  vfio-pci saves and restores the config space
around the reset, so BARs and the command register survive; the device's
internal state does not.

QEMU's edu has no FLR, so on a real ``-device edu`` this shows the EINVAL.
The simulated edu is given a PCIe capability with FLR, so the reset runs:
its factorial register, set before, reads 0 afterwards.
"""

from __future__ import annotations

import errno

from _common import EDU_FACTORIAL, answered, argsz, edu_of, legacy, ran, run, say, show, summary, target, title

from pyvfio.uapi import vfio


def main() -> int:
    t = target(summary(__doc__), express=True)  # the simulated edu becomes a PCIe function with FLR
    title(t, "VFIO_DEVICE_RESET", "the device fd")
    k = t.kernel
    with legacy(t) as lg:
        info = argsz(vfio.vfio_device_info)
        k.ioctl(lg.device, vfio.VFIO_DEVICE_GET_INFO, info)
        show("info", info)
        has_reset = bool(info.flags & vfio.VFIO_DEVICE_FLAGS_RESET)
        say(f"VFIO_DEVICE_FLAGS_RESET is {'set' if has_reset else 'clear'}")
        edu = edu_of(t, lg.device)
        edu.enable_bus_master()
        say(f"before: the device computed 5! = {edu.factorial(5)} into its factorial register")
        try:
            ret = k.ioctl(lg.device, vfio.VFIO_DEVICE_RESET)
        except OSError as e:
            if e.errno != errno.EINVAL or has_reset:
                raise
            say("ioctl(device, VFIO_DEVICE_RESET) -> EINVAL: no reset method for this function")
            return answered(errno.EINVAL, "the device has no function reset (no FLR, no PM reset, not alone "
                                          "on a bus); VFIO_DEVICE_FLAGS_RESET said so")
        say(f"ioctl(device, VFIO_DEVICE_RESET) -> {ret}")
        say(f"after:  factorial register = {edu.read32(EDU_FACTORIAL)} (device state gone); "
            f"PCI command {edu.config_read16(0x04):#06x} (restored by vfio-pci)")
    return ran("the function was reset")


if __name__ == "__main__":
    raise SystemExit(run(main))
