"""Ownership for the object layer: who closes what, and in which order.

Every pyvfio object that owns a descriptor (or an object id in the kernel)
is a :class:`Resource`.  A resource *adopts* the resources created through
it -- a container its groups, a group its devices, an iommufd its IOASes,
page tables, fault queues and cdev devices -- and closing it closes them
first, newest first: the reverse of the order a VMM built them in, which is
the only order the kernel accepts without ``EBUSY`` (a device before the
page table it is attached to, a page table before its IOAS).

Closing never stops half-way.  Each child is closed even if an earlier one
failed; the first error is raised after everything was released, so a
failure to unmap cannot leak a descriptor.  Inside a ``with`` block that is
already unwinding an exception, close errors are logged instead of raised,
so they never hide the error that matters.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, TypeVar

log = logging.getLogger("pyvfio")

_R = TypeVar("_R", bound="Resource")


class Resource:
    """Something that must be closed, and the resources it created."""

    closed: bool = False

    def __init__(self) -> None:
        self.closed = False
        self._parent: Optional[Resource] = None
        self._children: list[Resource] = []

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as e:  # never replace the exception that is unwinding
            log.warning("closing %r while handling %s failed: %s", self, exc_type.__name__, e)

    def _adopt(self, child: "Resource") -> None:
        child._parent = self
        self._children.append(child)

    def _check_open(self, what: str = "") -> None:
        if self.closed:
            raise ValueError(f"{type(self).__name__} is closed{': cannot ' + what if what else ''}")

    def _close_self(self) -> None:
        """Release what this object itself holds (its descriptor, its object id)."""

    def close(self) -> None:
        """Close the children (newest first), then this object.  Idempotent."""
        if self.closed:
            return
        first: Optional[BaseException] = None
        for child in reversed(list(self._children)):
            try:
                child.close()
            except Exception as e:
                log.debug("closing %r failed: %s", child, e)
                first = first or e
        try:
            self._close_self()
        except Exception as e:
            first = first or e
        finally:
            self.closed = True
            if self._parent is not None and self in self._parent._children:
                self._parent._children.remove(self)
        if first is not None:
            raise first
