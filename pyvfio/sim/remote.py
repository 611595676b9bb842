"""The simulated kernel in another process: the client side, and the wire protocol both sides speak.

A :class:`RemoteKernel` talks to a server (:mod:`pyvfio.sim.server`, started
with ``python -m pyvfio.sim serve --socket PATH`` or :func:`start_server`)
that holds the model.  The point is lifetime: the server outlives every user
process, as Linux does, so a descriptor handed to another process, or kept
across ``exec``, still names the same container, iommufd or device -- which is
what CPR needs on a machine without VFIO.

Protocol.  Every descriptor the client holds for a model file is one end of
an ``AF_UNIX``/``SOCK_SEQPACKET`` pair the server created; the server keeps the
other end and maps it to the model's :class:`~pyvfio.sim.file.File`.  A call
on a descriptor is one message on that descriptor's own connection (so a
descriptor passed to another process works there unchanged): a fixed header
(operation and three integers: for ioctl the request, a by-pointer flag and
the integer argument or the user address of the struct) followed by the
argument bytes.  The server answers with a fixed reply header (kind, errno,
result) plus the bytes to copy back.  While it runs a call the server may
send two questions on the same connection, which the client answers before
the final reply arrives:

* ``ASK_FD n``: "send me your descriptor ``n``" -- the model called
  ``fget``/``fget_raw`` on a number the argument names (an eventfd, a memfd, a
  container or iommufd fd).  The client answers with the descriptor in
  ``SCM_RIGHTS``, or with "not open".  The server recognises its own
  connections by the inode of the socket, so a group or iommufd descriptor is
  its model file again.
* ``INSTALL`` with a new descriptor in ``SCM_RIGHTS`` (open, GET_DEVICE_FD,
  a migration data_fd): the client replies with the number it received, which
  is what the model writes into the argument.

Both sides set ``SO_PASSCRED``, so every message carries the sender's pid and
uid as the kernel stamped them: the caller's identity, and the process whose
memory ``process_vm_readv/writev`` reaches for DMA by virtual address.  The
last close of a descriptor (by the client, or by its death) is end-of-file on
the server's end: the server releases the file as a last ``fput`` does.
The control connection (the one :class:`RemoteKernel` opens to the socket
path) carries ``open`` and the administrative calls (add a device, reset the
machine, count open files).

Limits: calls on one open file are serialised by the client lock of one
process; two processes calling on the *same* open file at the same moment
would interleave their replies (CPR never does this: the old side stops
before the new side starts).
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import json
import mmap as _mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from ..kernel.mmio import MmioWindow
from ..errors import VfioError
from ..kernel.base import IoctlArg, ioctl_name

# -- the wire ---------------------------------------------------------------------------------------

#: request: operation, three integers; then the payload
REQ = struct.Struct("<B7xQQQ")
#: reply: kind, errno, result; then the payload
REP = struct.Struct("<B3xiq")

OP_HELLO, OP_OPEN, OP_ADD_DEVICE, OP_STATS, OP_RESET = 1, 2, 3, 4, 5
OP_IOCTL, OP_PREAD, OP_PWRITE, OP_READ, OP_WRITE = 10, 11, 12, 13, 14
OP_MMAP, OP_MMIO_READ, OP_MMIO_WRITE, OP_MUNMAP = 15, 16, 17, 18
OP_FD, OP_NOFD, OP_INSTALLED = 20, 21, 22

K_OK, K_ERR, K_CRASH, K_ASK_FD, K_INSTALL = 1, 2, 3, 4, 5

#: largest message either side receives; data calls are split below it
MAX_MSG = 1 << 20
#: read/write/pread/pwrite move at most this many bytes per message
CHUNK = 256 * 1024
#: room for SCM_CREDENTIALS plus a few descriptors
ANCILLARY = socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 16)
#: how long either side waits for an answer before it calls the peer dead
TIMEOUT = 60.0

_UCRED = struct.Struct("<iII")


def configure(sock: socket.socket) -> None:
    """Every connection: credentials on every message, and buffers big enough for an ioctl argument."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MSG)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MAX_MSG)


@dataclass
class Message:
    """One received message: bytes, descriptors that came with it, and who sent it."""

    data: bytes
    fds: list[int]
    pid: int = 0
    uid: int = -1

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


_buffers = threading.local()


def recv_message(sock: socket.socket) -> Message:
    """Receive one message (empty data: the peer is gone).  Descriptors arrive close-on-exec.

    The receive buffer is allocated once per thread: a fresh megabyte per
    message would cost more than the call itself.
    """
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(MAX_MSG)
    n, ancdata, flags, _ = sock.recvmsg_into([buf], ANCILLARY, socket.MSG_CMSG_CLOEXEC)
    msg = Message(bytes(buf[:n]), [])
    for level, kind, payload in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            msg.fds.extend(fds)
        elif kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
            msg.pid, msg.uid, _gid = _UCRED.unpack_from(payload)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        msg.close_fds()
        raise OSError(errno.EMSGSIZE, "message or its descriptors truncated")
    return msg


def send_message(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> None:
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([data], anc)


def pack_error(name: str, reason: str, copyback: bytes = b"") -> bytes:
    """An error reply's payload: the call's name and the model's reason, then the bytes to copy back."""
    return name.encode().replace(b"\0", b"?") + b"\0" + reason.encode().replace(b"\0", b"?") + b"\0" + copyback


def unpack_error(payload: bytes) -> tuple[str, str, bytes]:
    name, reason, copyback = payload.split(b"\0", 2)
    return name.decode(), reason.decode(), copyback


# -- ptrace permission -------------------------------------------------------------------------------

PR_SET_PTRACER = 0x59616D61
YAMA_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"


def yama_ptrace_scope() -> int:
    """Yama's ptrace_scope, 0 when Yama is absent (then only uid and dumpability matter)."""
    try:
        with open(YAMA_SCOPE) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def allow_ptracer(pid: int) -> None:
    """Let ``pid`` reach this process's memory with process_vm_readv/writev under Yama scope 1.

    The server does DMA into the client's memory by virtual address the way
    the kernel does: it needs ptrace access to the client.  Scope 1 grants it
    only to ancestors, so the client names the server with
    ``prctl(PR_SET_PTRACER)``; scope 3 forbids it outright.
    """
    scope = yama_ptrace_scope()
    if scope == 3:
        raise VfioError(errno.EPERM, "connect", f"{YAMA_SCOPE} is 3: no process may read another's memory, so "
                                                "the simulated kernel server cannot do DMA into this one")
    if scope != 1:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise VfioError(err, "connect", f"prctl(PR_SET_PTRACER, {pid}) failed: with {YAMA_SCOPE} = 1 the server "
                                        "needs it to reach this process's memory for DMA")


# -- the client ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteDevice:
    """A device plugged into the server's machine, as :meth:`pyvfio.sim.Kernel.add_device` describes one."""

    address: str
    group_id: int
    cdev: str
    kind: str

    @property
    def name(self) -> str:
        return self.address

    @property
    def group(self) -> int:
        """The group number, so ``f"/dev/vfio/{dev.group}"`` is the group node as with the in-process sim."""
        return self.group_id


class _Borrowed:
    """A socket object over a descriptor number that it does not own (``detach`` on exit)."""

    def __init__(self, fd: int, call: str, foreign: int = errno.EBADF) -> None:
        try:
            self.sock = socket.socket(fileno=fd)
        except OSError as e:
            if e.errno == errno.EBADF:
                raise VfioError(errno.EBADF, call, f"fd {fd} is not open") from None
            raise VfioError(foreign, call, f"fd {fd} is not a descriptor of the simulated kernel") from None

    def __enter__(self) -> socket.socket:
        return self.sock

    def __exit__(self, *exc: Any) -> None:
        self.sock.detach()


class RemoteKernel:
    """The :class:`pyvfio.kernel.Kernel` surface over a simulated kernel server.

    Every descriptor it returns is a real descriptor of this process (a
    socket), so it can be ``dup``-ed, polled for hang-up, passed with
    ``SCM_RIGHTS`` and inherited across ``exec``; any process that holds it and
    has its own ``RemoteKernel`` for the same server can use it.

    >>> k = RemoteKernel("/run/pyvfio-sim.sock")      # doctest: +SKIP
    >>> fd = k.open("/dev/vfio/vfio")                 # doctest: +SKIP
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._lock = threading.RLock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            configure(sock)
            sock.connect(socket_path)
        except OSError as e:
            sock.close()
            raise VfioError(e.errno or errno.ECONNREFUSED, "connect",
                            f"no simulated kernel server at {socket_path} ({e.strerror})") from None
        self._control: Optional[socket.socket] = sock
        try:
            self.server_pid = self._call_sock(sock, "connect", OP_HELLO)[0]
            allow_ptracer(self.server_pid)
        except BaseException:
            self.shutdown()
            raise

    def __repr__(self) -> str:
        state = "connected" if self._control is not None else "shut down"
        return f"<RemoteKernel {self.socket_path} server pid {self.server_pid} {state}>"

    def __enter__(self) -> "RemoteKernel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Close the control connection; descriptors already opened stay valid."""
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._control = None

    # -- one call ------------------------------------------------------------------------------------
    def _call_sock(self, sock: socket.socket, call: str, op: int, a: int = 0, b: int = 0, c: int = 0,
                   payload: bytes = b"") -> tuple[int, bytes]:
        """Send one request and serve the server's questions until the reply; raises VfioError on error."""
        installed: list[int] = []
        with self._lock:
            try:
                send_message(sock, REQ.pack(op, a & (2**64 - 1), b & (2**64 - 1), c & (2**64 - 1)) + payload)
                while True:
                    msg = _recv_reply(sock, call)
                    kind, err, result = REP.unpack_from(msg.data)
                    body = msg.data[REP.size:]
                    if kind == K_ASK_FD:
                        msg.close_fds()
                        self._answer_fd(sock, result)
                    elif kind == K_INSTALL:
                        if len(msg.fds) != 1:
                            msg.close_fds()
                            raise VfioError(errno.EPROTO, call, "INSTALL without exactly one descriptor")
                        installed.append(msg.fds[0])
                        send_message(sock, REQ.pack(OP_INSTALLED, msg.fds[0], 0, 0))
                    elif kind == K_OK:
                        msg.close_fds()
                        installed.clear()
                        return result, body
                    elif kind == K_ERR:
                        msg.close_fds()
                        name, reason, copyback = unpack_error(body)
                        raise _ServerError(err, name or call, reason, copyback)
                    else:
                        msg.close_fds()
                        raise RuntimeError(f"the simulated kernel server failed in {call}: "
                                           f"{body.decode(errors='replace')}")
            except OSError as e:
                if isinstance(e, VfioError):
                    raise
                raise VfioError(errno.ENODEV, call, f"lost the simulated kernel server ({e.strerror})") from None
            finally:
                for fd in installed:  # the call failed after the server gave us descriptors
                    os.close(fd)

    @staticmethod
    def _answer_fd(sock: socket.socket, fd: int) -> None:
        try:
            if fd < 0:
                raise OSError(errno.EBADF, "negative")
            os.fstat(fd)
        except OSError:
            send_message(sock, REQ.pack(OP_NOFD, fd & (2**64 - 1), errno.EBADF, 0))
            return
        send_message(sock, REQ.pack(OP_FD, fd, 0, 0), [fd])

    def _call(self, fd: int, call: str, op: int, a: int = 0, b: int = 0, c: int = 0,
              payload: bytes = b"") -> tuple[int, bytes]:
        with _Borrowed(fd, call) as sock:
            try:
                return self._call_sock(sock, call, op, a, b, c, payload)
            except _ServerError as e:
                raise e.as_vfio() from None

    def _admin(self, call: str, op: int, a: int = 0, payload: bytes = b"") -> tuple[int, bytes]:
        if self._control is None:
            raise VfioError(errno.ENOTCONN, call, "this RemoteKernel was shut down")
        try:
            return self._call_sock(self._control, call, op, a, 0, 0, payload)
        except _ServerError as e:
            raise e.as_vfio() from None

    # -- the surface -----------------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        try:
            return self._admin("open", OP_OPEN, flags, path.encode())[0]
        except VfioError as e:
            raise VfioError(e.errno or errno.EIO, "open", e.reason, path) from None

    def close(self, fd: int) -> None:
        """Close our descriptor; when it was the last reference the server releases the file."""
        try:
            os.close(fd)
        except OSError as e:
            raise VfioError(e.errno or errno.EBADF, "close", f"fd {fd} is not open") from None

    def ioctl(self, fd: int, request: int, arg: IoctlArg = 0) -> int:
        name = ioctl_name(request)
        if arg is None or isinstance(arg, int):
            with _Borrowed(fd, name, errno.ENOTTY) as sock:
                try:
                    return self._call_sock(sock, name, OP_IOCTL, request, 0, arg or 0)[0]
                except _ServerError as e:
                    raise e.as_vfio() from None
        addr, size = ctypes.addressof(arg), ctypes.sizeof(arg)
        try:
            with _Borrowed(fd, name, errno.ENOTTY) as sock:
                result, copyback = self._call_sock(sock, name, OP_IOCTL, request, 1, addr,
                                                   ctypes.string_at(addr, size))
        except _ServerError as e:
            ctypes.memmove(addr, e.copyback[:size], min(size, len(e.copyback)))
            raise e.as_vfio() from None
        ctypes.memmove(addr, copyback[:size], min(size, len(copyback)))
        return result

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            n = min(CHUNK, size - len(out))
            got = self._call(fd, "pread", OP_PREAD, n, offset + len(out))[1]
            out += got
            if len(got) < n:
                break
        return bytes(out)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        data = bytes(data)
        done = 0
        while True:
            piece = data[done: done + CHUNK]
            n = self._call(fd, "pwrite", OP_PWRITE, 0, offset + done, 0, piece)[0]
            done += n
            if n < len(piece) or done >= len(data):
                return done

    def read(self, fd: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            n = min(CHUNK, size - len(out))
            got = self._call(fd, "read", OP_READ, n)[1]
            out += got
            if len(got) < n:
                break
        return bytes(out)

    def write(self, fd: int, data: bytes) -> int:
        data = bytes(data)
        done = 0
        while True:
            piece = data[done: done + CHUNK]
            n = self._call(fd, "write", OP_WRITE, 0, 0, 0, piece)[0]
            done += n
            if n < len(piece) or done >= len(data):
                return done

    def mmap(self, fd: int, length: int, offset: int, prot: int = _mmap.PROT_READ | _mmap.PROT_WRITE) -> Any:
        """A window whose loads and stores travel to the server, as the in-process sim's BAR mapping."""
        handle, body = self._call(fd, "mmap", OP_MMAP, length, offset, prot)
        return RemoteMapping(self, fd, handle, int.from_bytes(body[:8], "little"))

    # -- administration (what sysfs and module loading are to a real machine) -------------------------
    def add_device(self, kind: str, **options: Any) -> RemoteDevice:
        """Plug a simulated device ("edu", "mtty") into the server's machine."""
        body = self._admin("add_device", OP_ADD_DEVICE, 0, json.dumps({"kind": kind, "options": options}).encode())[1]
        d = json.loads(body)
        return RemoteDevice(address=d["address"], group_id=int(d["group"]), cdev=d["cdev"], kind=kind)

    def stats(self) -> dict[str, Any]:
        """The server's open model files and descriptors (leak checks), after it has reaped closed ones."""
        return dict(json.loads(self._admin("stats", OP_STATS)[1]))

    def open_file_count(self) -> int:
        return int(self.stats()["files"])

    def reset(self) -> None:
        """Give the server a fresh machine: every open file is released and its connection cut."""
        self._admin("reset", OP_RESET)


class _ServerError(Exception):
    def __init__(self, err: int, name: str, reason: str, copyback: bytes) -> None:
        super().__init__(err, name, reason)
        self.err, self.name, self.reason, self.copyback = err, name, reason, copyback

    def as_vfio(self) -> VfioError:
        return VfioError(self.err, self.name, self.reason)


def _recv_reply(sock: socket.socket, call: str) -> Message:
    sock.settimeout(TIMEOUT)
    try:
        msg = recv_message(sock)
    except socket.timeout:
        raise VfioError(errno.ETIMEDOUT, call, f"the simulated kernel server did not answer in {TIMEOUT:.0f} s")
    finally:
        sock.settimeout(None)
    if not msg.data:
        raise VfioError(errno.ENODEV, call, "the simulated kernel server closed this descriptor "
                                            "(it exited, or its machine was reset)")
    if len(msg.data) < REP.size:
        msg.close_fds()
        raise VfioError(errno.EPROTO, call, f"short reply of {len(msg.data)} bytes")
    return msg


class RemoteMapping(MmioWindow):
    """``mmap`` of a BAR through the server: every load and store is a message, as the sim's trapping window.

    It keeps a duplicate of the device descriptor, as a real mapping keeps
    its file, so the device stays open until the mapping is closed too.
    Accesses fault like the in-process window: :class:`VfioError` (EFAULT,
    "SIGBUS") when memory decode is off or the device was closed.
    """

    def __init__(self, kernel: RemoteKernel, fd: int, handle: int, length: int) -> None:
        self._kernel = kernel
        self._fd: Optional[int] = os.dup(fd)
        self._handle = handle
        self._length = length

    def __repr__(self) -> str:
        return f"<RemoteMapping handle {self._handle} len {self._length:#x}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __len__(self) -> int:
        return self._length

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]
            self._fd = None

    def close(self) -> None:
        """munmap: the server forgets the window; the file is released if this was its last reference."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self._kernel._call(fd, "munmap", OP_MUNMAP, self._handle)
        except VfioError:
            pass  # the server is gone or reset: nothing is left to unmap
        finally:
            os.close(fd)

    def _live(self) -> int:
        if self._fd is None:
            raise ValueError("mmap closed or invalid")
        return self._fd

    def read(self, offset: int, size: int) -> bytes:
        fd = self._live()
        if offset < 0 or size < 0 or offset + size > self._length:
            raise IndexError("access outside the mapping")
        return self._kernel._call(fd, "mmap read", OP_MMIO_READ, self._handle, offset, size)[1]

    def write(self, offset: int, data: bytes) -> None:
        fd = self._live()
        if offset < 0 or offset + len(data) > self._length:
            raise IndexError("access outside the mapping")
        self._kernel._call(fd, "mmap write", OP_MMIO_WRITE, self._handle, offset, 0, bytes(data))

class ServerHandle:
    """A running ``python -m pyvfio.sim serve`` process; :meth:`stop` ends it and removes its socket."""

    def __init__(self, proc: "subprocess.Popen[bytes]", path: str) -> None:
        self.proc = proc
        self.path = path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        return f"<ServerHandle pid {self.pid} {self.path} {state}>"

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def connect(self) -> RemoteKernel:
        return RemoteKernel(self.path)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return int(self.proc.returncode)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def start_server(path: str, devices: Sequence[str] = ("edu",), *, die_with_parent: bool = True,
                 timeout: float = 20.0) -> ServerHandle:
    """Start ``python -m pyvfio.sim serve --socket path --device ...`` and wait until it accepts.

    ``devices`` are kinds ("edu", "mtty"), optionally with options as
    ``"edu,name=0000:00:05.0,group=7"``.  With ``die_with_parent`` the server
    gets SIGTERM when the thread that started it exits, so a crashed test run
    leaves no server behind; the server still outlives every *client*.
    """
    cmd = [sys.executable, "-m", "pyvfio.sim", "serve", "--socket", path, "--ready-fd", "1"]
    for d in devices:
        cmd += ["--device", d]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env,
                            preexec_fn=_die_with_parent if die_with_parent else None)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    import select

    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:
            break
        line += chunk
    if not line.startswith(b"ready"):
        handle = ServerHandle(proc, path)
        handle.stop()
        raise RuntimeError(f"the simulated kernel server did not start (exit {proc.returncode}, said {line!r})")
    return ServerHandle(proc, path)


def iter_devices(specs: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse ``--device`` values: ``KIND[,key=value...]`` (values that look like integers become ints)."""
    for spec in specs:
        kind, *opts = spec.split(",")
        options: dict[str, Any] = {}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep:
                raise ValueError(f"device option {opt!r} in {spec!r} is not key=value")
            try:
                options[key] = int(value, 0)
            except ValueError:
                options[key] = value
        yield kind, options


__all__ = ["RemoteKernel", "RemoteDevice", "RemoteMapping", "ServerHandle", "start_server", "allow_ptracer",
           "yama_ptrace_scope"]
