"""Two private network namespaces joined by a veth pair, for migrating over a real (virtual) wire.

Loopback TCP proves the stream format, but every byte stays inside one
network stack.  With the two ends in separate network namespaces the
migration crosses a veth link -- routing, ARP, two TCP stacks -- the way it
would between two hosts, while still needing nothing but this machine.

The namespaces are *anonymous*: each is created by a short-lived thread
calling ``unshare(CLONE_NEWNET)`` and is then held only by a file descriptor
of this process (and by whatever processes later enter it).  Nothing is
named under ``/run/netns`` and nothing is created in the caller's own
namespace -- the veth pair is born inside namespace A with its peer end
handed straight to B -- so closing the two descriptors is the whole cleanup:
the kernel destroys a namespace, and with it the veth, once nothing refers
to it.  That is why no failure path can leave anything behind on the host.

Namespace membership is per *thread* on Linux.  Code runs "inside" a
namespace on a fresh thread that has called ``setns`` (:meth:`NetNamespace.run`),
so the caller's threads never move; children forked from that thread -- the
``ip`` commands -- start in the namespace too.  A process that should live
in a namespace for good (the migration destination) calls :func:`enter`
first thing, with the ``/proc/<pid>/fd/<n>`` path of the descriptor.

Python 3.11 has neither ``os.unshare`` nor ``os.setns``, hence the ctypes
calls into libc.  Links are configured with iproute2's ``ip`` command rather
than raw rtnetlink because the command lines are what a reader would type
by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, TypeVar

__all__ = ["DEFAULT_NETWORK", "NetNamespace", "NetnsError", "VethLink", "enter", "find_ip", "netns_available",
           "veth_pair"]

CLONE_NEWNET = 0x40000000
CAP_SYS_ADMIN = 21
IFNAMSIZ = 16

#: The private /30 the two ends are numbered from.  Inside fresh namespaces it can clash with nothing on the
#: host; it only has to be an address the reader recognises as "the demo link".
DEFAULT_NETWORK = "10.77.0.0/30"

T = TypeVar("T")


class NetnsError(OSError):
    """Setting up or using the namespaces failed; the message names the step (a libc call or a command line)."""


_libc: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    # Loaded lazily so importing this module costs nothing on platforms that will never call it.
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _unshare_net() -> None:
    if _lib().unshare(ctypes.c_int(CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")


def _setns(fd: int, what: str) -> None:
    if _lib().setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"setns({what}, CLONE_NEWNET) failed: {os.strerror(err)}")


def _on_thread(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a new thread and hand back its result or exception.

    A new thread each time, never a pool: a thread that has switched
    namespace must die afterwards, or a later caller would inherit the switch
    (and the thread would keep the namespace alive).
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # re-raised on the caller's thread
            error.append(e)

    t = threading.Thread(target=target, name=name)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


class NetNamespace:
    """An anonymous network namespace, alive while this object's descriptor is open (or a process is in it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.inode = os.fstat(fd).st_ino

    @classmethod
    def create(cls) -> "NetNamespace":
        def unshare_and_open() -> int:
            _unshare_net()
            # /proc/self would name the process's main thread, which has not moved
            return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

        return cls(_on_thread("netns-create", unshare_and_open))

    @property
    def path(self) -> str:
        """A path another process can open to reach this namespace (as long as this descriptor is open)."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a thread inside this namespace: sockets it creates and commands it starts live here."""
        if self.fd < 0:
            raise ValueError(f"{self} is closed")

        def inside() -> T:
            _setns(self.fd, str(self))
            return fn()

        return _on_thread(f"netns-{self.inode}", inside)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __str__(self) -> str:
        return f"net:[{self.inode}]"  # how /proc/<pid>/ns/net names it, so it can be matched by hand


def enter(path: str) -> None:
    """Move the calling thread into the network namespace at ``path`` (e.g. :attr:`NetNamespace.path`).

    Meant for the first line of a single-threaded child process, which then
    lives in that namespace entirely: threads it starts later inherit it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(e.errno, f"opening the network namespace {path} failed: {e.strerror}") from None
    try:
        _setns(fd, path)
    finally:
        os.close(fd)


_NO_IP = "no `ip` command (iproute2) in PATH, /usr/sbin or /sbin"


def find_ip() -> Optional[str]:
    """iproute2's ``ip``: sbin directories are searched too because a non-login root PATH may omit them."""
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)


def _run(argv: Sequence[str], pass_fds: Sequence[int] = ()) -> None:
    """One command with its failure turned into a :class:`NetnsError` that quotes the command line."""
    shown = shlex.join(argv)
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, pass_fds=tuple(pass_fds))
    except OSError as e:
        raise NetnsError(e.errno, f"`{shown}` could not run: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"`{shown}` did not finish within 10 s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "no output"
        raise NetnsError(f"`{shown}` failed with exit status {done.returncode}: {detail}")


def _ip(ns: NetNamespace, ip: str, *args: str, pass_fds: Sequence[int] = ()) -> None:
    ns.run(lambda: _run([ip, *args], pass_fds))


def _wait_link_up(ns: NetNamespace, ip: str, ifname: str, timeout: float = 5.0) -> None:
    """Wait until the link's operational state is UP.

    ``ip link set up`` returns before the kernel's link watcher has
    activated the end that came up first (its peer was still down); a SYN
    sent in that window is dropped and TCP only retries a second later.
    Asking with ``ip link show`` is also what makes the wait short: a netlink
    query for a device settles its pending link-watch event on current kernels.
    """
    argv = [ip, "-j", "link", "show", "dev", ifname]

    def poll() -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            try:
                state = json.loads(done.stdout)[0].get("operstate") if done.returncode == 0 else None
            except (ValueError, IndexError, AttributeError):
                state = None
            if state == "UP":
                return
            if time.monotonic() > deadline:
                raise NetnsError(f"`{shlex.join(argv)}` in {ns}: {ifname} did not reach operstate UP within "
                                 f"{timeout:g} s (last: {state or done.stderr.strip() or done.stdout.strip()})")
            time.sleep(0.005)

    ns.run(poll)


@dataclass(frozen=True)
class VethLink:
    """The two namespaces and how their veth ends are named and numbered."""

    a: NetNamespace
    b: NetNamespace
    a_ifname: str
    b_ifname: str
    a_addr: ipaddress.IPv4Interface
    b_addr: ipaddress.IPv4Interface

    def describe(self) -> str:
        return (f"{self.a_ifname} {self.a_addr} in {self.a} <-veth-> {self.b_ifname} {self.b_addr} in {self.b}")


def _two_addresses(network: str) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    net = ipaddress.ip_network(network)
    # IPv4 only: a new IPv6 address stays "tentative" (duplicate address detection) and cannot be bound at once.
    if not isinstance(net, ipaddress.IPv4Network) or net.num_addresses < 4:
        raise ValueError(f"{network!r}: need an IPv4 network of /30 or larger for the two veth ends")
    hosts = net.hosts()
    first, second = next(hosts), next(hosts)
    return (ipaddress.IPv4Interface(f"{first}/{net.prefixlen}"), ipaddress.IPv4Interface(f"{second}/{net.prefixlen}"))


@contextlib.contextmanager
def veth_pair(network: str = DEFAULT_NETWORK, ifnames: tuple[str, str] = ("veth-src", "veth-dst"),
              ip: Optional[str] = None) -> Iterator[VethLink]:
    """Two fresh namespaces, a veth between them numbered from ``network``, both ends and ``lo`` up.

    Everything is released on exit and on any failure during setup: the
    only resources are the two namespace descriptors, closed by the exit
    stack in reverse order of creation.
    """
    a_addr, b_addr = _two_addresses(network)
    for name in ifnames:
        if not 0 < len(name.encode()) < IFNAMSIZ or "/" in name or name.strip() != name:
            raise ValueError(f"{name!r} is not a valid interface name (1-15 bytes, no '/' or spaces)")
    ip = ip or find_ip()
    if ip is None:
        raise NetnsError(_NO_IP)
    a_if, b_if = ifnames
    with contextlib.ExitStack() as stack:
        a = NetNamespace.create()
        stack.callback(a.close)
        b = NetNamespace.create()
        stack.callback(b.close)
        # The pair is created in A with its peer placed directly in B (ip opens a netns argument containing
        # a '/' as a path), so at no point does a veth exist in the caller's namespace.
        _ip(a, ip, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", f"/proc/self/fd/{b.fd}",
            pass_fds=(b.fd,))
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            _ip(ns, ip, "addr", "add", str(addr), "dev", ifname)
            _ip(ns, ip, "link", "set", "dev", ifname, "up")
            _ip(ns, ip, "link", "set", "dev", "lo", "up")
        _wait_link_up(a, ip, a_if)
        _wait_link_up(b, ip, b_if)
        yield VethLink(a, b, a_if, b_if, a_addr, b_addr)


def _has_cap_sys_admin() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def netns_available(ip: Optional[str] = None) -> Optional[str]:
    """None when :func:`veth_pair` can work here, else a sentence saying why not (for skips and CLI errors).

    The last check really creates a namespace with a veth in it, because
    the permission bits do not tell the whole story: a container may grant
    CAP_SYS_ADMIN yet forbid ``unshare`` with seccomp, or lack the veth driver.
    """
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux-only (this is {sys.platform})"
    if not _has_cap_sys_admin():
        return "creating network namespaces needs CAP_SYS_ADMIN (run as root, outside a restricted container)"
    ip = ip or find_ip()
    if ip is None:
        return _NO_IP
    try:
        probe = NetNamespace.create()
    except OSError as e:
        return f"{e.strerror or e} (a container without CAP_SYS_ADMIN, or unshare blocked by seccomp?)"
    try:
        _ip(probe, ip, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    except NetnsError as e:
        return f"cannot create a veth pair: {e.strerror or e}"
    finally:
        probe.close()
    return None
