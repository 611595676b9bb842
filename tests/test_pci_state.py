"""Save/restore of the guest-visible config state: round trips, the wire format, and refusals.

A restore must give identical guest reads (config space and the MSI-X table/PBA) on the same device or a
fresh one of the same kind, and must refuse truncated, corrupt, foreign or mismatched blobs with a clear
:class:`StateError` while leaving the target untouched.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any, Iterator

import pytest

from pyvfio.pci import ConfigEvent, StateError, VfioConfigRegion, VirtualConfig, open_group_device
from pyvfio.pci import state as S
from pyvfio.pci.config import STATUS_W1C
from pyvfio.sim import Kernel
from pyvfio.uapi import pci_regs as R

GENERIC = dict(bars=[{"index": 0, "size": 0x4000}, {"index": 2, "size": 0x100000, "kind": "mem64", "prefetch": True},
                     {"index": 4, "size": 0x40, "kind": "io"}],
               msi=1, msi_maskable=True, msix=16, msix_bar=0, msix_table_offset=0x2000, express=True, pm=True,
               rom_size=0x10000)


class Machine:
    """One simulated kernel with devices opened for VirtualConfig; closes everything."""

    def __init__(self) -> None:
        self.kernel = Kernel()
        self._cms: list[Any] = []

    def open(self, kind: str, **options: Any) -> VfioConfigRegion:
        sim = self.kernel.add_device(kind, **options)
        cm = open_group_device(self.kernel, sim.group_id, sim.address)
        self._cms.append(cm)
        return VfioConfigRegion(self.kernel, cm.__enter__())

    def close(self) -> None:
        for cm in reversed(self._cms):
            cm.__exit__(None, None, None)


@pytest.fixture
def machine() -> Iterator[Machine]:
    m = Machine()
    yield m
    m.close()


def program(vc: VirtualConfig) -> None:
    """What a guest driver does: place BARs, enable decode and mastering, program MSI-X vectors."""
    vc.write_int(R.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    vc.write_int(R.PCI_BASE_ADDRESS_2, 4, 0x0000000C)
    vc.write_int(R.PCI_BASE_ADDRESS_3, 4, 0x00000080)
    vc.write_int(R.PCI_BASE_ADDRESS_4, 4, 0xC001)
    vc.write_int(R.PCI_ROM_ADDRESS, 4, 0xFEB00001)
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_IO | R.PCI_COMMAND_MASTER)
    vc.write_int(R.PCI_INTERRUPT_LINE, 1, 11)
    vc.write_int(R.PCI_CACHE_LINE_SIZE, 1, 0x10)
    if vc.msi is not None:
        vc.write_int(vc.msi.offset + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE00000)
        vc.write_int(vc.msi.data_off, 2, 0x4021)
        vc.write_int(vc.msi.mask_off, 4, 1)
    if vc.msix is not None:
        for v in range(0, vc.msix.entries, 3):
            vc.bar_write(vc.msix.layout.table_bar, vc.msix.layout.table_offset + 16 * v,
                         struct.pack("<IIII", 0xFEE00000 + v, 0, 0x30 + v, v & 1))
        vc.write_int(vc.msix.offset + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE)
        vc.msix.notify(1)  # odd vectors are masked: vector 1 goes pending


def view(vc: VirtualConfig) -> tuple[bytes, bytes, bytes]:
    """Everything the guest can read: config space, the MSI-X table and PBA."""
    table = pba = b""
    if vc.msix is not None:
        lay = vc.msix.layout
        table = vc.bar_read(lay.table_bar, lay.table_offset, lay.table_size) or b""
        pba = vc.bar_read(lay.pba_bar, lay.pba_offset, lay.pba_size) or b""
    return vc.read(0, vc.size), table, pba


def test_round_trip_on_a_fresh_device_gives_identical_reads(machine: Machine) -> None:
    src = VirtualConfig(machine.open("pci", **GENERIC))
    program(src)
    blob = src.save()
    dst = VirtualConfig(machine.open("pci", **GENERIC))
    assert view(dst) != view(src)
    got: list[ConfigEvent] = []
    dst.add_listener(got.append)
    dst.restore(blob)
    assert view(dst) == view(src)
    assert dst.mapped_bars() == src.mapped_bars() == {0: (0xFE000000, 0x4000), 2: (0x80_0000_0000, 0x100000),
                                                      4: (0xC000, 0x40), 6: (0xFEB00000, 0x10000)}
    assert {e.kind for e in got} == {"bar-map", "msix-enable"}
    assert dst.save() == blob  # and the restored state saves to the same bytes


def test_round_trip_onto_itself_and_after_reset(machine: Machine) -> None:
    vc = VirtualConfig(machine.open("pci", **GENERIC))
    program(vc)
    blob, before = vc.save(), view(vc)
    vc.reset()
    assert view(vc) != before
    vc.restore(blob)
    assert view(vc) == before


def test_round_trip_keeps_msi_state_and_emulated_w1c_registers(machine: Machine) -> None:
    src = VirtualConfig(machine.open("edu"))
    src.emulate(0xF0, 2, 0x8001, mask=0xFFFF, writable=0x00FF, w1c=0x8000)  # a custom emulated register
    src.write_int(0xF0, 2, 0x8000 | 0x42)  # W1C clears bit 15, low byte stored
    msi = src.msi
    assert msi is not None
    src.write_int(msi.offset + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE0100C)
    src.write_int(msi.offset + R.PCI_MSI_ADDRESS_HI, 4, 0x2)
    src.write_int(msi.data_off, 2, 0x99)
    src.write_int(msi.offset + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE)
    blob = src.save()
    dst = VirtualConfig(machine.open("edu"))
    dst.emulate(0xF0, 2, 0x8001, mask=0xFFFF, writable=0x00FF, w1c=0x8000)
    got: list[ConfigEvent] = []
    dst.add_listener(got.append)
    dst.restore(blob)
    assert view(dst) == view(src)
    assert dst.read_int(0xF0, 2) == 0x42
    assert dst.msi is not None and dst.msi.address == 0x2_FEE0100C and dst.msi.enabled
    assert [e.kind for e in got] == ["msi-enable"]


def test_wire_format_is_big_endian_with_magic_version_sections_and_crc(machine: Machine) -> None:
    vc = VirtualConfig(machine.open("edu"))
    vc.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER)
    blob = vc.save()
    assert blob[:8] == b"PYVFPCI\0"
    assert struct.unpack(">HH", blob[8:12]) == (1, 4)  # version 1; DEV, HDR, BARS, MSI
    assert struct.unpack(">I", blob[-4:])[0] == zlib.crc32(blob[:-4])
    pos, tags = 12, []
    while pos < len(blob) - 4:
        tag, length = struct.unpack_from(">4sI", blob, pos)
        tags.append(tag)
        if tag == b"DEV ":
            assert struct.unpack_from(">HHH", blob, pos + 8) == (0x1234, 0x11E8, 256)
        if tag == b"HDR ":
            assert struct.unpack_from(">H", blob, pos + 8)[0] == R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER
        pos += 8 + length
    assert tags == [b"DEV ", b"HDR ", b"BARS", b"MSI "]
    state = S.decode(blob)
    assert state.bars == [(0, "mem32", 0x100000, 0)]
    assert S.encode(state) == blob


def test_every_truncation_is_refused_and_changes_nothing(machine: Machine) -> None:
    src = VirtualConfig(machine.open("pci", **GENERIC))
    program(src)
    blob = src.save()
    dst = VirtualConfig(machine.open("pci", **GENERIC))
    before = view(dst)
    for n in range(len(blob)):
        with pytest.raises(StateError, match="truncated|corrupt|magic"):
            dst.restore(blob[:n])
    assert view(dst) == before


def test_corruption_is_detected_by_the_checksum(machine: Machine) -> None:
    src = VirtualConfig(machine.open("pci", **GENERIC))
    program(src)
    blob = bytearray(src.save())
    dst = VirtualConfig(machine.open("pci", **GENERIC))
    before = view(dst)
    rng = random.Random(7)
    for _ in range(200):
        bad = bytearray(blob)
        i = rng.randrange(8, len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        with pytest.raises(StateError):
            dst.restore(bytes(bad))
    assert view(dst) == before


def reseal(body: bytes) -> bytes:
    """A blob with a valid CRC around ``body`` (to reach the checks behind the checksum)."""
    return body + struct.pack(">I", zlib.crc32(body))


def test_structural_lies_behind_a_valid_checksum_are_refused(machine: Machine) -> None:
    vc = VirtualConfig(machine.open("edu"))
    blob = vc.save()
    body = blob[:-4]
    cases = {
        "magic": b"NOTPYVFO" + body[8:],
        "version 2 is not supported": body[:8] + struct.pack(">H", 2) + body[10:],
        "unknown section": body + b"XTRA" + struct.pack(">I", 0),
        "stray bytes": body + b"\0",
    }
    for words, bad in cases.items():
        bad_blob = reseal(bad) if words != "stray bytes" else reseal(bad[:10] + struct.pack(">H", 4) + bad[12:])
        if words == "unknown section":
            bad_blob = reseal(bad[:10] + struct.pack(">H", 5) + bad[12:])
        with pytest.raises(StateError, match=words.split(" ")[0]):
            vc.restore(bad_blob)
    # a blob without its mandatory BARS section (DEV and HDR only)
    dev_hdr = body[12:12 + 8 + 8 + 8 + 6]
    with pytest.raises(StateError, match="lacks its mandatory 'BARS'"):
        vc.restore(reseal(body[:10] + struct.pack(">H", 2) + dev_hdr))
    # a repeated section
    first = body[12:12 + 8 + 8]  # the DEV section
    with pytest.raises(StateError, match="repeated or out of order"):
        vc.restore(reseal(body[:10] + struct.pack(">H", 5) + body[12:] + first))


def test_state_for_another_device_or_layout_is_refused(machine: Machine) -> None:
    edu = VirtualConfig(machine.open("edu"))
    other = VirtualConfig(machine.open("pci", **GENERIC))
    with pytest.raises(StateError, match="is for 1234:11e8"):
        other.restore(edu.save())
    bigger = VirtualConfig(machine.open("pci", **{**GENERIC, "bars": [{"index": 0, "size": 0x8000}]}))
    with pytest.raises(StateError, match="BARs .* do not match"):
        bigger.restore(other.save())
    # BAR values whose type bits do not match their kind
    state = S.decode(other.save())
    state.bars[0] = (0, "mem32", 0x4000, 0xFE000001)
    with pytest.raises(StateError, match="type bits"):
        other.restore(S.encode(state))
    # a writable emulated byte the target does not have
    state = S.decode(other.save())
    state.emulated = [(0xF0, 1)]
    with pytest.raises(StateError, match="does not emulate"):
        other.restore(S.encode(state))


def test_failed_device_write_is_undone(machine: Machine) -> None:
    region = machine.open("edu")
    vc = VirtualConfig(region)
    vc.write_int(R.PCI_INTERRUPT_LINE, 1, 5)
    blob_src = VirtualConfig(machine.open("edu"))
    blob_src.write_int(R.PCI_COMMAND, 2, R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY)
    blob_src.write_int(R.PCI_INTERRUPT_LINE, 1, 9)
    blob = blob_src.save()
    before = view(vc)
    real_write = region.config_write
    calls = {"n": 0}

    def flaky(off: int, data: bytes) -> None:
        calls["n"] += 1
        if off == R.PCI_LATENCY_TIMER and calls["n"] < 10:
            raise OSError(5, "EIO from the device")
        real_write(off, data)

    region.config_write = flaky  # type: ignore[method-assign]
    with pytest.raises(OSError):
        vc.restore(blob)
    region.config_write = real_write  # type: ignore[method-assign]
    assert view(vc) == before  # COMMAND written before the failure was put back


def test_status_w1c_masks_are_not_state(machine: Machine) -> None:
    vc = VirtualConfig(machine.open("edu"))
    assert not S.capture(vc).emulated  # nothing guest-writable beyond the fixed sections
    vc.emulate(R.PCI_STATUS, 2, 0, mask=STATUS_W1C, w1c=STATUS_W1C)
    # STATUS_W1C is 0xf900: only the high byte holds W1C bits (the low byte's CAP_LIST is emulated, read-only)
    assert {o for o, _ in S.capture(vc).emulated} == {R.PCI_STATUS + 1}
