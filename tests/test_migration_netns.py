"""The live-migration demo across two network namespaces joined by a veth pair (pyvfio.migration.netns).

What matters besides the migration working: the namespaces are private to
the run -- afterwards no process or descriptor refers to them, no veth or
named namespace appears on the host, and the test process's threads are
still in the namespace they started in, also when setup fails halfway.
Tests that create namespaces skip with the reason netns_available() gives
(not root, no iproute2, unshare forbidden in a container).
"""

from __future__ import annotations

import errno
import json
import multiprocessing.resource_tracker
import os
import socket
import subprocess
import tempfile
from typing import Any, Iterator, Sequence

import pytest

from pyvfio.cli import main
from pyvfio.migration import netns
from pyvfio.migration.sim_demo import run_demo

UNAVAILABLE = netns.netns_available()
needs_netns = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"network namespaces: {UNAVAILABLE}")


def namespaces_in_use() -> set[str]:
    """Every network namespace some thread is in or this process holds a descriptor of, as ``net:[inode]``."""
    found: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone meanwhile
            continue
        for tid in tids:
            try:
                found.add(os.readlink(f"/proc/{pid}/task/{tid}/ns/net"))
            except OSError:
                pass
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(target)
    return found


def host_view() -> dict[str, Any]:
    """What a leak would change on the host: named namespaces, links, our namespace, our open descriptors."""
    ip = netns.find_ip()
    assert ip is not None

    def run(*args: str) -> str:
        return subprocess.run([ip, *args], capture_output=True, text=True, check=True).stdout

    return {"netns list": run("netns", "list"), "links": sorted(line.split()[0] for line in
                                                                 run("-br", "link").splitlines()),
            "own namespace": {os.readlink(f"/proc/self/task/{tid}/ns/net") for tid in os.listdir("/proc/self/task")},
            "fds": len(os.listdir("/proc/self/fd"))}


@pytest.fixture
def no_leaks() -> Iterator[None]:
    # The first spawned process starts multiprocessing's resource tracker, whose pipe stays open for good:
    # start it beforehand so the descriptor count only moves if this code leaks one.
    multiprocessing.resource_tracker.ensure_running()
    before, in_use = host_view(), namespaces_in_use()
    yield
    assert host_view() == before
    assert namespaces_in_use() - in_use == set(), "a namespace outlived its run"


@needs_netns
def test_demo_over_two_namespaces(no_leaks: None) -> None:
    own = os.readlink("/proc/self/ns/net")
    lines: list[str] = []
    summary = run_demo(netns=True, npages=16, rounds=3, dirty_rate=2, progress=lines.append)
    assert summary["ok"] and summary["state_ok"] and summary["memory_ok"], (summary, lines)
    assert summary["transport"] == "veth-netns"
    assert summary["precopy_rounds"] > 0 and summary["bytes_memory"] >= 16 * 4096
    text = "\n".join(lines)
    assert "10.77.0.1/30" in text and "10.77.0.2/30" in text
    assert "destination: listening on 10.77.0.2:" in text and "source: connected from 10.77.0.1:" in text
    assert own not in text  # neither end used the test's own namespace
    assert os.readlink("/proc/self/ns/net") == own


def test_default_transport_is_loopback() -> None:
    summary = run_demo(npages=8, rounds=2)
    assert summary["ok"] and summary["transport"] == "tcp-loopback"


@needs_netns
def test_veth_pair_connects_the_namespaces_and_leaves_the_caller_alone(no_leaks: None) -> None:
    own = os.readlink("/proc/self/ns/net")
    with netns.veth_pair("192.168.231.0/29", ("left0", "right0")) as link:
        assert str(link.a_addr) == "192.168.231.1/29" and str(link.b_addr) == "192.168.231.2/29"
        assert link.a.run(lambda: os.readlink("/proc/thread-self/ns/net")) == str(link.a) != own
        assert os.readlink("/proc/self/ns/net") == own
        # a ping across the wire, done with sockets so no extra tool is needed
        server = link.b.run(lambda: socket.create_server((str(link.b_addr.ip), 0)))
        with server:
            client = link.a.run(lambda: socket.create_connection((str(link.b_addr.ip), server.getsockname()[1]), 5))
            conn, peer = server.accept()
            with client, conn:
                assert peer[0] == str(link.a_addr.ip)
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"
        with pytest.raises(ZeroDivisionError):  # exceptions come back to the caller's thread
            link.b.run(lambda: 1 // 0)


@needs_netns
@pytest.mark.parametrize("failing_step", [1, 2, 5])
def test_setup_failure_halfway_cleans_up(failing_step: int, monkeypatch: pytest.MonkeyPatch,
                                         no_leaks: None) -> None:
    """A command failing partway (here: pointed at a link that does not exist) leaves nothing behind."""
    real_run = netns._run
    calls: list[Sequence[str]] = []

    def flaky_run(argv: Sequence[str], pass_fds: Sequence[int] = ()) -> None:
        calls.append(argv)
        if len(calls) == failing_step:
            argv = [argv[0], "link", "set", "dev", "no-such-link", "up"]
        real_run(argv, pass_fds)

    monkeypatch.setattr(netns, "_run", flaky_run)
    with pytest.raises(netns.NetnsError) as info:
        with netns.veth_pair():
            pytest.fail("setup should have failed")
    message = str(info.value)
    assert "link set dev no-such-link up` failed with exit status" in message and "no-such-link" in message
    assert len(calls) == failing_step


@needs_netns
def test_failure_inside_the_block_cleans_up(no_leaks: None) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with netns.veth_pair():
            raise RuntimeError("boom")


@needs_netns
def test_libc_errors_carry_errno_and_say_what_failed() -> None:
    with tempfile.TemporaryFile() as f:  # not a namespace: setns refuses it
        with pytest.raises(netns.NetnsError) as info:
            netns.NetNamespace(f.fileno()).run(lambda: None)
    assert info.value.errno == errno.EINVAL and "setns(" in str(info.value) and "CLONE_NEWNET" in str(info.value)
    with pytest.raises(netns.NetnsError) as info:
        netns.enter("/proc/self/no-such-namespace")
    assert info.value.errno == errno.ENOENT and "/proc/self/no-such-namespace" in str(info.value)


def test_netns_available_gives_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    assert UNAVAILABLE is None or UNAVAILABLE  # either usable or a non-empty reason
    monkeypatch.setattr(netns, "_has_cap_sys_admin", lambda: False)
    assert "CAP_SYS_ADMIN" in (netns.netns_available() or "")
    monkeypatch.setattr(netns, "_has_cap_sys_admin", lambda: True)
    monkeypatch.setattr(netns, "find_ip", lambda: None)
    assert "no `ip` command" in (netns.netns_available() or "")


def test_veth_pair_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="/30 or larger"):
        with netns.veth_pair("10.0.0.0/31"):
            pass
    with pytest.raises(ValueError, match="not a valid interface name"):
        with netns.veth_pair(ifnames=("a-much-too-long-name", "b")):
            pass


@needs_netns
def test_cli_netns_prints_the_json_line(capsys: pytest.CaptureFixture[str], no_leaks: None) -> None:
    code = main(["demo", "migrate", "--netns", "--pages", "16", "--rounds", "3"])
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[-1])
    assert code == 0, out
    assert result["transport"] == "veth-netns" and result["ok"] is True
    assert any(line.startswith("network: two new network namespaces") for line in out)


def test_cli_netns_unavailable_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "netns_available", lambda ip=None: "pretend there is no CAP_SYS_ADMIN")
    assert main(["demo", "migrate", "--netns"]) == 2
    captured = capsys.readouterr()
    assert "pretend there is no CAP_SYS_ADMIN" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


@needs_netns
def test_cli_netns_setup_failure_exits_2_naming_the_command(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    """The availability probe passes, then creating the demo's veth fails."""
    real_run = netns._run

    def failing_run(argv: Sequence[str], pass_fds: Sequence[int] = ()) -> None:
        if "veth-src" in argv:
            raise netns.NetnsError(f"`{' '.join(argv)}` failed with exit status 2: injected")
        real_run(argv, pass_fds)

    monkeypatch.setattr(netns, "_run", failing_run)
    assert main(["demo", "migrate", "--netns"]) == 2
    captured = capsys.readouterr()
    assert "link add veth-src type veth" in captured.err and "injected" in captured.err
    assert "Traceback" not in captured.err
