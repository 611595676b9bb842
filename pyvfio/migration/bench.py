"""Benchmarks of the migration hot paths: ``python3 -m pyvfio.migration.bench``.

1. Bitmap scan: a 1 TiB guest at 4 KiB pages is a 32 MiB bitmap; at 0.1 %
   dirty pages it holds ~268 000 set bits.  :func:`bench_scan` times
   :func:`~pyvfio.migration.dirty.dirty_page_runs` against a small C scanner
   (``__builtin_ctzll`` over u64 words) compiled at run time with ``cc`` and
   called through ctypes, on two bitmaps with the same number of dirty pages:
   *uniform* (every page independently, the worst case: ~one run per dirty
   page) and *clustered* (runs of 32 pages on average, closer to how guests
   dirty memory).  It also times two floors no pure-Python scanner can go
   below -- letting ``itertools.compress`` walk the words, and merely building
   the output list -- so the ratio to C can be read against them.
2. Data path: :func:`bench_data_path` moves a device's saved state from the
   data fd into a TCP socket through :meth:`StreamWriter.pump` (framing and
   CRC-32 one chunk ahead in a helper thread), against a raw copy of the same
   bytes from a pipe into the socket.  The data fd is a pipe filled by a
   separate process (as the kernel's driver fills the real one) and the
   receiver is another process that discards what it gets, so the measured
   process does only the migration's work.  Raw, checked and unchecked
   (:data:`~pyvfio.migration.stream.FLAG_DATA_UNCHECKED`) runs alternate and
   the medians are reported, since a 2-core machine's figures swing between
   runs.

Library functions return figures; only :func:`main` prints.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import zlib
from itertools import compress
from typing import Any, Callable, Optional

from .dirty import dirty_page_runs
from .stream import StreamWriter

_C_SCANNER = r"""
#include <stdint.h>
#include <stddef.h>
/* Runs of set bits in a bitmap of u64 words: (first bit, length) pairs into out; returns the count. */
size_t scan(const uint64_t *w, size_t nwords, uint64_t *out, size_t cap) {
    size_t n = 0; uint64_t end = (uint64_t)-1;
    for (size_t i = 0; i < nwords; i++) {
        uint64_t x = w[i]; uint64_t pos = (uint64_t)i * 64;
        while (x) {
            unsigned low = __builtin_ctzll(x); x = low == 64 ? 0 : x >> low; pos += low;
            uint64_t inv = ~x; unsigned run = inv ? __builtin_ctzll(inv) : 64;
            if (pos == end && n) out[2 * n - 1] += run;
            else if (n < cap) { out[2 * n] = pos; out[2 * n + 1] = run; n++; }
            x = run == 64 ? 0 : x >> run; pos += run; end = pos;
        }
    }
    return n;
}
"""


def make_bitmap(nbytes: int, fraction: float, seed: int = 1) -> bytes:
    """A bitmap of ``nbytes`` with ``fraction`` of its bits set, each bit independently (uniform)."""
    rng = random.Random(seed)
    nbits = nbytes * 8
    bm = bytearray(nbytes)
    for i in rng.sample(range(nbits), int(nbits * fraction)):
        bm[i >> 3] |= 1 << (i & 7)
    return bytes(bm)


def make_clustered_bitmap(nbytes: int, fraction: float, mean_run: int = 32, seed: int = 1) -> bytes:
    """A bitmap with ``fraction`` of its bits set in runs of ``mean_run`` pages on average (exponential lengths)."""
    rng = random.Random(seed)
    nbits = nbytes * 8
    target = int(nbits * fraction)
    bm = bytearray(nbytes)
    dirty = 0
    while dirty < target:
        n = min(target - dirty, max(1, int(rng.expovariate(1 / mean_run))))
        start = rng.randrange(nbits - n)
        lo, hi = start >> 3, (start + n + 7) >> 3
        window = int.from_bytes(bm[lo:hi], "little")
        merged = window | ((1 << n) - 1) << (start - lo * 8)
        bm[lo:hi] = merged.to_bytes(hi - lo, "little")
        dirty += merged.bit_count() - window.bit_count()
    return bytes(bm)


def _build_c_scanner(workdir: str) -> Optional[Any]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    src = os.path.join(workdir, "scan.c")
    lib = os.path.join(workdir, "scan.so")
    with open(src, "w") as f:
        f.write(_C_SCANNER)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", lib, src], check=True)
    so = ctypes.CDLL(lib)
    so.scan.restype = ctypes.c_size_t
    so.scan.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    return so


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_scan(nbytes: int = 32 << 20, fraction: float = 0.001, repeat: int = 5,
               clustered: bool = False) -> dict[str, Any]:
    """Best-of-``repeat`` seconds for the Python scanner, the pure-Python floors and, when ``cc`` exists, C."""
    bm = make_clustered_bitmap(nbytes, fraction) if clustered else make_bitmap(nbytes, fraction)
    runs = dirty_page_runs(bm)
    words = memoryview(bm).cast("Q")
    n = len(runs)
    result: dict[str, Any] = {
        "bitmap_bytes": nbytes, "dirty_fraction": fraction, "layout": "clustered" if clustered else "uniform",
        "runs": n, "python_s": _best(lambda: dirty_page_runs(bm), repeat),
        # what any pure-Python scanner pays at least: C walking the words for it, and the output list itself
        "floor_compress_s": _best(lambda: list(compress(range(len(words)), words)), repeat),
        "floor_output_s": _best(lambda: list(zip(range(n), range(n))), repeat),
        "c_s": None, "ratio": None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        so = _build_c_scanner(tmp)
        if so is not None:
            buf = ctypes.create_string_buffer(bm, len(bm))
            cap = n + 1
            out = (ctypes.c_uint64 * (2 * cap))()
            best_c = _best(lambda: so.scan(buf, len(bm) // 8, out, cap), repeat)
            got = so.scan(buf, len(bm) // 8, out, cap)
            if got != n or [(out[2 * i], out[2 * i + 1]) for i in range(n)] != runs:
                raise AssertionError("the C and Python scanners disagree")
            result.update(c_s=best_c, ratio=result["python_s"] / best_c if best_c else None)
    return result


def _feed(wfd: int, nbytes: int, chunk: int, close: tuple[int, ...]) -> None:
    """Feeder process: the driver side of a data fd, writing ``nbytes`` into the pipe."""
    for fd in close:
        os.close(fd)
    payload = memoryview(os.urandom(chunk))
    sent = 0
    while sent < nbytes:
        sent += os.write(wfd, payload[: min(chunk, nbytes - sent)])
    os.close(wfd)


def _discard(sock: socket.socket, close: tuple[int, ...]) -> None:
    """Receiver process: takes everything and throws it away (MSG_TRUNC: TCP drops it without a copy)."""
    for fd in close:
        os.close(fd)
    while sock.recv(1 << 20, socket.MSG_TRUNC):
        pass


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


def _one_copy(mode: str, nbytes: int, chunk: int) -> float:
    """MB/s of one run: ``raw`` (read, sendall), ``checked`` or ``unchecked`` (StreamWriter.pump)."""
    ctx = multiprocessing.get_context("fork")
    rfd, wfd = os.pipe()
    a, b = _tcp_pair()
    feeder = ctx.Process(target=_feed, args=(wfd, nbytes, chunk, (rfd, a.fileno(), b.fileno())))
    sink = ctx.Process(target=_discard, args=(b, (rfd, wfd, a.fileno())))
    try:
        feeder.start()
        sink.start()
        os.close(wfd)
        wfd = -1
        b.close()
        t = time.perf_counter()
        if mode == "raw":
            while True:
                data = os.read(rfd, chunk)
                if not data:
                    break
                a.sendall(data)
        else:
            StreamWriter(a.sendall, data_checksum=mode == "checked").pump(
                iter(lambda: os.read(rfd, chunk), b""))
        a.shutdown(socket.SHUT_WR)
        sink.join(60)
        elapsed = time.perf_counter() - t
    finally:
        for proc in (feeder, sink):
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
        a.close()
        b.close()
    return nbytes / elapsed / 1e6


def bench_data_path(nbytes: int = 256 << 20, chunk: int = 1 << 20, pairs: int = 7) -> dict[str, Any]:
    """Median MB/s of raw pipe -> socket against data fd -> stream -> socket, checked and unchecked."""
    figures: dict[str, list[float]] = {"raw": [], "checked": [], "unchecked": []}
    for _ in range(pairs):
        for mode, runs in figures.items():
            runs.append(_one_copy(mode, nbytes, chunk))
    median = {mode: statistics.median(runs) for mode, runs in figures.items()}
    payload = os.urandom(chunk)
    crc_s = _best(lambda: zlib.crc32(payload), 20)
    return {"bytes": nbytes, "chunk": chunk, "pairs": pairs, "raw_MBps": median["raw"],
            "stream_MBps": median["checked"], "ratio": median["checked"] / median["raw"],
            "unchecked_MBps": median["unchecked"], "unchecked_ratio": median["unchecked"] / median["raw"],
            "runs_MBps": figures, "crc32_MBps": chunk / crc_s / 1e6}


def main() -> None:
    for clustered in (False, True):
        scan = bench_scan(clustered=clustered)
        print(f"bitmap scan, {scan['bitmap_bytes'] >> 20} MiB bitmap (1 TiB guest), {scan['dirty_fraction']:.1%} "
              f"dirty, {scan['layout']}, {scan['runs']} runs: python {scan['python_s'] * 1000:.1f} ms", end="")
        if scan["c_s"] is not None:
            print(f", C {scan['c_s'] * 1000:.1f} ms, python/C = {scan['ratio']:.1f}x", end="")
        else:
            print(" (no C compiler: no comparison)", end="")
        print(f"; pure-Python floors: compress over the words {scan['floor_compress_s'] * 1000:.1f} ms, "
              f"building {scan['runs']} output tuples {scan['floor_output_s'] * 1000:.1f} ms")
    dp = bench_data_path()
    print(f"data path, {dp['bytes'] >> 20} MiB in {dp['chunk'] >> 10} KiB chunks, median of {dp['pairs']} "
          f"alternating runs: raw pipe->socket {dp['raw_MBps']:.0f} MB/s, data fd->stream->socket "
          f"{dp['stream_MBps']:.0f} MB/s ({dp['ratio']:.0%}), with FLAG_DATA_UNCHECKED "
          f"{dp['unchecked_MBps']:.0f} MB/s ({dp['unchecked_ratio']:.0%}); CRC-32 alone {dp['crc32_MBps']:.0f} MB/s "
          f"on one core")


if __name__ == "__main__":
    main()
