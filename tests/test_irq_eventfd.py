"""pyvfio.irq.eventfd: eventfds as vectors, read without consuming, and the VMM's handler table."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from pyvfio.irq.eventfd import EventFd, EventFdVectors, FdHandlers, eventfd_count, is_eventfd


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds_checked() -> Iterator[None]:
    before = open_fds()
    yield
    assert open_fds() == before, "descriptors leaked"


def test_signal_count_read(fds_checked: None) -> None:
    with EventFd() as e:
        assert e.count() == 0 and not e.ready() and e.read() == 0
        e.signal()
        e.signal(2)
        assert e.count() == 3 and e.ready()
        assert e.count() == 3  # looking does not consume
        assert e.read() == 3
        assert e.count() == 0 and e.read() == 0
        assert "count=0" in repr(e)
    assert e.closed and repr(e) == "EventFd(closed)"
    with pytest.raises(ValueError, match="closed"):
        e.signal()
    e.close()  # twice is fine


def test_wait_times_out_or_consumes(fds_checked: None) -> None:
    with EventFd() as e:
        assert e.wait(0.01) == 0
        e.signal(5)
        assert e.wait(0.01) == 5


def test_semaphore_mode_takes_one_at_a_time(fds_checked: None) -> None:
    with EventFd(3, semaphore=True) as e:
        assert [e.read(), e.read(), e.read(), e.read()] == [1, 1, 1, 0]


def test_flags_are_cloexec_and_nonblocking(fds_checked: None) -> None:
    with EventFd() as e:
        assert not os.get_inheritable(e.fd) and not os.get_blocking(e.fd)
        assert is_eventfd(e.fd)


def test_adopt_and_detach(fds_checked: None) -> None:
    raw = os.eventfd(7)  # blocking, as another process might hand it over
    e = EventFd.adopt(raw)
    assert e.fd == raw and not os.get_blocking(raw) and e.count() == 7
    assert e.detach() == raw and e.closed
    os.close(raw)
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="not an eventfd"):
            EventFd.adopt(r)
        with pytest.raises(ValueError, match="not an eventfd"):
            eventfd_count(r)
        assert not is_eventfd(r)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError, match="not an open descriptor"):
        eventfd_count(r)


def test_vectors_allocate_grow_poll_close(fds_checked: None) -> None:
    with EventFdVectors(2) as vecs:
        assert len(vecs) == 2 and repr(vecs) == "EventFdVectors(2)"
        first = vecs.fds()
        vecs.allocate(5)
        vecs.allocate(3)  # never shrinks
        assert len(vecs) == 5 and vecs.fds()[:2] == first and vecs.fds(1, 2) == first[1:] + [vecs[2].fd]
        assert vecs.poll() == {}
        vecs[1].signal()
        vecs[4].signal(3)
        assert vecs.counts() == [0, 1, 0, 0, 3]
        assert vecs.poll(0.1) == {1: 1, 4: 3}
        assert vecs.counts() == [0] * 5
        assert [e.fd for e in vecs] == vecs.fds()
        with pytest.raises(ValueError):
            vecs.allocate(-1)
    assert len(vecs) == 0 and vecs.poll() == {}


def test_handlers_dispatch_consume_and_removal(fds_checked: None) -> None:
    handlers = FdHandlers()
    assert handlers.dispatch() == 0
    with EventFd() as a, EventFd() as b:
        got: list[tuple[str, int]] = []
        handlers.set_handler(a.fd, lambda n: got.append(("a", n)))
        handlers.set_handler(b.fd, lambda n: got.append(("b", n)))
        assert len(handlers) == 2 and handlers.has_handler(a.fd)
        a.signal(2)
        assert handlers.dispatch(0.1) == 1 and got == [("a", 2)] and a.count() == 0
        handlers.set_handler(a.fd, lambda n: got.append(("a2", n)))  # replaced, not doubled
        a.signal()
        assert handlers.dispatch() == 1 and got[-1] == ("a2", 1)
        assert handlers.remove_handler(b.fd) and not handlers.remove_handler(b.fd)
        b.signal()
        assert handlers.dispatch() == 0 and b.count() == 1  # nobody consumes it now
        handlers.set_handler(b.fd, lambda n: got.append(("b", n)))
        assert handlers.dispatch() == 1 and got[-1] == ("b", 1)  # the waiting signal is found later
        handlers.clear()
        assert len(handlers) == 0 and "[]" in repr(handlers)


def test_a_handler_may_remove_another_during_dispatch(fds_checked: None) -> None:
    handlers = FdHandlers()
    with EventFd() as a, EventFd() as b:
        ran: list[str] = []

        def on_a(n: int) -> None:
            ran.append("a")
            handlers.remove_handler(b.fd)

        def on_b(n: int) -> None:
            ran.append("b")
            handlers.remove_handler(a.fd)

        handlers.set_handler(a.fd, on_a)
        handlers.set_handler(b.fd, on_b)
        a.signal()
        b.signal()
        assert handlers.dispatch() == 1 and len(ran) == 1  # whichever ran first removed the other
        survivor = b if ran == ["a"] else a
        assert survivor.count() == 1
