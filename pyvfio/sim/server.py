"""The simulated kernel as a separate process: one model, served to every process over unix sockets.

``python -m pyvfio.sim serve --socket PATH`` runs :class:`Server`.  It holds
the model (:class:`pyvfio.sim.vfio_main.Vfio`) for as long as it lives, so
user processes may come and go -- die, ``exec``, hand their descriptors to a
successor -- and the containers, iommufds, devices, DMA mappings and eventfd
bindings stay, as they do in Linux.  The wire protocol and the client are in
:mod:`pyvfio.sim.remote`.

One thread serves every connection (a ``selectors`` loop): a call runs to the
end before the next is read, which is the serialisation the in-process
kernel's lock gives.  Before each call the server reaps connections whose
last client descriptor was closed, so a ``close`` followed by another call
from the same process is seen in that order, as in Linux.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from typing import Any, Optional, Sequence

from ..kernel.base import ioctl_name
from .errno import EBADF, EINVAL, EIO, KernelError
from .file import File, Task, UserArg
from .remote import (K_ASK_FD, K_CRASH, K_ERR, K_INSTALL, K_OK, OP_ADD_DEVICE, OP_FD, OP_HELLO, OP_INSTALLED,
                     OP_IOCTL, OP_MMAP, OP_MMIO_READ, OP_MMIO_WRITE, OP_MUNMAP, OP_NOFD, OP_OPEN, OP_PREAD,
                     OP_PWRITE, OP_READ, OP_RESET, OP_STATS, OP_WRITE, REP, REQ, TIMEOUT, Message, configure,
                     iter_devices, pack_error, recv_message, send_message)
from .vfio_main import Vfio


class _ClientGone(Exception):
    """The caller hung up (or broke the protocol) in the middle of a call."""


class Connection:
    """The server's end of one client descriptor (``file`` set) or of a control connection (``file`` None)."""

    def __init__(self, sock: socket.socket, file: Optional[File], client_key: Optional[tuple[int, int]]) -> None:
        self.sock = sock
        self.file = file
        self.client_key = client_key
        self.mmaps: dict[int, Any] = {}
        self.next_handle = 1

    def __repr__(self) -> str:
        return f"<Connection {self.file if self.file is not None else 'control'} fd {self.sock.fileno()}>"


class RemoteTask(Task):
    """The caller of one request: identity from SCM_CREDENTIALS, descriptors fetched from it on demand."""

    def __init__(self, server: "Server", conn: Connection, pid: int, uid: int) -> None:
        super().__init__(pid, uid)
        self.server = server
        self.conn = conn
        self._raw: dict[int, int] = {}

    def _fetch(self, fd: int) -> int:
        """The caller's descriptor ``fd`` as a descriptor of ours (kept until the call ends)."""
        if fd in self._raw:
            return self._raw[fd]
        if fd < 0:
            raise KernelError(EBADF, f"fd {fd} is negative")
        send_message(self.conn.sock, REP.pack(K_ASK_FD, 0, fd))
        msg = self.server.wait_answer(self.conn)
        op, a, b, _ = REQ.unpack_from(msg.data)
        if op == OP_NOFD:
            msg.close_fds()
            raise KernelError(EBADF, f"fd {fd} is not open")
        if op != OP_FD or len(msg.fds) != 1:
            msg.close_fds()
            raise _ClientGone(f"expected descriptor {fd}, got operation {op}")
        self._raw[fd] = msg.fds[0]
        return msg.fds[0]

    def fget(self, fd: int) -> File:
        file = self.server.file_of(self._fetch(fd))
        if file is None:
            raise KernelError(EBADF, f"fd {fd} is not a descriptor of the simulated kernel")
        return file

    def fget_raw(self, fd: int) -> int:
        return os.dup(self._fetch(fd))

    def fd_install(self, file: File) -> int:
        return self.server.install(self.conn, file)

    def finish(self) -> None:
        for raw in self._raw.values():
            os.close(raw)
        self._raw.clear()


def _key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


class Server:
    """The model plus the table that maps client descriptors (socket inodes) to its files."""

    def __init__(self, socket_path: str, devices: Sequence[str] = ()) -> None:
        self.socket_path = socket_path
        self.device_specs = list(devices)
        self.vfio = self._machine()
        self.conns: dict[int, Connection] = {}  # by the server end's fd number
        self.by_key: dict[tuple[int, int], Connection] = {}  # by the client end's inode
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        configure(self.listener)
        self.listener.bind(socket_path)
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ)

    def __repr__(self) -> str:
        return f"<Server {self.socket_path}: {len(self.vfio.devices)} devices, {self.open_files()} open files>"

    def _machine(self) -> Vfio:
        vfio = Vfio()
        for kind, options in iter_devices(self.device_specs):
            vfio.add_device(kind, **options)
        return vfio

    def open_files(self) -> int:
        return sum(1 for c in self.conns.values() if c.file is not None)

    # -- descriptors -------------------------------------------------------------------------------
    def file_of(self, raw: int) -> Optional[File]:
        """The model file whose client end ``raw`` is, or None for any other descriptor."""
        conn = self.by_key.get(_key(raw))
        return None if conn is None else conn.file

    def _register(self, sock: socket.socket, file: Optional[File], client_key: Optional[tuple[int, int]]) -> None:
        conn = Connection(sock, file, client_key)
        self.conns[sock.fileno()] = conn
        if client_key is not None:
            self.by_key[client_key] = conn
        self.selector.register(sock, selectors.EVENT_READ)

    def install(self, conn: Connection, file: File) -> int:
        """``fd_install`` for a remote caller: a new connection for ``file``, its client end sent over."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            configure(mine)
            configure(theirs)
            self._register(mine, file, _key(theirs.fileno()))
            send_message(conn.sock, REP.pack(K_INSTALL, 0, 0), [theirs.fileno()])
        finally:
            theirs.close()
        msg = self.wait_answer(conn)
        msg.close_fds()
        op, number, _, _ = REQ.unpack_from(msg.data)
        if op != OP_INSTALLED:
            raise _ClientGone(f"expected the installed descriptor's number, got operation {op}")
        return int(number)

    def wait_answer(self, conn: Connection) -> Message:
        """The caller's answer to a question asked mid-call."""
        conn.sock.settimeout(TIMEOUT)
        try:
            msg = recv_message(conn.sock)
        except OSError as e:
            raise _ClientGone(f"no answer from the caller: {e}") from None
        finally:
            conn.sock.settimeout(None)
        if len(msg.data) < REQ.size:
            msg.close_fds()
            raise _ClientGone("the caller hung up in the middle of a call")
        return msg

    def drop(self, conn: Connection) -> None:
        """The last client descriptor is closed: release the file as the last ``fput`` does."""
        self.selector.unregister(conn.sock)
        del self.conns[conn.sock.fileno()]
        if conn.client_key is not None:
            self.by_key.pop(conn.client_key, None)
        for m in conn.mmaps.values():
            close = getattr(m, "close", None)
            if close is not None:
                close()
        conn.mmaps.clear()
        conn.sock.close()
        if conn.file is not None:
            conn.file.release()

    def reap(self, busy: Optional[Connection] = None) -> None:
        """Drop every file connection whose client side is closed (end-of-file is pending), except ``busy``."""
        for conn in [c for c in self.conns.values() if c.file is not None and c is not busy]:
            try:
                peek = conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peek = b""
            if not peek:
                self.drop(conn)

    def reset(self) -> None:
        """A fresh machine: every file released (newest first) and its connection cut."""
        files = sorted((c for c in self.conns.values() if c.file is not None),
                       key=lambda c: c.sock.fileno(), reverse=True)
        for conn in files:
            try:
                self.drop(conn)
            except Exception:  # a broken file must not keep the rest alive
                pass
        self.vfio = self._machine()

    def stats(self) -> dict[str, Any]:
        return {"files": self.open_files(), "fds": len(os.listdir("/proc/self/fd")), "pid": os.getpid(),
                "devices": sorted(self.vfio.devices)}

    # -- the loop ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                    continue
                conn = self.conns.get(key.fd)
                if conn is not None:  # may have been dropped by a reap earlier in this batch
                    self._serve_one(conn)

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        configure(sock)
        self._register(sock, None, None)

    def _serve_one(self, conn: Connection) -> None:
        try:
            msg = recv_message(conn.sock)
        except OSError:
            msg = Message(b"", [])
        if not msg.data:
            self.drop(conn)
            return
        task: Optional[RemoteTask] = None
        try:
            msg.close_fds()  # requests never carry descriptors; the server asks for the ones it needs
            if len(msg.data) < REQ.size:
                raise _ClientGone(f"short request of {len(msg.data)} bytes")
            op, a, b, c = REQ.unpack_from(msg.data)
            self.reap(busy=conn)
            task = RemoteTask(self, conn, msg.pid, msg.uid)
            if conn.file is None:
                self._control(conn, task, op, a, msg.data[REQ.size:])
            else:
                self._file_call(conn, task, op, a, b, c, msg.data[REQ.size:])
        except _ClientGone:
            if conn.sock.fileno() in self.conns:
                self.drop(conn)
        except OSError:  # the reply could not be sent: the caller is gone
            if conn.sock.fileno() >= 0 and conn.sock.fileno() in self.conns:
                self.drop(conn)
        finally:
            if task is not None:
                task.finish()

    def _reply(self, conn: Connection, result: int = 0, payload: bytes = b"") -> None:
        send_message(conn.sock, REP.pack(K_OK, 0, result) + payload)

    def _error(self, conn: Connection, err: int, name: str, reason: str, copyback: bytes = b"") -> None:
        send_message(conn.sock, REP.pack(K_ERR, err, -1) + pack_error(name, reason, copyback))

    def _crash(self, conn: Connection) -> None:
        send_message(conn.sock, REP.pack(K_CRASH, EIO, -1) + traceback.format_exc().encode())

    def _control(self, conn: Connection, task: RemoteTask, op: int, a: int, payload: bytes) -> None:
        try:
            if op == OP_HELLO:
                self._reply(conn, os.getpid())
            elif op == OP_OPEN:
                path = payload.decode()
                try:
                    file = self.vfio.open(task, path, a)
                except KernelError as e:
                    self._error(conn, e.errno, "open", e.reason)
                    return
                self._reply(conn, task.fd_install(file))
            elif op == OP_ADD_DEVICE:
                req = json.loads(payload)
                try:
                    vdev = self.vfio.add_device(req["kind"], **req.get("options", {}))
                except (ValueError, TypeError, KeyError) as e:
                    self._error(conn, EINVAL, "add_device", str(e))
                    return
                self._reply(conn, 0, json.dumps({"address": vdev.address, "group": vdev.group_id,
                                                 "cdev": vdev.cdev}).encode())
            elif op == OP_STATS:
                self._reply(conn, 0, json.dumps(self.stats()).encode())
            elif op == OP_RESET:
                self.reset()
                self._reply(conn)
            else:
                self._error(conn, EINVAL, "request", f"operation {op} is not a control-connection request")
        except (_ClientGone, OSError):
            raise
        except Exception:
            self._crash(conn)

    def _file_call(self, conn: Connection, task: RemoteTask, op: int, a: int, b: int, c: int,
                   payload: bytes) -> None:
        file = conn.file
        assert file is not None
        name = {OP_PREAD: "pread", OP_PWRITE: "pwrite", OP_READ: "read", OP_WRITE: "write", OP_MMAP: "mmap",
                OP_MMIO_READ: "mmap read", OP_MMIO_WRITE: "mmap write", OP_MUNMAP: "munmap"}.get(op, "request")
        uarg: Optional[UserArg] = None
        try:
            if op == OP_IOCTL:
                name = ioctl_name(a, file.kind)
                uarg = UserArg(value=c, buf=bytearray(payload)) if b else UserArg(value=c)
                result = file.ioctl(task, a, uarg)
                self._reply(conn, result, bytes(uarg.buf[: uarg.user_len]) if uarg.buf is not None else b"")
            elif op == OP_PREAD:
                self._reply(conn, 0, bytes(file.read(task, a, b)))
            elif op == OP_PWRITE:
                self._reply(conn, int(file.write(task, payload, b)))
            elif op == OP_READ:
                self._reply(conn, 0, bytes(file.read(task, a, None)))
            elif op == OP_WRITE:
                self._reply(conn, int(file.write(task, payload, None)))
            elif op == OP_MMAP:
                m = file.mmap(task, a, b, c)
                handle = conn.next_handle
                conn.next_handle += 1
                conn.mmaps[handle] = m
                self._reply(conn, handle, len(m).to_bytes(8, "little"))
            elif op == OP_MMIO_READ:
                self._reply(conn, 0, bytes(self._mapping(conn, a).read(b, c)))
            elif op == OP_MMIO_WRITE:
                self._mapping(conn, a).write(b, payload)
                self._reply(conn)
            elif op == OP_MUNMAP:
                m = conn.mmaps.pop(a, None)
                if m is not None and hasattr(m, "close"):
                    m.close()
                self._reply(conn)
            else:
                self._error(conn, EINVAL, "request", f"operation {op} is not a descriptor request")
        except KernelError as e:
            copyback = bytes(uarg.buf[: uarg.user_len]) if uarg is not None and uarg.buf is not None else b""
            self._error(conn, e.errno, name, e.reason, copyback)
        except (_ClientGone, BrokenPipeError, ConnectionError):
            raise
        except OSError as e:  # VfioError from an access (EFAULT "SIGBUS"), or a model descriptor failing
            reason = getattr(e, "reason", "") or (e.strerror or "")
            call = getattr(e, "ioctl", name)
            self._error(conn, e.errno or EIO, call, reason)
        except Exception:
            self._crash(conn)

    def _mapping(self, conn: Connection, handle: int) -> Any:
        m = conn.mmaps.get(handle)
        if m is None:
            raise KernelError(EINVAL, f"no mapping {handle} on this descriptor (it was unmapped)")
        return m

    def close(self) -> None:
        """Release everything and remove the socket (the machine powers off)."""
        self.reset()
        for conn in list(self.conns.values()):
            self.drop(conn)
        self.selector.close()
        self.listener.close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


def serve(socket_path: str, devices: Sequence[str] = (), ready_fd: Optional[int] = None) -> int:
    """Run a server until SIGTERM/SIGINT; write ``ready <pid>`` to ``ready_fd`` once it accepts."""
    if os.path.exists(socket_path):
        # a socket nobody listens on any more is a leftover; anything else is someone's file
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(socket_path)
        except ConnectionRefusedError:
            os.unlink(socket_path)
        except OSError:
            pass
        else:
            probe.close()
            print(f"pyvfio.sim serve: {socket_path} already has a server", file=sys.stderr)
            return 1
        finally:
            probe.close()
    server = Server(socket_path, devices)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready_fd is not None:
        os.write(ready_fd, f"ready {os.getpid()}\n".encode())
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyvfio.sim",
                                     description="the simulated VFIO/iommufd kernel as a separate process")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="hold a simulated machine and serve it on a unix socket")
    p.add_argument("--socket", required=True, help="path of the unix socket to listen on")
    p.add_argument("--device", action="append", default=[], metavar="KIND[,key=value...]",
                   help="plug in a device at start: edu, mtty (repeatable)")
    p.add_argument("--ready-fd", type=int, default=None, help="write 'ready PID' to this descriptor when up")
    args = parser.parse_args(argv)
    try:
        list(iter_devices(args.device))
    except ValueError as e:
        parser.error(str(e))
    return serve(args.socket, args.device, args.ready_fd)
