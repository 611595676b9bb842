"""The CPR state blob and fd registry: layout, versioning, and refusal of damaged input."""

from __future__ import annotations

import struct

import pytest

from pyvfio.cpr.blockers import Blocker, CprBlocked, require_none
from pyvfio.cpr.state import (MAGIC, VERSION, CprState, CprStateError, DeviceRecord, FdRegistry, MappingRecord,
                              VectorRecord, decode, encode)


def sample() -> tuple[CprState, FdRegistry]:
    st = CprState(backend="iommufd", devices=[DeviceRecord("0000:00:03.0", 1, 2, 3)],
                  mappings=[MappingRecord(0x100000 + i * 4096, 4096, i * 4096, 1) for i in range(3)],
                  vectors=[VectorRecord("0000:00:03.0", 2, v) for v in range(4)],
                  config={"0000:00:03.0": bytes(range(64))}, intx={"0000:00:03.0": (True, 1, 10)},
                  app={"sent": 5})
    reg = FdRegistry()
    reg.save_fd("iommufd", 0, 7)
    reg.save_fd("0000:00:03.0_interrupt", 3, 11)
    return st, reg


def test_round_trip_and_big_endian_header() -> None:
    st, reg = sample()
    blob = encode(st, reg)
    assert blob[:8] == MAGIC and struct.unpack(">H", blob[8:10])[0] == VERSION
    st2, reg2 = decode(blob)
    assert st2 == st and reg2.items() == reg.items()
    assert reg2.find_fd("nope", 0) == -1 and reg2.find_fd("0000:00:03.0_interrupt", 3) == 11


def test_damaged_blobs_are_refused_with_a_reason() -> None:
    blob = encode(*sample())
    with pytest.raises(CprStateError, match="magic"):
        decode(b"X" + blob[1:])
    with pytest.raises(CprStateError, match="version 2"):
        decode(blob[:8] + struct.pack(">H", 2) + blob[10:])
    with pytest.raises(CprStateError, match="truncated"):
        decode(blob[:-3])
    with pytest.raises(CprStateError, match="too short"):
        decode(blob[:5])


def test_unknown_sections_are_skipped() -> None:
    st, reg = sample()
    blob = encode(st, reg)
    count = struct.unpack(">H", blob[10:12])[0]
    extra = blob[:10] + struct.pack(">H", count + 1) + blob[12:] + b"ZZZZ" + struct.pack(">I", 3) + b"abc"
    assert decode(extra)[0] == st


def test_registry_rejects_bad_fds_and_require_names_the_key() -> None:
    reg = FdRegistry()
    with pytest.raises(ValueError):
        reg.save_fd("x", 0, -1)
    with pytest.raises(CprStateError, match="'vfio_group', 4"):
        reg.require_fd("vfio_group", 4)


def test_require_none_takes_only_lists() -> None:
    require_none([])
    with pytest.raises(CprBlocked, match="container: no UNMAP_ALL"):
        require_none([Blocker("container", "no UNMAP_ALL")])
    with pytest.raises(TypeError):
        require_none(None)  # type: ignore[arg-type]  # the seed-000 shape of the bug
