"""The migration stream format (pyvfio.migration.stream): framing, versions, and rejection of bad input.

Rules: SEMANTICS 7.4 (QEMU's markers and big-endian lengths), DESIGN (explicit
byte order, magic and version), the issue's compatibility rule (optional
sections instead of an exact version).  Every bad stream must raise a
StreamError subclass naming the problem -- and, for the device path, leave the
device untouched (tests/test_migration_live.py).
"""

from __future__ import annotations

import random
from typing import Iterator
import struct
import zlib

import pytest

from pyvfio.migration.stream import (
    FLAG_DATA_UNCHECKED, MAGIC, MARKER_BASE, OPTIONAL, CorruptStream, IncompatibleStream, Section, Setup, StreamWriter,
    TruncatedStream, pack_memory, parse_stream,
)

SETUP = Setup(migration_flags=7, stop_copy_length=60, vendor=0x4348, device=0x3253, name="4348:3253")


def build(*, minor: int = 0, extra: list[tuple[int, bytes]] = (), memory: bool = True,  # type: ignore[assignment]
          data_checksum: bool = True) -> bytes:
    parts: list[bytes] = []
    w = StreamWriter(parts.append, minor=minor, data_checksum=data_checksum)
    w.setup(SETUP)
    w.section(Section.RAW_CONFIG, bytes(range(256)))
    for kind, payload in extra:
        w.section(kind, payload)
    w.data(b"H" * 24)
    if memory:
        w.section(Section.MEMORY, pack_memory(4096, [(0x100000, b"\x11" * 8192), (0x200000, b"\x22" * 4096)]))
    w.section(Section.INIT_SENT)
    w.end_round()
    w.data(b"")  # an empty read writes no block
    w.data(b"P" * 36)
    w.complete()
    return b"".join(parts)


def test_round_trip() -> None:
    img = parse_stream(build())
    assert img.setup == SETUP
    assert img.device_bytes == b"H" * 24 + b"P" * 36 and len(img.device_data) == 2
    assert img.raw_config == bytes(range(256))
    assert img.page_size == 4096 and sorted(img.memory) == [0x100000, 0x101000, 0x200000]
    assert img.memory[0x101000] == b"\x11" * 4096
    assert img.init_data_sent and img.complete and img.rounds == 2 and img.version == (1, 0)


def test_layout_is_big_endian_with_qemu_style_markers() -> None:
    raw = build()
    assert raw[:8] == MAGIC and struct.unpack(">HHII", raw[8:20]) == (1, 0, 0, zlib.crc32(raw[:16]))
    marker, length = struct.unpack(">QQ", raw[20:36])
    assert marker == MARKER_BASE | Section.SETUP == 0xFFFFFFFFEF100003
    assert raw[36:36 + length] == SETUP.pack()
    (crc,) = struct.unpack(">I", raw[36 + length: 40 + length])
    assert crc == zlib.crc32(raw[20:36 + length])
    assert raw[-20:-4] == struct.pack(">QQ", 0xFFFFFFFFEF100001, 0)  # the last section is END


@pytest.mark.parametrize("cut", range(0, 200, 7))
def test_truncated_anywhere_is_rejected(cut: int) -> None:
    raw = build(memory=False)
    with pytest.raises(TruncatedStream, match="stream ends inside"):
        parse_stream(raw[:cut])


def test_truncated_before_complete_round() -> None:
    """Whole rounds but no COMPLETE: a cut connection between rounds is still truncation."""
    parts: list[bytes] = []
    w = StreamWriter(parts.append)
    w.setup(SETUP)
    w.end_round()
    with pytest.raises(TruncatedStream):
        parse_stream(b"".join(parts))


def test_every_single_byte_flip_is_caught() -> None:
    raw = build(memory=False)
    rng = random.Random(7)
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises((CorruptStream, IncompatibleStream, TruncatedStream)):
            parse_stream(bytes(bad))


def test_data_unchecked_flag_round_trip_and_what_it_still_catches() -> None:
    """FLAG_DATA_UNCHECKED: a flipped DATA payload byte passes, every other byte flip is still caught."""
    raw = build(minor=1, memory=False, data_checksum=False)
    assert struct.unpack(">HHI", raw[8:16]) == (1, 1, FLAG_DATA_UNCHECKED)
    img = parse_stream(raw)
    assert img.device_bytes == b"H" * 24 + b"P" * 36 and img.version == (1, 1)
    payload_at = {raw.index(b"H" * 24) + i for i in range(24)} | {raw.index(b"P" * 36) + i for i in range(36)}
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        if pos in payload_at:
            assert parse_stream(bytes(bad)).device_bytes != img.device_bytes  # the trade: not detected
        else:
            with pytest.raises((CorruptStream, IncompatibleStream, TruncatedStream)):
                parse_stream(bytes(bad))


def test_header_flags_unknown_or_before_1_1_incompatible() -> None:
    def flagged(raw: bytes, minor: int, flags: int) -> bytes:
        head = raw[:10] + struct.pack(">HI", minor, flags)
        return head + struct.pack(">I", zlib.crc32(head)) + raw[20:]

    with pytest.raises(IncompatibleStream, match="flags 0x2"):
        parse_stream(flagged(build(minor=1), 1, 2))
    with pytest.raises(IncompatibleStream, match=r"flags 0x1 in version 1\.0"):
        parse_stream(flagged(build(), 0, FLAG_DATA_UNCHECKED))
    with pytest.raises(ValueError, match="1.1"):
        StreamWriter(lambda b: None, minor=0, data_checksum=False)


def test_bad_magic() -> None:
    with pytest.raises(CorruptStream, match="not a pyvfio migration stream"):
        parse_stream(b"QEVMxxxx" + build()[8:])


def _reheader(raw: bytes, major: int) -> bytes:
    head = raw[:8] + struct.pack(">H", major) + raw[10:16]
    return head + struct.pack(">I", zlib.crc32(head)) + raw[20:]


def test_other_major_version_incompatible() -> None:
    raw = _reheader(build(), 2)
    with pytest.raises(IncompatibleStream, match="major version 1"):
        parse_stream(bytes(raw))


def test_newer_minor_with_optional_section_accepted() -> None:
    """A 1.7 writer adding an optional section: a 1.0 reader skips it and takes the rest."""
    img = parse_stream(build(minor=7, extra=[(OPTIONAL | 0x0123, b"future")]))
    assert img.version == (1, 7) and img.skipped == [OPTIONAL | 0x0123] and img.complete


def test_unknown_required_section_incompatible() -> None:
    with pytest.raises(IncompatibleStream, match="required section type 0x0123"):
        parse_stream(build(minor=7, extra=[(0x0123, b"must understand")]))


def test_trailing_bytes_corrupt() -> None:
    with pytest.raises(CorruptStream, match="after the end"):
        parse_stream(build() + b"\x00")


def test_section_before_setup_corrupt() -> None:
    parts: list[bytes] = []
    w = StreamWriter(parts.append)
    w.data(b"x")
    with pytest.raises(CorruptStream, match="before SETUP"):
        parse_stream(b"".join(parts))


def test_huge_length_refused_without_allocating() -> None:
    head = build()[:20] + struct.pack(">QQ", MARKER_BASE | Section.DATA, 1 << 40)
    with pytest.raises(CorruptStream, match="claims"):
        parse_stream(head)


def test_bad_marker() -> None:
    raw = bytearray(build())
    raw[20:28] = struct.pack(">Q", 0x1234)
    with pytest.raises(CorruptStream, match="bad section marker"):
        parse_stream(bytes(raw))


def test_memory_run_outside_section_corrupt() -> None:
    payload = struct.pack(">Q", 4096) + struct.pack(">QQ", 0x1000, 3) + b"\x00" * 4096
    parts: list[bytes] = []
    w = StreamWriter(parts.append)
    w.setup(SETUP)
    w.section(Section.MEMORY, payload)
    w.complete()
    with pytest.raises(CorruptStream, match="does not fit"):
        parse_stream(b"".join(parts))


def test_pack_memory_rejects_partial_pages() -> None:
    with pytest.raises(ValueError):
        pack_memory(4096, [(0x1000, b"short")])


def test_setup_name_length_checked() -> None:
    with pytest.raises(CorruptStream, match="name length"):
        Setup.unpack(SETUP.pack() + b"!")


def test_pump_frames_like_data_and_propagates_errors() -> None:
    parts_a: list[bytes] = []
    parts_b: list[bytes] = []
    a = StreamWriter(parts_a.append)
    b = StreamWriter(parts_b.append)
    chunks = [b"x" * 10, b"", b"y" * 5000, b"z"]
    assert a.pump(iter(chunks)) == 5011
    for c in chunks:
        b.data(c)
    assert b"".join(parts_a) == b"".join(parts_b)

    def broken() -> Iterator[bytes]:
        yield b"ok"
        raise OSError(5, "read failed")

    with pytest.raises(OSError, match="read failed"):
        StreamWriter(parts_a.append).pump(broken())


def test_config_section_checked_by_pci_state_decoder() -> None:
    """A CONFIG section must be a valid pyvfio.pci.state blob; garbage is corruption, found at read time."""
    with pytest.raises(CorruptStream, match="CONFIG section"):
        parse_stream(build(extra=[(Section.CONFIG, b"not a config blob")]))
