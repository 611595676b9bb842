"""The lspci-style decoder against pciutils' own output, captured on real machines, and the CLI.

``tests/data/pci`` holds, per machine, every function's sysfs ``config`` (read as root: 256 or 4096
bytes) and ``resource`` files, plus ``lspci -vv`` and ``lspci -xxxx`` run at the same moment (pciutils
3.9.0; ``*.uname.txt`` names the kernel).  ``host`` is the microVM pyvfio is developed in (virtio devices with vendor
capabilities and MSI-X, a 4 KiB-config host bridge); ``vm`` is the VM lane's QEMU 7.2 q35 guest
(virtio-9p with I/O + 32-bit + 64-bit prefetchable BARs and a reversed capability chain, the edu device
bound to vfio-pci with MSI, ICH9 AHCI with MSI and a SATA capability, LPC, SMBus).  Every line lspci
prints from config space -- Control, Status, Latency, Region, Capabilities and their detail lines --
must be printed identically by :mod:`pyvfio.pci.lspci`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pyvfio.cli import main
from pyvfio.pci import caps as C
from pyvfio.pci import lspci as L

DATA = Path(__file__).parent / "data" / "pci"
MACHINES = ("host", "vm")
COMPARED = ("\tControl:", "\tStatus:", "\tLatency:", "\tRegion", "\tExpansion ROM", "\tCapabilities:", "\t\t")


def lspci_blocks(machine: str) -> dict[str, list[str]]:
    """``lspci -vv`` output split per function, keyed by its slot (``00:1f.2``)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (DATA / f"{machine}.lspci-vv.txt").read_text().splitlines():
        if line and not line.startswith("\t"):
            current = blocks.setdefault(line.split(" ", 1)[0], [])
            current.append(line)
        elif line:
            current.append(line)
    return blocks


def captured(machine: str) -> list[tuple[str, L.DeviceImage]]:
    out = []
    for path in sorted(DATA.glob(f"{machine}-*.config")):
        slot = path.stem.split("-", 1)[1].replace("-", ":", 1)  # vm-00-1f.2 -> 00:1f.2
        resources = L.parse_resource(path.with_suffix(".resource").read_text())
        out.append((slot, L.DeviceImage(slot, path.read_bytes(), resources)))
    return out


def compared(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith(COMPARED)]


@pytest.mark.parametrize("machine", MACHINES)
def test_decoder_matches_lspci_line_for_line(machine: str) -> None:
    blocks = lspci_blocks(machine)
    devices = captured(machine)
    assert sorted(slot for slot, _ in devices) == sorted(blocks)
    for slot, image in devices:
        mine, theirs = L.describe(image), blocks[slot]
        assert compared(mine) == compared(theirs), slot
        pins = [ln.split(" routed")[0] for ln in theirs if ln.startswith("\tInterrupt:")]
        assert [ln.split(" routed")[0] for ln in mine if ln.startswith("\tInterrupt:")] == pins, slot


def test_golden_coverage() -> None:
    """What the golden comparison covers, counted (the numbers the report quotes)."""
    devices = caps = regions = 0
    cap_kinds: set[str] = set()
    for machine in MACHINES:
        for _slot, image in captured(machine):
            devices += 1
            chain = C.walk(image.config)
            assert chain.standard_error is None and chain.extended_error is None
            caps += len(chain.all())
            cap_kinds |= {c.name for c in chain.all()}
            regions += sum(1 for ln in L.describe(image) if ln.startswith("\tRegion"))
    assert (devices, caps, regions) == (13, 45, 15)
    assert cap_kinds == {"MSI", "MSI-X", "Vendor Specific Information", "SATA HBA"}


@pytest.mark.parametrize("machine", MACHINES)
def test_lspci_hex_dumps_equal_the_sysfs_config_files(machine: str) -> None:
    dumps = dict(L.parse_hex_dump((DATA / f"{machine}.lspci-xxxx.txt").read_text()))
    for slot, image in captured(machine):
        assert dumps[slot] == image.config, slot
        assert L.hex_dump(image.config) == [ln for ln in (DATA / f"{machine}.lspci-xxxx.txt").read_text()
                                            .split(slot, 1)[1].splitlines()[1:len(image.config) // 16 + 1]]


def test_truncated_sysfs_read_shows_access_denied_like_lspci() -> None:
    image = dict(captured("vm"))["00:01.0"]  # virtio-9p: has capabilities
    short = L.DeviceImage("00:01.0", image.config[:64], image.resources)
    lines = L.describe(short)
    assert "\tCapabilities: <access denied>" in lines
    assert any(ln.startswith("\tRegion 0: I/O ports at c000") for ln in lines)


def test_broken_chain_is_shown_with_its_reason() -> None:
    image = dict(captured("vm"))["00:1f.2"]  # ICH9 AHCI: [80] MSI -> [a8] SATA
    cfg = bytearray(image.config)
    cfg[0xA8 + 1] = 0x80  # SATA's NEXT points back at MSI
    lines = L.capability_lines(L.DeviceImage("x", bytes(cfg)))
    assert lines[0].startswith("\tCapabilities: [80] MSI:")
    assert lines[-1] == "\tCapabilities: <chain broken: the capability pointer at 0xa9 loops back to the capability " \
                        "at 0x80>"
    assert L.describe(L.DeviceImage("tiny", b"\x86\x80"))[0] == "tiny: only 2 config bytes; a header needs 64"


def test_extended_capabilities_and_decoders_on_a_synthetic_express_function() -> None:
    cfg = bytearray(4096)
    cfg[0:4] = bytes([0x34, 0x12, 0xE8, 0x11])
    cfg[R_STATUS] = 0x10
    cfg[0x34] = 0x40
    cfg[0x40:0x48] = bytes([0x01, 0x50, 0x03, 0x00, 0x08, 0x00, 0x00, 0x00])  # PM v3, NoSoftRst+
    cfg[0x50:0x54] = bytes([0x10, 0x60, 0x02, 0x00])  # Express v2 endpoint
    cfg[0x54:0x58] = (0x10000000).to_bytes(4, "little")  # FLR
    cfg[0x60:0x66] = bytes([0x13, 0x00, 0x06, 0x03, 0x00, 0x00])  # AF: TP+ FLR+
    cfg[0x100:0x104] = (1 | 2 << 16 | 0x140 << 20).to_bytes(4, "little")
    cfg[0x140:0x14C] = (3 | 1 << 16).to_bytes(4, "little") + bytes(range(1, 9))
    lines = L.capability_lines(L.DeviceImage("x", bytes(cfg)))
    heads = [ln for ln in lines if ln.startswith("\tCapabilities")]
    assert heads == ["\tCapabilities: [40] Power Management version 3",
                     "\tCapabilities: [50] Express (v2) Endpoint, IntMsgNum 0",
                     "\tCapabilities: [60] PCI Advanced Features",
                     "\tCapabilities: [100 v2] Advanced Error Reporting",
                     "\tCapabilities: [140 v1] Device Serial Number 08-07-06-05-04-03-02-01"]
    assert "\t\tStatus: D0 NoSoftRst+ PME-Enable- DSel=0 DScale=0 PME-" in lines
    assert "\t\tAFCap: TP+ FLR+" in lines
    assert any("FLReset+" in ln for ln in lines)


R_STATUS = 0x06


def test_address_normalisation() -> None:
    assert L.normalize_address("00:03.0") == "0000:00:03.0"
    assert L.normalize_address("1:0a:1f.7") == "0001:0a:1f.7"
    assert L.normalize_address("00:03") is None and L.normalize_address("edu") is None
    assert L.short_address("0000:00:03.0") == "00:03.0" and L.short_address("0001:00:03.0") == "0001:00:03.0"


def test_hex_dump_with_a_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="does not follow"):
        L.parse_hex_dump("00:01.0 x\n00: 00 01\n20: 02 03\n")


# -- the command ---------------------------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["lspci", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_decodes_a_raw_dump_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(DATA / "vm-00-1f.2.config"))
    assert rc == 0
    assert out.startswith("vm-00-1f.2.config SATA controller [0106]: Device [8086:2922] (rev 02) (prog-if 01)")
    assert "\tCapabilities: [a8] SATA HBA v1.0 BAR4 Offset=00000004" in out.splitlines()


def test_cli_decodes_an_lspci_hex_dump_with_many_functions(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(DATA / "vm.lspci-xxxx.txt"))
    assert rc == 0
    assert out.count("\tControl:") == 7 and "00:03.0 Unclassified device [00ff]: Device [1234:11e8]" in out


def test_cli_simulated_devices_kernel_and_guest_views(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "edu", "--hex")
    assert rc == 0
    assert "(simulated edu, through vfio)" in out and "\tCapabilities: [40] MSI: Enable- Count=1/1 Maskable- 64bit+" in out
    # (the simulated firmware hands out host addresses from a process-wide allocator: match any address)
    assert re.search(r"\tRegion 0: Memory at [0-9a-f]{8,} \(32-bit, non-prefetchable\) \[size=1M\]", out)
    assert "\n00: 34 12 e8 11" in out
    rc, out, _ = run(capsys, "edu", "--guest")
    assert rc == 0 and "Region 0: Memory at <unassigned> (32-bit, non-prefetchable) [size=1M]" in out
    rc, out, _ = run(capsys, "pci")
    assert rc == 0 and "Device [1b36:0005]" in out


def test_cli_rejects_what_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "no-such-thing")
    assert rc == 2 and "neither a PCI address" in err and "edu" in err
    rc, _, err = run(capsys, "0000:7f:1f.7")
    assert rc == 2 and "no PCI function 0000:7f:1f.7" in err
    rc, _, err = run(capsys, "--guest", str(DATA / "vm-00-03.0.config"))
    assert rc == 2 and "--guest shows pyvfio's guest view of a simulated device" in err


@pytest.mark.skipif(not L.sysfs_addresses(), reason="this machine shows no PCI functions in sysfs")
def test_cli_reads_this_machines_sysfs(capsys: pytest.CaptureFixture[str]) -> None:
    first = L.sysfs_addresses()[0]
    rc, out, _ = run(capsys, first)
    assert rc == 0 and out.startswith(L.short_address(first) + " ")
    rc, out, _ = run(capsys)
    assert rc == 0 and out.count("\tControl:") == len(L.sysfs_addresses())
    image = L.read_sysfs(first)
    # root reads the whole config space; anyone else gets the 64-byte header only (and "<access denied>")
    assert len(image.config) in ((256, 4096) if os.geteuid() == 0 else (64,))


def test_expansion_rom_latency_and_virtual_region_lines() -> None:
    cfg = bytearray(dict(captured("vm"))["00:03.0"].config)  # edu
    cfg[0x30:0x34] = (0xFEB80000).to_bytes(4, "little")  # ROM placed, not enabled
    cfg[0x04] |= 0x04  # bus master: lspci shows the latency line
    cfg[0x0C], cfg[0x0D], cfg[0x3E], cfg[0x3F] = 0x10, 0x40, 0x02, 0x04
    resources = L.parse_resource((DATA / "vm-00-03.0.resource").read_text())
    resources[6] = (0xFEB80000, 0xFEBBFFFF, 0x46200)
    lines = L.describe(L.DeviceImage("00:03.0", bytes(cfg), resources))
    assert "\tExpansion ROM at feb80000 [disabled] [size=256K]" in lines
    assert "\tLatency: 64 (500ns min, 1000ns max), Cache Line Size: 64 bytes" in lines
    cfg[0x30:0x34] = (0xFEB80001).to_bytes(4, "little")
    cfg[0x04] &= ~0x02  # memory decode off
    lines = L.describe(L.DeviceImage("00:03.0", bytes(cfg), resources))
    assert "\tExpansion ROM at feb80000 [disabled by cmd] [size=256K]" in lines
    assert "\tRegion 0: Memory at fea00000 (32-bit, non-prefetchable) [disabled] [size=1M]" in lines
    # the OS reports a region the register does not hold (e.g. a hidden BAR): [virtual]
    cfg[0x10:0x14] = bytes(4)
    lines = L.describe(L.DeviceImage("00:03.0", bytes(cfg), resources))
    assert "\tRegion 0: Memory at fea00000 (32-bit, non-prefetchable) [virtual] [size=1M]" in lines
