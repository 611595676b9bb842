"""``python -m pyvfio demo cpr``: a process drives the simulated edu, live-updates itself, the new one checks.

The old process starts (or joins) a simulated-kernel server, opens the edu
through the chosen backend, maps guest RAM and wires interrupt eventfds, and
works for a while.  Then it stops delivery, raises one interrupt per vector
(these must survive in the eventfd counters), quiesces the backend, does one
more DMA (legacy: DMA keeps flowing with vaddrs invalid) and hands over --
by ``exec`` of ``python -m pyvfio.cpr.demo incoming`` or to an independently
started ``incoming --listen SOCK`` process.  The new process adopts
everything, counts the pending interrupts, checks the RAM the device wrote,
keeps working and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

from ..sim.remote import RemoteKernel, start_server
from . import modes
from .owner import Owner, ReuseGuard
from .state import CprState, FdRegistry

TICKS = 16


def _say(text: str) -> None:
    print(f"[cpr pid {os.getpid()}] {text}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_old(mode: str, backend: str, mappings: int, vectors: int, *, server: Optional[str] = None,
            fail: str = "", exec_path: Optional[str] = None, say: Callable[[str], None] = _say,
            interrupts: str = "eventfd") -> int:
    """The old process; in exec mode it only returns when the hand-off failed before exec."""
    own_server = server is None
    tmp = tempfile.mkdtemp(prefix="pyvfio-cpr-")
    spec = "edu" if vectors == 1 else f"edu,msix_vectors={vectors}"
    handle = start_server(os.path.join(tmp, "sim.sock"), devices=[spec]) if own_server else None
    path = handle.path if handle else str(server)
    k = RemoteKernel(path)
    owner = Owner.create(k, backend, mappings=mappings, vectors=vectors, interrupts=interrupts)
    new: Optional["subprocess.Popen[bytes]"] = None
    try:
        ok = all(owner.tick() for _ in range(TICKS))
        say(f"{backend}: {mappings} mappings, {vectors} vectors; {TICKS} DMA round trips ok={ok}, "
            f"interrupts {owner.received}/{owner.sent}")
        app = {"old_pid": os.getpid(), "server": path, "server_pid": handle.pid if handle else 0, "tmp": tmp,
               "mode": mode, "fail": fail}
        if mode == "transfer":
            listen = os.path.join(tmp, "cpr.sock")
            new = subprocess.Popen([sys.executable, "-m", "pyvfio.cpr.demo", "incoming", "--listen", listen,
                                    "--server", path, "--fail", fail], env=_env())
            deadline = time.monotonic() + 20
            while not os.path.exists(listen):
                if new.poll() is not None or time.monotonic() > deadline:
                    raise modes.CprError("the new process did not start listening")
                time.sleep(0.005)
            chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            chan.connect(listen)
            say(f"new process {new.pid} is listening; handing over")
        # The simulated device acts only when this process pokes its registers, so the traffic the demo
        # injects during the hand-off costs the owner time a real device would not; it is timed apart
        # (traffic_ms) and left out of blackout_ms, which is the CPR work alone.
        t_stop = time.monotonic()
        owner.stop_delivery()
        for v in range(vectors):  # fire while nobody listens: these must reach the new side
            owner.raise_irq(v)
        traffic = time.monotonic() - t_stop
        registry, state = owner.prepare()
        t = time.monotonic()
        ok = owner.dma(0, 999) and ok  # DMA keeps flowing during the hand-off (legacy: vaddrs invalid)
        traffic += time.monotonic() - t
        state = owner.save_state()
        state.app.update(app, t_stop=t_stop, traffic=traffic, dma_ok=ok)
        if mode == "exec":
            argv = [exec_path or sys.executable, "-m", "pyvfio.cpr.demo", "incoming"]
            say("exec'ing the new image")
            try:
                modes.exec_with_state(argv, registry, state, env=_env())
            except modes.CprExecError as e:
                say(f"{e}; recovering")
                owner.recover()
                raise
        try:
            modes.send_state(chan, registry, state)
            modes.wait_verdict(chan)
        except modes.CprError as e:
            say(f"hand-off failed: {e}; the old process resumes")
            owner.recover()
            ok = all(owner.tick() for _ in range(TICKS)) and owner.dma_intact()
            lost = owner.sent - owner.received
            say(f"resumed: dma_ok={ok} interrupts {owner.received}/{owner.sent} lost {lost}")
            print(json.dumps({"mode": mode, "backend": backend, "recovered": True, "dma_ok": ok,
                              "interrupts_sent": owner.sent, "interrupts_received": owner.received,
                              "lost": lost, "error": str(e)}), flush=True)
            chan.close()
            assert new is not None
            new.wait(timeout=30)
            return 3 if lost or not ok else 0
        chan.close()
        say("the new process confirmed; the old one lets go")
        owner.close()
        assert new is not None
        return new.wait(timeout=60)
    finally:
        owner.close()
        k.shutdown()
        if new is not None and new.poll() is None:
            new.kill()
            new.wait()
        if handle is not None:
            handle.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_new(state: CprState, registry: FdRegistry, *, chan: Optional[socket.socket] = None,
            fail: str = "", kernel: Optional[RemoteKernel] = None) -> int:
    """The new process: adopt, verify, work, report; with ``chan`` (transfer) confirm or refuse first.

    A transfer target connects to the kernel before the hand-off (``kernel``); after exec there is no
    "before", so the connection is part of the blackout there.
    """
    app = state.app
    k = kernel or RemoteKernel(app["server"])
    guard = ReuseGuard(k)
    mode = app["mode"]
    owner: Optional[Owner] = None
    try:
        if fail == "receive":
            os._exit(9)  # killed right after receiving the descriptors
        try:
            half = len(state.mappings) // 2 if fail == "remap" else None
            owner = Owner.adopt(guard, registry, state, fail_after=half)
        except Exception as e:
            registry.close_all()
            if chan is not None:
                modes.send_verdict(chan, False, f"adopt failed: {e}")
            _say(f"cpr-{mode}: the new process could not adopt the devices: {e}")
            return 4
        if fail == "verdict":
            os._exit(9)  # killed after adopting, before confirming
        if chan is not None:
            modes.send_verdict(chan, True)
            chan.close()
        owner.claim()
        t1 = time.monotonic()
        adopt_calls = guard.calls
        untouched = owner.config_unchanged(state)
        intact = owner.dma_intact()
        n = len(owner.mappings)
        sample = range(n) if n <= 64 else range(0, n, n // 64)
        ok = bool(app.get("dma_ok")) and intact and all(owner.dma(i, 5000 + i) for i in sample)
        ok = all(owner.tick() for _ in range(TICKS)) and ok
        owner.poll()
        lost = owner.sent - owner.received
        out = {"mode": mode, "backend": state.backend, "mappings": n, "vectors": len(owner.vectors),
               "dma_ok": ok, "interrupts_sent": owner.sent, "interrupts_received": owner.received,
               "pending_claimed": owner.pending_claimed, "lost": lost,
               "interrupts": owner.interrupts,
               "blackout_ms": round((t1 - float(app["t_stop"]) - float(app["traffic"])) * 1000, 3),
               "traffic_ms": round(float(app["traffic"]) * 1000, 3),
               "delivery_gap_ms": round((t1 - float(app["t_stop"])) * 1000, 3), "adopt_calls": adopt_calls, "config_unchanged": untouched,
               "old_pid": app.get("old_pid"), "pid": os.getpid()}
        _say(f"adopted with {adopt_calls} kernel calls; {owner.pending_claimed} pending interrupts claimed; "
             f"RAM intact={intact}; DMA ok={ok}; lost={lost}")
        print(json.dumps(out), flush=True)
        return 0 if ok and lost == 0 else 3
    finally:
        if owner is not None:
            owner.close()
        k.shutdown()
        if mode == "exec" and app.get("server_pid"):  # the server is this (exec'd) process's child
            os.kill(int(app["server_pid"]), signal.SIGTERM)
            os.waitpid(int(app["server_pid"]), 0)
        if mode == "exec" and app.get("tmp"):
            shutil.rmtree(str(app["tmp"]), ignore_errors=True)


def relay(kernel: RemoteKernel, chan: socket.socket, owner: Optional[Owner], cycles: int,
          vectors: int) -> Optional[dict[str, Any]]:
    """Ping-pong the devices between two processes until ``cycles`` hand-offs were done.

    Each side, when it holds the owner, works a tick, stops delivery, fires
    one interrupt per vector, hands everything over and waits for the verdict;
    otherwise it receives, adopts, confirms and claims.  The side holding the
    owner after the last hand-off returns the totals; the other returns None.
    """
    while True:
        if owner is None:
            try:
                state, registry = modes.receive_state(chan)
            except modes.CprError:
                return None  # the peer finished and closed the channel
            owner = Owner.adopt(ReuseGuard(kernel), registry, state)
            modes.send_verdict(chan, True)
            owner.claim()
            owner.kernel = kernel
            pending = int(state.app.get("pending", 0)) + owner.pending_claimed
            cycle = int(state.app.get("cycle", 0))
            if cycle >= cycles:
                ok = owner.tick() and owner.dma_intact() and bool(state.app.get("dma_ok", True))
                owner.poll()
                out = {"cycles": cycle, "sent": owner.sent, "received": owner.received, "pending": pending,
                       "lost": owner.sent - owner.received, "dma_ok": ok}
                owner.close()
                chan.close()
                return out
            owner.app_extra = {"pending": pending, "cycle": cycle, "dma_ok": bool(state.app.get("dma_ok", True))}
        ok = owner.tick()
        owner.stop_delivery()
        for v in range(vectors):
            owner.raise_irq(v)
        registry, state = owner.prepare()
        extra = owner.app_extra
        state.app.update(pending=extra.get("pending", 0), cycle=extra.get("cycle", 0) + 1,
                         dma_ok=ok and extra.get("dma_ok", True))
        try:
            modes.send_state(chan, registry, state)
            modes.wait_verdict(chan)
        except modes.CprError:
            owner.recover()
            raise
        owner.close()
        owner = None


def soak(server: str, backend: str, cycles: int, vectors: int = 4, mappings: int = 4) -> dict[str, Any]:
    """``cycles`` (even) hand-offs between this process and a relay child over the real protocol."""
    if cycles % 2:
        raise ValueError("soak cycles must be even (the devices come back to this process)")
    k = RemoteKernel(server)
    mine, theirs = socket.socketpair()
    child = subprocess.Popen([sys.executable, "-m", "pyvfio.cpr.demo", "incoming", "--relay-fd",
                              str(theirs.fileno()), "--server", server, "--cycles", str(cycles), "--vectors",
                              str(vectors)], pass_fds=(theirs.fileno(),), env=_env())
    theirs.close()
    try:
        owner = Owner.create(k, backend, mappings=mappings, vectors=vectors)
        out = relay(k, mine, owner, cycles, vectors)
        if out is None:
            raise modes.CprError("soak: the devices did not come back")
        if child.wait(timeout=60) != 0:
            raise modes.CprError(f"soak: the relay process exited {child.returncode}")
        return out
    finally:
        mine.close()
        if child.poll() is None:
            child.kill()
            child.wait()
        k.shutdown()


def incoming(args: argparse.Namespace) -> int:
    if args.relay_fd is not None:
        k = RemoteKernel(args.server)
        try:
            relay(k, socket.socket(fileno=args.relay_fd), None, args.cycles, args.vectors)
        finally:
            k.shutdown()
        return 0
    if args.listen:
        k = RemoteKernel(args.server)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(args.listen + ".tmp")
        srv.listen(1)
        os.rename(args.listen + ".tmp", args.listen)  # the old side waits for this name
        chan, _ = srv.accept()
        srv.close()
        os.unlink(args.listen)
        try:
            state, registry = modes.receive_state(chan)
        except modes.CprError as e:
            _say(str(e))
            k.shutdown()
            return 4
        return run_new(state, registry, chan=chan, fail=args.fail, kernel=k)
    got = modes.incoming_exec()
    if got is None:
        _say(f"cpr-exec: started without {modes.STATE_ENV}: nothing to adopt")
        return 4
    state, registry = got
    return run_new(state, registry, fail=state.app.get("fail", ""))


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="pyvfio demo cpr", description=__doc__)
    p.add_argument("--mode", choices=("exec", "transfer"), default="transfer")
    p.add_argument("--backend", choices=("legacy", "iommufd"), default="iommufd")
    p.add_argument("--mappings", type=int, default=8, help="DMA mappings, one page each (default 8)")
    p.add_argument("--vectors", type=int, default=1,
                   help="interrupt vectors: 1 = edu's MSI, more = edu's MSI-X (register 0x68), at most 128")
    p.add_argument("--server", help="use this running simulated-kernel server instead of starting one")
    p.add_argument("--fail", default="", choices=("", "receive", "remap", "verdict"),
                   help="(tests) make the new process fail at this step")
    p.add_argument("--kvm", action="store_true",
                   help="deliver interrupts into a KVM VM through irqfds (needs /dev/kvm) instead of "
                        "VMM-read eventfds; the new process claims them into its own VM")
    return p


def main_args(args: argparse.Namespace) -> int:
    if not 1 <= args.vectors <= 128 or not 1 <= args.mappings <= 4096:
        raise SystemExit("--vectors must be 1..128 and --mappings 1..4096")
    kvm = bool(getattr(args, "kvm", False))
    if kvm:
        from ..irq.kvm import kvm_unavailable

        why = kvm_unavailable()
        if why is not None:
            raise SystemExit(f"--kvm: {why}")
    try:
        return run_old(args.mode, args.backend, args.mappings, args.vectors, server=args.server, fail=args.fail,
                       interrupts="kvm" if kvm else "eventfd")
    except modes.CprError as e:
        print(f"pyvfio demo cpr: {e}", file=sys.stderr)
        return 4


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["incoming"]:
        p = argparse.ArgumentParser(prog="pyvfio.cpr.demo incoming")
        p.add_argument("--listen")
        p.add_argument("--fail", default="")
        p.add_argument("--relay-fd", type=int)
        p.add_argument("--server")
        p.add_argument("--cycles", type=int, default=0)
        p.add_argument("--vectors", type=int, default=1)
        return incoming(p.parse_args(argv[1:]))
    return main_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
