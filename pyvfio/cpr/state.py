"""What survives a CPR hand-off: preserved descriptors by name, and a versioned state blob.

The kernel objects (container, groups, iommufd, devices, eventfds, guest RAM)
outlive the process; what the new process lacks is *which* descriptor is
which and the few facts it cannot ask the kernel for (the DMA mapping list,
the iommufd object ids, which eventfd serves which vector).  QEMU keeps the
first in a ``(name, id) -> fd`` list (``cpr_save_fd``/``cpr_find_fd``) and the
second in vmstate; here both travel as one blob.

The blob is explicitly big-endian so it reads the same whatever produced it:
``magic (8) | version u16 | count u16`` and then ``count`` sections, each
``tag (4 ASCII) | length u32 | payload``.  Unknown tags are skipped, so a newer
writer may add sections; a different major layout bumps :data:`VERSION` and is
refused with a message naming both versions.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

MAGIC = b"PYVFCPR\0"
VERSION = 1

_HEAD = struct.Struct(">8sHH")
_SECTION = struct.Struct(">4sI")
_FD = struct.Struct(">Hi")          # name length, id; then the name; fd number follows as >i
_DEV = struct.Struct(">HiII")       # name length, devid, ioas_id, hwpt_id; then the name
_MAP = struct.Struct(">QQQI")       # iova, size, offset in the RAM file, flags
_VEC = struct.Struct(">HII")        # device name length, irq index, vector; then the name


class CprStateError(ValueError):
    """A state blob that cannot be used: wrong magic, version, or a truncated section."""


class FdRegistry:
    """Preserved descriptors by ``(name, id)``, the model of QEMU's CprState fd list.

    Names follow QEMU where it has one: ``("vfio_container", 0)``,
    ``("vfio_group", groupid)``, ``(devname, 0)`` for a device,
    ``("iommufd", 0)``, ``("<devname>_interrupt", vector)`` for an eventfd.
    The registry does not own the descriptors; :meth:`close_all` is for the
    side that received them and gives up.
    """

    def __init__(self) -> None:
        self._fds: dict[tuple[str, int], int] = {}

    def save_fd(self, name: str, id: int, fd: int) -> None:
        if fd < 0:
            raise ValueError(f"cpr_save_fd({name!r}, {id}): {fd} is not a descriptor")
        self._fds[(name, id)] = fd

    def find_fd(self, name: str, id: int) -> int:
        """The descriptor saved as ``(name, id)``, or -1 (as ``cpr_find_fd``)."""
        return self._fds.get((name, id), -1)

    def require_fd(self, name: str, id: int) -> int:
        fd = self.find_fd(name, id)
        if fd < 0:
            raise CprStateError(f"no preserved descriptor named ({name!r}, {id})")
        return fd

    def delete_fd(self, name: str, id: int) -> None:
        self._fds.pop((name, id), None)

    def items(self) -> list[tuple[tuple[str, int], int]]:
        return sorted(self._fds.items())

    def fds(self) -> list[int]:
        return [fd for _, fd in self.items()]

    def __len__(self) -> int:
        return len(self._fds)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(sorted(self._fds))

    def close_all(self, closer: Any = None) -> None:
        """Close every saved descriptor once (``closer`` defaults to ``os.close``) and forget them."""
        import os

        close = closer or os.close
        for fd in sorted(set(self._fds.values())):
            try:
                close(fd)
            except OSError:
                pass
        self._fds.clear()


@dataclass
class DeviceRecord:
    """A device by name; the iommufd ids are -1/0 under the legacy backend."""

    name: str
    devid: int = -1
    ioas_id: int = 0
    hwpt_id: int = 0


@dataclass
class MappingRecord:
    """One DMA mapping: ``size`` bytes at ``iova``, backed by the RAM file at ``offset``."""

    iova: int
    size: int
    offset: int
    flags: int = 0  # MAPPING_FILE when mapped with IOMMU_IOAS_MAP_FILE


MAPPING_FILE = 1


@dataclass
class VectorRecord:
    """Eventfd ``("<device>_interrupt", vector)`` serves vector ``vector`` of IRQ index ``index``."""

    device: str
    index: int
    vector: int


@dataclass
class CprState:
    """Everything the new process needs besides the descriptors themselves."""

    backend: str = "legacy"
    devices: list[DeviceRecord] = field(default_factory=list)
    mappings: list[MappingRecord] = field(default_factory=list)
    vectors: list[VectorRecord] = field(default_factory=list)
    #: raw virtual config space per device (e.g. from pyvfio.pci.state), restored by the owner, not by CPR
    config: dict[str, bytes] = field(default_factory=dict)
    #: INTx per device: (pending, route mode, route irq) as QEMU's vfio-cpr-pci section
    intx: dict[str, tuple[bool, int, int]] = field(default_factory=dict)
    #: the application's own facts (JSON-able): counters, paths, timestamps
    app: dict[str, Any] = field(default_factory=dict)

    def device(self, name: str) -> DeviceRecord:
        for d in self.devices:
            if d.name == name:
                return d
        raise CprStateError(f"state has no device named {name!r}")


def _name(b: str) -> bytes:
    raw = b.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long: {b[:40]!r}...")
    return raw


def encode(state: CprState, registry: Optional[FdRegistry] = None) -> bytes:
    """The blob for ``state`` and (fd numbers as this process holds them) ``registry``."""
    sections: list[tuple[bytes, bytes]] = [(b"BACK", state.backend.encode())]
    if registry is not None:
        out = bytearray()
        for (name, id), fd in registry.items():
            n = _name(name)
            out += _FD.pack(len(n), id) + n + struct.pack(">i", fd)
        sections.append((b"FDS ", bytes(out)))
    out = bytearray()
    for d in state.devices:
        n = _name(d.name)
        out += _DEV.pack(len(n), d.devid, d.ioas_id, d.hwpt_id) + n
    sections.append((b"DEVS", bytes(out)))
    sections.append((b"MAPS", b"".join(_MAP.pack(m.iova, m.size, m.offset, m.flags) for m in state.mappings)))
    out = bytearray()
    for v in state.vectors:
        n = _name(v.device)
        out += _VEC.pack(len(n), v.index, v.vector) + n
    sections.append((b"VECS", bytes(out)))
    for dev, cfg in sorted(state.config.items()):
        n = _name(dev)
        sections.append((b"PCFG", struct.pack(">H", len(n)) + n + cfg))
    for dev, (pending, mode, irq) in sorted(state.intx.items()):
        n = _name(dev)
        sections.append((b"INTX", struct.pack(">H", len(n)) + n + struct.pack(">?Ii", pending, mode, irq)))
    sections.append((b"APP ", json.dumps(state.app, sort_keys=True).encode()))
    body = b"".join(_SECTION.pack(tag, len(p)) + p for tag, p in sections)
    return _HEAD.pack(MAGIC, VERSION, len(sections)) + body


def decode(blob: bytes) -> tuple[CprState, FdRegistry]:
    """Parse a blob; the registry holds the fd numbers the writer recorded (valid across exec only)."""
    if len(blob) < _HEAD.size:
        raise CprStateError(f"CPR state is {len(blob)} bytes: too short for its header")
    magic, version, count = _HEAD.unpack_from(blob)
    if magic != MAGIC:
        raise CprStateError(f"not a pyvfio CPR state (magic {magic!r})")
    if version != VERSION:
        raise CprStateError(f"CPR state version {version}; this pyvfio reads version {VERSION}")
    state, reg = CprState(), FdRegistry()
    pos = _HEAD.size
    for _ in range(count):
        if pos + _SECTION.size > len(blob):
            raise CprStateError("CPR state truncated in a section header")
        tag, length = _SECTION.unpack_from(blob, pos)
        pos += _SECTION.size
        p = blob[pos:pos + length]
        if len(p) != length:
            raise CprStateError(f"CPR state section {tag!r} truncated ({len(p)} of {length} bytes)")
        pos += length
        try:
            _decode_section(tag, p, state, reg)
        except struct.error as e:
            raise CprStateError(f"CPR state section {tag!r} is malformed: {e}") from None
    return state, reg


def _decode_section(tag: bytes, p: bytes, state: CprState, reg: FdRegistry) -> None:
    i = 0
    if tag == b"BACK":
        state.backend = p.decode()
    elif tag == b"FDS ":
        while i < len(p):
            n, id = _FD.unpack_from(p, i)
            i += _FD.size
            name = p[i:i + n].decode()
            i += n
            (fd,) = struct.unpack_from(">i", p, i)
            i += 4
            reg.save_fd(name, id, fd)
    elif tag == b"DEVS":
        while i < len(p):
            n, devid, ioas, hwpt = _DEV.unpack_from(p, i)
            i += _DEV.size
            state.devices.append(DeviceRecord(p[i:i + n].decode(), devid, ioas, hwpt))
            i += n
    elif tag == b"MAPS":
        if len(p) % _MAP.size:
            raise CprStateError(f"MAPS section of {len(p)} bytes is not whole records")
        state.mappings = [MappingRecord(*rec) for rec in _MAP.iter_unpack(p)]
    elif tag == b"VECS":
        while i < len(p):
            n, index, vector = _VEC.unpack_from(p, i)
            i += _VEC.size
            state.vectors.append(VectorRecord(p[i:i + n].decode(), index, vector))
            i += n
    elif tag == b"PCFG":
        (n,) = struct.unpack_from(">H", p)
        state.config[p[2:2 + n].decode()] = bytes(p[2 + n:])
    elif tag == b"INTX":
        (n,) = struct.unpack_from(">H", p)
        pending, mode, irq = struct.unpack_from(">?Ii", p, 2 + n)
        state.intx[p[2:2 + n].decode()] = (pending, mode, irq)
    elif tag == b"APP ":
        state.app = json.loads(p.decode())
    # unknown tags: a newer writer's extra section, skipped


def vector_name(device: str) -> str:
    """The registry name of a device's interrupt eventfds (QEMU: ``"<devname>_interrupt"``)."""
    return f"{device}_interrupt"
