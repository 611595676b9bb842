"""Guest side of the VM lane: prepare the real VFIO stack, run the job's command, report.

Started by the initramfs's ``/init`` (``tests/vm/init.sh``) through ``<run folder>/run.sh``, as root,
inside the host's root filesystem seen over 9p, with the host's own Python.  It

1. loads the VFIO modules (``vfio-pci``, ``iommufd``, ``mtty``... whichever the kernel has),
2. binds every QEMU ``edu`` device (1234:11e8) to ``vfio-pci`` through ``driver_override``,
3. writes what it found to ``<run folder>/guest-facts.json``,
4. runs the job's command with ``PYVFIO_KERNEL=real``, its output going both to the serial console and
   to ``<run folder>/guest-output.txt``,
5. writes ``<run folder>/result.json`` and exits with the command's status.

Standard library only: this file runs before anything is known about the guest.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

EDU_ID = ("0x1234", "0x11e8")
# What the lane wants loaded, in order.  Built-in or missing modules are fine: each is reported.
DEFAULT_MODULES = ["vfio", "vfio_iommu_type1", "vfio-pci", "iommufd", "mdev", "mtty"]


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def log(msg: str) -> None:
    print(f"[pyvfio-guest {uptime():7.2f}s] {msg}", flush=True)


def modprobe(name: str) -> str:
    """Load ``name``; return "loaded", "built-in" or the reason it is not there."""
    sysname = name.replace("-", "_")
    if os.path.isdir(f"/sys/module/{sysname}"):
        return "present"
    r = subprocess.run(["modprobe", name], capture_output=True, text=True)
    if r.returncode == 0:
        return "loaded" if os.path.isdir(f"/sys/module/{sysname}") else "built-in"
    return "unavailable: " + (r.stderr.strip().splitlines() or ["modprobe failed"])[-1]


def insmod(path: str) -> str:
    r = subprocess.run(["insmod", path], capture_output=True, text=True)
    return "loaded" if r.returncode == 0 else "failed: " + r.stderr.strip()


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def bind_vfio_pci(bdf: str) -> dict[str, Any]:
    """Bind ``bdf`` to vfio-pci the way an admin does: driver_override, unbind, drivers_probe."""
    dev = f"/sys/bus/pci/devices/{bdf}"
    driver = os.path.basename(os.readlink(f"{dev}/driver")) if os.path.exists(f"{dev}/driver") else None
    if driver != "vfio-pci":
        if driver is not None:
            write(f"{dev}/driver/unbind", bdf)
        write(f"{dev}/driver_override", "vfio-pci")
        write("/sys/bus/pci/drivers_probe", bdf)
        driver = os.path.basename(os.readlink(f"{dev}/driver")) if os.path.exists(f"{dev}/driver") else None
    group = int(os.path.basename(os.readlink(f"{dev}/iommu_group")))
    cdevs = sorted(glob.glob(f"{dev}/vfio-dev/vfio*"))
    cdev = f"/dev/vfio/devices/{os.path.basename(cdevs[0])}" if cdevs else None
    # devtmpfs creates the nodes; give it a moment under a slow TCG guest
    deadline = time.monotonic() + 5
    while not os.path.exists(f"/dev/vfio/{group}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"address": bdf, "driver": driver, "group": group, "group_node": os.path.exists(f"/dev/vfio/{group}"),
            "cdev": cdev if cdev and os.path.exists(cdev) else None}


def find_edu() -> list[str]:
    found = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        try:
            if (read(f"{dev}/vendor"), read(f"{dev}/device")) == EDU_ID:
                found.append(os.path.basename(dev))
        except OSError:
            continue
    return found


def prepare(job: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {"kernel": os.uname().release, "python": sys.version.split()[0],
                             "uptime_at_runner_start": uptime()}
    modules = {m: modprobe(m) for m in job.get("modules", DEFAULT_MODULES)}
    for ko in job.get("insmod", []):
        modules[ko] = insmod(ko)
    facts["modules"] = modules
    facts["edu"] = []
    for bdf in find_edu():
        try:
            facts["edu"].append(bind_vfio_pci(bdf))
        except OSError as e:
            facts["edu"].append({"address": bdf, "error": str(e)})
    facts["dev_vfio"] = sorted(os.listdir("/dev/vfio")) if os.path.isdir("/dev/vfio") else []
    facts["dev_iommu"] = os.path.exists("/dev/iommu")
    facts["mtty"] = os.path.isdir("/sys/class/mdev_bus/mtty")
    facts["iommu_groups"] = len(os.listdir("/sys/kernel/iommu_groups")) if os.path.isdir(
        "/sys/kernel/iommu_groups") else 0
    facts["uptime_at_command_start"] = uptime()
    return facts


def run_command(job: dict[str, Any], out: Path) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items()}
    env.update(job.get("env", {}))
    env.update({"PYVFIO_KERNEL": "real", "PYVFIO_IN_VM": "1", "PYVFIO_VM_OUT": str(out)})
    t0 = time.monotonic()
    with open(out / "guest-output.txt", "wb") as sink:
        proc = subprocess.Popen(job["argv"], cwd=job.get("cwd") or "/", env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            sink.write(line)
            sink.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        rc = proc.wait()
    return rc, time.monotonic() - t0


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    job: dict[str, Any] = json.loads(job_path.read_text())
    out = job_path.parent
    log(f"kernel {os.uname().release}; preparing VFIO")
    facts = prepare(job)
    (out / "guest-facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    edu = ", ".join(f"{e.get('address')} -> {e.get('driver')} (group {e.get('group')}, cdev {e.get('cdev')})"
                    for e in facts["edu"]) or "none"
    log(f"edu: {edu}; /dev/iommu: {facts['dev_iommu']}; mtty: {facts['mtty']}")
    log("running: " + " ".join(job["argv"]))
    rc: Optional[int] = None
    elapsed = 0.0
    try:
        rc, elapsed = run_command(job, out)
    except OSError as e:
        log(f"cannot run the command: {e}")
        rc = 127
    log(f"command exit status {rc} after {elapsed:.1f}s")
    result = {"rc": rc, "command_s": round(elapsed, 3), "uptime_at_command_start": facts["uptime_at_command_start"],
              "uptime_at_end": uptime()}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    os.sync()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
