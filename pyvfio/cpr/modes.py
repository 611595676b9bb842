"""The two ways descriptors and state reach the new process.

cpr-exec: the process ``exec``s its new image in place (same pid).  Preserved
descriptors have close-on-exec cleared; the state blob goes into a memfd whose
number is in the environment variable :data:`STATE_ENV` (QEMU:
``QEMU_CPR_EXEC_STATE``).  There is no old process to fall back to once exec
succeeds, so only a failing ``execve`` itself is recoverable.

cpr-transfer: a new process is started independently and listens on a unix
socket; the old one connects and sends the blob plus every descriptor with
``SCM_RIGHTS``, then waits for the new side's verdict (``DONE`` or ``FAIL``).
Until it hears ``DONE`` the old side still owns the machine and can resume.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Optional, Sequence

from .state import CprState, FdRegistry, decode, encode

STATE_ENV = "PYVFIO_CPR_EXEC_STATE"
_XFER = struct.Struct(">8sII")
_XFER_MAGIC = b"PYVFXFER"
#: descriptors per SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253)
FD_BATCH = 200


class CprError(RuntimeError):
    """A hand-off failed; the message says at which step and why."""


class CprExecError(CprError):
    """``execve`` of the new image failed; the old process still owns everything and may resume."""


# -- cpr-exec --------------------------------------------------------------------------------------------

def exec_with_state(argv: Sequence[str], registry: FdRegistry, state: CprState,
                    env: Optional[dict[str, str]] = None) -> None:
    """Replace this process with ``argv`` keeping ``registry``'s descriptors; returns only by raising.

    On a failed ``execve`` everything is put back (the state memfd closed,
    close-on-exec restored) and :class:`CprExecError` is raised.
    """
    blob = encode(state, registry)
    memfd = os.memfd_create("pyvfio-cpr-state", 0)
    changed: list[int] = []
    try:
        os.write(memfd, blob)
        os.lseek(memfd, 0, os.SEEK_SET)
        for fd in [*registry.fds(), memfd]:
            if not os.get_inheritable(fd):
                os.set_inheritable(fd, True)
                changed.append(fd)
        new_env = dict(os.environ if env is None else env)
        new_env[STATE_ENV] = str(memfd)
        os.execve(argv[0], list(argv), new_env)
    except OSError as e:
        for fd in changed:
            if fd != memfd:
                os.set_inheritable(fd, False)
        os.close(memfd)
        raise CprExecError(f"cpr-exec: execve({argv[0]!r}) failed: {e.strerror}; the old process keeps its "
                           "devices and may resume") from e


def incoming_exec() -> Optional[tuple[CprState, FdRegistry]]:
    """In the new image: the state left by :func:`exec_with_state`, or None when not started by cpr-exec.

    The memfd is closed and the variable removed, and the preserved
    descriptors get close-on-exec back, so a later exec does not leak them.
    """
    text = os.environ.pop(STATE_ENV, None)
    if text is None:
        return None
    try:
        fd = int(text)
    except ValueError:
        raise CprError(f"{STATE_ENV}={text!r} is not a descriptor number") from None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise CprError(f"cpr-exec: cannot read the state memfd {fd} named by {STATE_ENV}: {e.strerror}") from e
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    state, registry = decode(b"".join(chunks))
    for f in registry.fds():
        os.set_inheritable(f, False)
    return state, registry


# -- cpr-transfer ----------------------------------------------------------------------------------------

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise CprError(f"cpr-transfer: peer closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def send_state(sock: socket.socket, registry: FdRegistry, state: CprState) -> None:
    """Old side: the blob and every registered descriptor, in registry order."""
    blob = encode(state, registry)
    fds = registry.fds()
    sock.sendall(_XFER.pack(_XFER_MAGIC, len(blob), len(fds)))
    for i in range(0, len(fds), FD_BATCH):
        socket.send_fds(sock, [b"F"], fds[i:i + FD_BATCH])
    sock.sendall(blob)


def receive_state(sock: socket.socket) -> tuple[CprState, FdRegistry]:
    """New side: the blob, with the registry rewritten to the descriptor numbers received here."""
    magic, blob_len, nfds = _XFER.unpack(_recv_exact(sock, _XFER.size))
    if magic != _XFER_MAGIC:
        raise CprError(f"cpr-transfer: not a pyvfio hand-off (magic {magic!r})")
    got: list[int] = []
    try:
        while len(got) < nfds:
            want = min(FD_BATCH, nfds - len(got))
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1, want)
            got += fds
            if msg != b"F" or len(fds) != want:
                raise CprError(f"cpr-transfer: expected {want} descriptors, got {len(fds)}")
        state, old = decode(_recv_exact(sock, blob_len))
        if len(old) != len(got):
            raise CprError(f"cpr-transfer: state names {len(old)} descriptors, {len(got)} arrived")
    except BaseException:
        for fd in got:
            os.close(fd)
        raise
    registry = FdRegistry()
    for (key, _), fd in zip(old.items(), got):
        registry.save_fd(key[0], key[1], fd)
    return state, registry


def send_verdict(sock: socket.socket, ok: bool, reason: str = "") -> None:
    """New side: ``DONE`` once it owns everything, else ``FAIL`` with a reason (the old side resumes)."""
    data = b"DONE" if ok else b"FAIL" + reason.encode()[:4000]
    sock.sendall(struct.pack(">I", len(data)) + data)


def wait_verdict(sock: socket.socket, timeout: Optional[float] = 30.0) -> None:
    """Old side: return when the new side said ``DONE``; raise :class:`CprError` on FAIL, death or timeout."""
    sock.settimeout(timeout)
    try:
        (n,) = struct.unpack(">I", _recv_exact(sock, 4))
        data = _recv_exact(sock, n)
    except (CprError, OSError) as e:
        raise CprError(f"cpr-transfer: the new process went away before confirming ({e})") from None
    finally:
        sock.settimeout(None)
    if data != b"DONE":
        raise CprError(f"cpr-transfer: the new process failed: {data[4:].decode(errors='replace')}")
