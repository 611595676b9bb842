"""Eventfds as interrupt vectors, and the VMM's table of handlers for them.

Every VFIO interrupt reaches user space as an eventfd signal: the kernel's
handler for the device's vector adds 1 to the eventfd's 64-bit counter.
Whoever reads the eventfd *consumes* the interrupt -- the VMM's own handler,
or KVM when an irqfd is bound to it.  An eventfd that nobody reads keeps
counting: that is what makes it possible to hand a pending interrupt from one
consumer to another (SEMANTICS 5.4) without losing it.

Three things here:

* :class:`EventFd` -- one owned, non-blocking, close-on-exec eventfd with
  signal / read (consume) / wait / :meth:`EventFd.count` (look without
  consuming, through ``/proc/self/fdinfo``, which is how the hand-off tests
  see that an interrupt is still pending).
* :class:`EventFdVectors` -- ``n`` of them as a vector array: allocate,
  poll all at once, read every counter, close.
* :class:`FdHandlers` -- the VMM's "fd handler" table (QEMU's
  ``qemu_set_fd_handler``): eventfd -> callback, dispatched from a poll.
  Removing a handler is how a VMM stops consuming a vector's interrupts.
  Dispatch is explicit (no thread) so tests are deterministic; a VMM may run
  :meth:`FdHandlers.dispatch` from its own loop or thread.
"""

from __future__ import annotations

import os
import select
from typing import Callable, Iterator, Optional

__all__ = ["EventFd", "EventFdVectors", "FdHandlers", "eventfd_count", "is_eventfd"]

EFD_FLAGS = os.EFD_CLOEXEC | os.EFD_NONBLOCK


def is_eventfd(fd: int) -> bool:
    """Whether descriptor ``fd`` of this process is an eventfd (what the kernel checks with ``eventfd_ctx_fdget``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


def eventfd_count(fd: int) -> int:
    """The eventfd's counter, read without consuming it (``eventfd-count`` in ``/proc/self/fdinfo``).

    Reading the eventfd itself would reset the counter -- i.e. take the
    interrupt -- which is exactly what a test of "the interrupt is still
    pending" must not do.
    """
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("eventfd-count:"):
                    return int(line.split()[1], 16)
    except OSError as e:
        raise ValueError(f"fd {fd} is not an open descriptor of this process") from e
    raise ValueError(f"fd {fd} is not an eventfd")


class EventFd:
    """One eventfd owned by this object: the consumer side of an interrupt vector.

    Non-blocking and close-on-exec (a VMM that execs for CPR passes the ones it
    keeps explicitly).  ``semaphore`` makes each read take 1 instead of the
    whole count, which no interrupt path uses but tests may.
    """

    __slots__ = ("_fd",)

    def __init__(self, initval: int = 0, *, semaphore: bool = False) -> None:
        flags = EFD_FLAGS | (os.EFD_SEMAPHORE if semaphore else 0)
        self._fd = os.eventfd(initval, flags)

    @classmethod
    def adopt(cls, fd: int) -> "EventFd":
        """Take ownership of an existing eventfd descriptor (one inherited across exec, or received over a socket).

        The descriptor is made non-blocking, since every method here assumes it.
        """
        if not is_eventfd(fd):
            raise ValueError(f"fd {fd} is not an eventfd")
        os.set_blocking(fd, False)
        obj = cls.__new__(cls)
        obj._fd = fd
        return obj

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("the eventfd is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def signal(self, n: int = 1) -> None:
        """Add ``n`` to the counter, as the kernel's interrupt handler does (``eventfd_signal``)."""
        os.eventfd_write(self.fd, n)

    def read(self) -> int:
        """Consume the counter: the number of signals since the last read, 0 if none."""
        try:
            return int(os.eventfd_read(self.fd))
        except BlockingIOError:
            return 0

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait up to ``timeout`` seconds (None: forever) for a signal and consume it; 0 on timeout."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            return 0
        return self.read()

    def ready(self) -> bool:
        """Whether a read would return non-zero, without consuming anything."""
        return bool(select.select([self.fd], [], [], 0)[0])

    def count(self) -> int:
        """The counter without consuming it (see :func:`eventfd_count`)."""
        return eventfd_count(self.fd)

    def detach(self) -> int:
        """Give up ownership and return the descriptor (the caller closes it)."""
        fd, self._fd = self.fd, -1
        return fd

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "EventFd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._fd < 0:
            return "EventFd(closed)"
        return f"EventFd(fd={self._fd}, count={eventfd_count(self._fd)})"


class EventFdVectors:
    """``n`` eventfds used as the trigger of vectors ``0 .. n-1`` (what a VMM allocates for MSI/MSI-X).

    ``vectors[i]`` is vector ``i``'s :class:`EventFd`; :meth:`fds` gives the
    descriptor list ``SET_IRQS`` wants.  :meth:`allocate` grows the array (as
    MSI-X growth needs) without touching existing vectors.
    """

    def __init__(self, n: int = 0) -> None:
        self._vectors: list[EventFd] = []
        self.allocate(n)

    def allocate(self, n: int) -> None:
        """Make sure at least ``n`` vectors exist; on failure the ones this call made are closed."""
        if n < 0:
            raise ValueError(f"negative vector count {n}")
        made: list[EventFd] = []
        try:
            while len(self._vectors) + len(made) < n:
                made.append(EventFd())
        except OSError:
            for e in made:
                e.close()
            raise
        self._vectors.extend(made)

    def __len__(self) -> int:
        return len(self._vectors)

    def __getitem__(self, vector: int) -> EventFd:
        return self._vectors[vector]

    def __iter__(self) -> Iterator[EventFd]:
        return iter(self._vectors)

    def fds(self, start: int = 0, count: Optional[int] = None) -> list[int]:
        end = len(self._vectors) if count is None else start + count
        return [e.fd for e in self._vectors[start:end]]

    def poll(self, timeout: float = 0.0) -> dict[int, int]:
        """Wait up to ``timeout`` s for any vector; consume and return ``{vector: count}`` of those that fired."""
        if not self._vectors:
            return {}
        poller = select.poll()
        index = {}
        for i, e in enumerate(self._vectors):
            poller.register(e.fd, select.POLLIN)
            index[e.fd] = i
        fired: dict[int, int] = {}
        for fd, _ in poller.poll(max(0, int(timeout * 1000))):
            n = self._vectors[index[fd]].read()
            if n:
                fired[index[fd]] = n
        return fired

    def counts(self) -> list[int]:
        """Every vector's counter, not consumed."""
        return [e.count() for e in self._vectors]

    def close(self) -> None:
        vectors, self._vectors = self._vectors, []
        for e in vectors:
            e.close()

    def __enter__(self) -> "EventFdVectors":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventFdVectors({len(self._vectors)})"


Handler = Callable[[int], None]


class FdHandlers:
    """The VMM's table of eventfd handlers: who consumes a vector's interrupts in user space.

    :meth:`set_handler` registers ``callback(count)`` for an eventfd;
    :meth:`dispatch` polls all registered eventfds, *reads* (consumes) each
    ready one and calls its handler with the count.  :meth:`remove_handler`
    stops consuming: signals then accumulate in the eventfd's counter, where
    KVM (an irqfd assigned later) or a handler installed later finds them.
    The table does not own the descriptors.
    """

    def __init__(self) -> None:
        self._handlers: dict[int, Handler] = {}
        self._poller = select.poll()

    def set_handler(self, fd: int, callback: Handler) -> None:
        if fd in self._handlers:
            self._poller.modify(fd, select.POLLIN)
        else:
            self._poller.register(fd, select.POLLIN)
        self._handlers[fd] = callback

    def remove_handler(self, fd: int) -> bool:
        """Stop handling ``fd``; True if a handler was registered."""
        if self._handlers.pop(fd, None) is None:
            return False
        self._poller.unregister(fd)
        return True

    def has_handler(self, fd: int) -> bool:
        return fd in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def dispatch(self, timeout: float = 0.0) -> int:
        """Run the handlers of ready eventfds (waiting up to ``timeout`` s for the first); returns how many ran."""
        if not self._handlers:
            return 0
        ran = 0
        for fd, _ in self._poller.poll(max(0, int(timeout * 1000))):
            callback = self._handlers.get(fd)
            if callback is None:
                continue  # removed by an earlier handler of this round
            try:
                n = int(os.eventfd_read(fd))
            except BlockingIOError:
                continue
            callback(n)
            ran += 1
        return ran

    def clear(self) -> None:
        for fd in list(self._handlers):
            self.remove_handler(fd)

    def __repr__(self) -> str:
        return f"FdHandlers({sorted(self._handlers)})"
