"""pyvfio's migration stream: framed, checksummed sections with explicit big-endian lengths.

The shape follows QEMU's VFIO stream (``hw/vfio/migration.c``): 64-bit
markers ``0xffffffffef10xxxx``, a setup section, device data blocks with a
length in front, an end-of-state marker closing every round.  What is added,
and why:

- every section carries its length *and* a CRC-32 over marker, length and
  payload, so a corrupt or cut stream is recognised before anything reaches
  the destination device (QEMU trusts the transport; a reference should not);
- a file header with magic and ``major.minor`` version.  The compatibility rule
  answers seed 002's debate without demanding an exact version: the major
  must match; a newer minor may only add *optional* sections, flagged by bit
  15 of the section type, which an older reader skips.  A section type the
  reader does not know and that is not optional means the writer relied on
  something this reader cannot do, so the stream is rejected as incompatible;
- a COMPLETE section ends the final round: a stream that stops before it is
  truncated, however well-formed the rounds before it were;
- one header flag (version 1.1), ``FLAG_DATA_UNCHECKED``: DATA sections' CRC
  then covers only their marker and length, not the payload.  CRC-32 costs
  about 0.25 ns a byte of CPU (zlib's table-driven code); where the sender's
  cores are all busy that is the difference between a stream that keeps up
  with a raw copy and one that does not.  A user whose transport already
  checks the bytes (TCP, TLS) may trade it; every other section stays
  checked, so a cut or misframed stream is still caught.

Layout (all integers big-endian)::

    header   : b"PYVFIOMS"  u16 major  u16 minor  u32 flags  u32 crc32(header so far)
    section  : u64 marker  u64 length  payload[length]  u32 crc32(marker..payload)
    round    : section* END_OF_STATE
    stream   : header round+          (the last round holds COMPLETE before its END)

Section types (low 16 bits of the marker):

==========  ======  ===================================================================
END         0x0001  closes a round (empty)
CONFIG      0x0002  the guest's virtual PCI config state: a ``pyvfio.pci.state`` blob (BARs, COMMAND,
                    MSI, MSI-X table and PBA), checked with its own decoder when the stream is read
SETUP       0x0003  device identity and migration capabilities (first round only)
DATA        0x0004  opaque device data, in order (``read()`` of the data fd)
INIT_SENT   0x0005  the device's initial pre-copy data has all been sent (switchover hint)
COMPLETE    0x0006  the device's final data has been sent; nothing follows but END
MEMORY      0x0020  guest memory pages: u64 page_size, then runs of u64 iova, u64 npages, bytes
RAW_CONFIG  0x8011  optional: the raw 256-byte config space as read, for diagnosis and a later
                    PCI layer; a reader that does not know it may skip it
==========  ======  ===================================================================
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import struct
import threading
import zlib
from typing import Callable, Final, Iterator, Optional

from ..pci.state import StateError
from ..pci.state import decode as decode_config_state
from .device import MigrationError

__all__ = [
    "MAGIC", "VERSION_MAJOR", "VERSION_MINOR", "FLAG_DATA_UNCHECKED", "MARKER_BASE", "OPTIONAL", "Section", "Setup",
    "MigrationImage",
    "StreamError", "TruncatedStream", "CorruptStream", "IncompatibleStream", "StreamWriter", "StreamReader",
    "parse_stream", "marker",
]

MAGIC: Final = b"PYVFIOMS"
VERSION_MAJOR: Final = 1
VERSION_MINOR: Final = 1
#: Header flag (since 1.1): DATA payloads are not covered by their section's CRC.
FLAG_DATA_UNCHECKED: Final = 0x1
_KNOWN_FLAGS: Final = FLAG_DATA_UNCHECKED
MARKER_BASE: Final = 0xFFFFFFFFEF100000
#: Bit of a section type that lets a reader skip it when it does not know the type.
OPTIONAL: Final = 0x8000
#: Upper bound on one section's payload: a corrupt length must not make the reader allocate gigabytes.
MAX_SECTION: Final = 1 << 30

_HEADER = struct.Struct(">8sHHI")
_SECTION = struct.Struct(">QQ")
_CRC = struct.Struct(">I")
_SETUP = struct.Struct(">IQHHH")  # migration flags, stop_copy_length, vendor, device, name length
_RUN = struct.Struct(">QQ")


class Section(enum.IntEnum):
    END = 0x0001
    CONFIG = 0x0002
    SETUP = 0x0003
    DATA = 0x0004
    INIT_SENT = 0x0005
    COMPLETE = 0x0006
    MEMORY = 0x0020
    RAW_CONFIG = 0x8011


def marker(kind: int) -> int:
    return MARKER_BASE | kind


def _section_crc(kind: int, head: bytes, payload: bytes, data_unchecked: bool) -> int:
    """The CRC a section carries: over its marker, length and payload -- minus a DATA payload when unchecked."""
    if data_unchecked and kind == Section.DATA:
        return zlib.crc32(head)
    return zlib.crc32(payload, zlib.crc32(head))


class StreamError(MigrationError):
    """A migration stream that cannot be applied; nothing of it has reached the device."""


class TruncatedStream(StreamError):
    """The stream ended before its COMPLETE round (connection cut, file short)."""


class CorruptStream(StreamError):
    """Bytes that are not a valid stream: bad magic, bad marker, checksum mismatch, bad section layout."""


class IncompatibleStream(StreamError):
    """A valid stream this reader or this device cannot take: other major version, unknown required
    section, or a device that does not match the source."""


@dataclasses.dataclass(frozen=True)
class Setup:
    """What the source says about its device: enough to refuse a mismatched destination early."""

    migration_flags: int
    stop_copy_length: int
    vendor: int
    device: int
    name: str

    def pack(self) -> bytes:
        raw = self.name.encode()
        return _SETUP.pack(self.migration_flags, self.stop_copy_length, self.vendor, self.device, len(raw)) + raw

    @classmethod
    def unpack(cls, payload: bytes) -> "Setup":
        if len(payload) < _SETUP.size:
            raise CorruptStream(f"SETUP section of {len(payload)} bytes, at least {_SETUP.size} expected")
        flags, size, vendor, device, n = _SETUP.unpack_from(payload)
        if len(payload) != _SETUP.size + n:
            raise CorruptStream(f"SETUP section: name length {n} does not match the {len(payload)}-byte payload")
        try:
            name = payload[_SETUP.size:].decode()
        except UnicodeDecodeError:
            raise CorruptStream("SETUP section: device name is not UTF-8") from None
        return cls(flags, size, vendor, device, name)


@dataclasses.dataclass
class MigrationImage:
    """A fully received and validated stream, not yet applied to anything."""

    version: tuple[int, int] = (VERSION_MAJOR, VERSION_MINOR)
    setup: Optional[Setup] = None
    device_data: list[bytes] = dataclasses.field(default_factory=list)
    config: Optional[bytes] = None
    raw_config: Optional[bytes] = None
    page_size: int = 0
    memory: dict[int, bytes] = dataclasses.field(default_factory=dict)  # page-aligned iova -> one page
    init_data_sent: bool = False
    complete: bool = False
    rounds: int = 0
    skipped: list[int] = dataclasses.field(default_factory=list)  # optional section types not understood

    @property
    def device_bytes(self) -> bytes:
        return b"".join(self.device_data)


def pack_memory(page_size: int, runs: list[tuple[int, bytes]]) -> bytes:
    """A MEMORY payload: ``runs`` are (iova, bytes) with page-aligned iova and whole pages."""
    out = [struct.pack(">Q", page_size)]
    for iova, data in runs:
        if iova % page_size or len(data) % page_size or not data:
            raise ValueError(f"memory run {iova:#x}+{len(data):#x} is not whole pages of {page_size:#x}")
        out.append(_RUN.pack(iova, len(data) // page_size))
        out.append(data)
    return b"".join(out)


def unpack_memory(payload: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    if len(payload) < 8:
        raise CorruptStream("MEMORY section shorter than its page size field")
    (page_size,) = struct.unpack_from(">Q", payload)
    if page_size < 512 or page_size & (page_size - 1) or page_size > 1 << 30:
        raise CorruptStream(f"MEMORY section: page size {page_size:#x} is not a power of two in [512, 1 GiB]")
    runs = []
    pos = 8
    while pos < len(payload):
        if pos + _RUN.size > len(payload):
            raise CorruptStream("MEMORY section: a run header is cut off")
        iova, npages = _RUN.unpack_from(payload, pos)
        pos += _RUN.size
        n = npages * page_size
        if npages == 0 or iova % page_size or pos + n > len(payload) or iova + n > 1 << 64:
            raise CorruptStream(f"MEMORY section: run {iova:#x} x {npages} pages does not fit the section")
        runs.append((iova, payload[pos: pos + n]))
        pos += n
    return page_size, runs


class StreamWriter:
    """Writes a stream to ``sink`` (a socket's ``sendall``, a list's ``append``...), section by section."""

    def __init__(self, sink: Callable[[bytes], object], *, minor: int = VERSION_MINOR,
                 data_checksum: bool = True) -> None:
        """``data_checksum=False`` sets ``FLAG_DATA_UNCHECKED`` (see the module text for the trade)."""
        if not data_checksum and minor < 1:
            raise ValueError("FLAG_DATA_UNCHECKED needs stream version 1.1 or later")
        self.sink = sink
        self.bytes_written = 0
        self.data_checksum = data_checksum
        head = _HEADER.pack(MAGIC, VERSION_MAJOR, minor, 0 if data_checksum else FLAG_DATA_UNCHECKED)
        self._emit(head + _CRC.pack(zlib.crc32(head)))

    def _emit(self, data: bytes) -> None:
        self.sink(data)
        self.bytes_written += len(data)

    def frame(self, kind: int, payload: bytes) -> tuple[bytes, bytes]:
        """(marker + length, checksum) around ``payload``: what :meth:`section` writes."""
        head = _SECTION.pack(marker(kind), len(payload))
        return head, _CRC.pack(_section_crc(kind, head, payload, not self.data_checksum))

    def section(self, kind: int, payload: bytes = b"") -> None:
        head, crc = self.frame(kind, payload)
        if len(payload) < 4096:
            self._emit(head + payload + crc)
        else:  # no copy of a large payload just to prepend 16 bytes
            self._emit(head)
            self._emit(payload)
            self._emit(crc)

    def pump(self, chunks: Iterator[bytes], depth: int = 2) -> int:
        """DATA sections for every chunk, read and checksummed one step ahead of the sending.

        ``chunks`` (a data fd's reads) and ``zlib.crc32`` both release the
        GIL, as does a socket's ``sendall``; running the first two in a helper
        thread overlaps them with the send, so checksums cost little
        throughput.  Returns the payload bytes sent.  An exception in the
        reader is re-raised here.
        """
        q: "queue.Queue[Optional[tuple[bytes, bytes, bytes]] | BaseException]" = queue.Queue(depth)

        def produce() -> None:
            try:
                for chunk in chunks:
                    if chunk:
                        head, crc = self.frame(Section.DATA, chunk)
                        q.put((head, chunk, crc))
                q.put(None)
            except BaseException as e:  # handed to the sending thread
                q.put(e)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        total = 0
        try:
            while True:
                item = q.get()
                if item is None:
                    return total
                if isinstance(item, BaseException):
                    raise item
                for part in item:
                    self._emit(part)
                total += len(item[1])
        finally:
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(0.01)

    def setup(self, setup: Setup) -> None:
        self.section(Section.SETUP, setup.pack())

    def data(self, payload: bytes) -> None:
        """A DATA block; empty reads produce no block (as QEMU: ENOMSG or 0 writes nothing)."""
        if payload:
            self.section(Section.DATA, payload)

    def end_round(self) -> None:
        self.section(Section.END)

    def complete(self) -> None:
        self.section(Section.COMPLETE)
        self.section(Section.END)


class StreamReader:
    """Reads and validates a stream from ``read_exact(n)`` (returns fewer bytes only at end of input).

    :meth:`read_all` returns a :class:`MigrationImage` only once the whole
    stream, COMPLETE round included, has been received and checked; any
    problem raises a :class:`StreamError` subclass and nothing is applied.
    """

    def __init__(self, read_exact: Callable[[int], bytes]) -> None:
        self._read = read_exact
        self.bytes_read = 0
        self.data_unchecked = False

    def _need(self, n: int, what: str) -> bytes:
        data = self._read(n) if n else b""
        self.bytes_read += len(data)
        if len(data) != n:
            raise TruncatedStream(f"stream ends inside {what}: {len(data)} of {n} bytes")
        return data

    def read_header(self) -> tuple[int, int]:
        head = self._need(_HEADER.size, "the stream header")
        magic, major, minor, flags = _HEADER.unpack(head)
        if magic != MAGIC:
            raise CorruptStream(f"not a pyvfio migration stream (magic {magic!r}, expected {MAGIC!r})")
        (crc,) = _CRC.unpack(self._need(_CRC.size, "the stream header checksum"))
        if zlib.crc32(head) != crc:
            raise CorruptStream("checksum mismatch in the stream header")
        if major != VERSION_MAJOR:
            raise IncompatibleStream(f"stream version {major}.{minor}: this reader takes major version "
                                     f"{VERSION_MAJOR} (any minor)")
        if flags & ~_KNOWN_FLAGS or (flags and minor < 1):
            raise IncompatibleStream(f"stream header flags {flags:#x} in version {major}.{minor}: this reader "
                                     f"knows {_KNOWN_FLAGS:#x} (since {VERSION_MAJOR}.1)")
        self.data_unchecked = bool(flags & FLAG_DATA_UNCHECKED)
        return major, minor

    def read_section(self) -> tuple[int, bytes]:
        head = self._need(_SECTION.size, "a section header")
        mark, length = _SECTION.unpack(head)
        if mark & ~0xFFFF != MARKER_BASE:
            raise CorruptStream(f"bad section marker {mark:#018x} at byte {self.bytes_read - _SECTION.size}")
        if length > MAX_SECTION:
            raise CorruptStream(f"section {mark & 0xFFFF:#06x} claims {length} bytes (limit {MAX_SECTION})")
        payload = self._need(length, f"section {mark & 0xFFFF:#06x}")
        (crc,) = _CRC.unpack(self._need(_CRC.size, "a section checksum"))
        if _section_crc(mark & 0xFFFF, head, payload, self.data_unchecked) != crc:
            raise CorruptStream(f"checksum mismatch in section {mark & 0xFFFF:#06x} ({length} bytes)")
        return mark & 0xFFFF, payload

    def read_round(self, image: MigrationImage) -> None:
        """One round, up to its END, merged into ``image``."""
        while True:
            kind, payload = self.read_section()
            if kind == Section.END:
                if payload:
                    raise CorruptStream("END section with a payload")
                image.rounds += 1
                return
            if image.complete:
                raise CorruptStream(f"section {kind:#06x} after COMPLETE")
            self._apply(image, kind, payload)

    def _apply(self, image: MigrationImage, kind: int, payload: bytes) -> None:
        if kind == Section.SETUP:
            if image.setup is not None or image.rounds:
                raise CorruptStream("SETUP section outside the first round, or twice")
            image.setup = Setup.unpack(payload)
            return
        if image.setup is None:
            raise CorruptStream(f"section {kind:#06x} before SETUP")
        if kind == Section.DATA:
            if not payload:
                raise CorruptStream("empty DATA section")
            image.device_data.append(payload)
        elif kind == Section.INIT_SENT:
            image.init_data_sent = True
        elif kind == Section.COMPLETE:
            image.complete = True
        elif kind == Section.CONFIG:
            if image.config is not None:
                raise CorruptStream("two CONFIG sections")
            try:
                decode_config_state(payload)
            except StateError as e:
                raise CorruptStream(f"CONFIG section: {e}") from None
            image.config = payload
        elif kind == Section.RAW_CONFIG:
            if len(payload) != 256:
                raise CorruptStream(f"RAW_CONFIG of {len(payload)} bytes, 256 expected")
            image.raw_config = payload
        elif kind == Section.MEMORY:
            page_size, runs = unpack_memory(payload)
            if image.page_size and page_size != image.page_size:
                raise CorruptStream(f"MEMORY page size changed from {image.page_size:#x} to {page_size:#x}")
            image.page_size = page_size
            for iova, data in runs:
                for off in range(0, len(data), page_size):
                    image.memory[iova + off] = data[off: off + page_size]
        elif kind & OPTIONAL:
            image.skipped.append(kind)
        else:
            raise IncompatibleStream(f"required section type {kind:#06x} is unknown to this reader "
                                     f"(version {VERSION_MAJOR}.{VERSION_MINOR}); a newer writer must mark "
                                     "sections an older reader may ignore as optional")

    def read_all(self) -> MigrationImage:
        major, minor = self.read_header()
        image = MigrationImage(version=(major, minor))
        while not image.complete:
            self.read_round(image)
        return image


def parse_stream(data: bytes) -> MigrationImage:
    """Validate a whole stream held in memory; trailing bytes after the final END are corruption."""
    pos = 0

    def read_exact(n: int) -> bytes:
        nonlocal pos
        out = data[pos: pos + n]
        pos += len(out)
        return out

    image = StreamReader(read_exact).read_all()
    if pos != len(data):
        raise CorruptStream(f"{len(data) - pos} bytes after the end of the stream")
    return image
