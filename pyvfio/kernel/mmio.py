"""The mmap-like face of a device window, built from two operations: read and write at an offset.

A BAR mapped on the real kernel is a memoryview; on the simulated kernel (in-process or server) every
access must reach the device model, so the mapping is an object that traps.  Users should not have to
care: all three present ``len()``, indexing and contiguous slicing (``m[0:4]``, ``m[0x10:0x14] = data``,
as Python's ``mmap`` does, with its exception types) and fixed-width little-endian helpers
(``read32``/``write32``...).  A subclass supplies ``__len__``, ``read``, ``write`` and ``close``.
"""

from __future__ import annotations

from typing import Any, Union


class WidthAccess:
    """Fixed-width little-endian accessors (``read32``, ``write64``...) over ``read``/``write`` at an offset.

    Shared by device mappings and by regions reached with pread/pwrite.
    """

    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def write(self, offset: int, data: bytes) -> Any:
        raise NotImplementedError

    def read8(self, offset: int) -> int:
        return self.read(offset, 1)[0]

    def read16(self, offset: int) -> int:
        return int.from_bytes(self.read(offset, 2), "little")

    def read32(self, offset: int) -> int:
        return int.from_bytes(self.read(offset, 4), "little")

    def read64(self, offset: int) -> int:
        return int.from_bytes(self.read(offset, 8), "little")

    def write8(self, offset: int, value: int) -> None:
        self.write(offset, (value & 0xFF).to_bytes(1, "little"))

    def write16(self, offset: int, value: int) -> None:
        self.write(offset, (value & 0xFFFF).to_bytes(2, "little"))

    def write32(self, offset: int, value: int) -> None:
        self.write(offset, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def write64(self, offset: int, value: int) -> None:
        self.write(offset, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))


class MmioWindow(WidthAccess):
    """Shared indexing, slicing, width helpers and context management for device mappings."""

    def __len__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self, *args: Any) -> None:
        """MMIO has nothing to write back; present so the object can stand in for an ``mmap``."""

    def _range(self, key: Union[int, slice]) -> tuple[int, int]:
        length = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(length)
            if step != 1:
                raise ValueError("device mappings are sliced contiguously")
            return start, max(stop - start, 0)
        if key < 0:
            key += length
        if not 0 <= key < length:
            raise IndexError("mmap index out of range")
        return key, 1

    def __getitem__(self, key: Union[int, slice]) -> Any:
        off, n = self._range(key)
        data = self.read(off, n)
        return data if isinstance(key, slice) else data[0]

    def __setitem__(self, key: Union[int, slice], value: Any) -> None:
        off, n = self._range(key)
        data = bytes(value) if isinstance(key, slice) else bytes([value])
        if len(data) != n:
            raise IndexError("mmap slice assignment is wrong size")
        self.write(off, data)
