"""Benchmarks of the migration hot paths: ``python3 -m pyvfio.migration.bench``.

1. Bitmap scan: a 1 TiB guest at 4 KiB pages is a 32 MiB bitmap; at 0.1 %
   dirty pages it holds ~268 000 set bits.  :func:`bench_scan` times
   :func:`~pyvfio.migration.dirty.dirty_page_runs` against a small C scanner
   (``__builtin_ctzll`` over u64 words) compiled at run time with ``cc`` and
   called through ctypes; without a compiler only the Python figure is given.
2. Data path: :func:`bench_data_path` moves a device's saved state from the
   data fd into a socket through :meth:`StreamWriter.pump` (framing and
   CRC-32 one chunk ahead in a helper thread), against a raw copy of
   the same bytes from a pipe into a socket.  mtty's state is 60 bytes, so
   this measures per-chunk overhead with a stand-in data fd (a pipe) that
   is as fast as the kernel's.

Library functions return figures; only :func:`main` prints.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Optional

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
    """A bitmap of ``nbytes`` with ``fraction`` of its bits set at random."""
    rng = random.Random(seed)
    nbits = nbytes * 8
    bm = bytearray(nbytes)
    for i in rng.sample(range(nbits), int(nbits * fraction)):
        bm[i >> 3] |= 1 << (i & 7)
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


def bench_scan(nbytes: int = 32 << 20, fraction: float = 0.001, repeat: int = 3) -> dict[str, Any]:
    """Best-of-``repeat`` seconds for the Python scanner and, when ``cc`` exists, the C one."""
    bm = make_bitmap(nbytes, fraction)
    best_py = min(_timed(lambda: dirty_page_runs(bm)) for _ in range(repeat))
    runs = dirty_page_runs(bm)
    result: dict[str, Any] = {"bitmap_bytes": nbytes, "dirty_fraction": fraction, "runs": len(runs),
                              "python_s": best_py, "c_s": None, "ratio": None}
    with tempfile.TemporaryDirectory() as tmp:
        so = _build_c_scanner(tmp)
        if so is not None:
            words = ctypes.create_string_buffer(bm, len(bm))
            cap = len(runs) + 1
            out = (ctypes.c_uint64 * (2 * cap))()
            best_c = min(_timed(lambda: so.scan(words, len(bm) // 8, out, cap)) for _ in range(repeat))
            n = so.scan(words, len(bm) // 8, out, cap)
            assert n == len(runs) and (out[0], out[1]) == runs[0], "C and Python scanners disagree"
            result.update(c_s=best_c, ratio=best_py / best_c if best_c else None)
    return result


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _drain(sock: socket.socket, total: list[int]) -> None:
    while True:
        part = sock.recv(1 << 20)
        if not part:
            return
        total[0] += len(part)


def bench_data_path(nbytes: int = 256 << 20, chunk: int = 1 << 20) -> dict[str, Any]:
    """MB/s of data fd -> StreamWriter -> socket, against pipe -> socket raw copy (same chunk size)."""
    payload = os.urandom(chunk)

    def run(framed: bool) -> float:
        rfd, wfd = os.pipe()
        a, b = socket.socketpair()
        got = [0]
        reader = threading.Thread(target=_drain, args=(b, got))
        feeder = threading.Thread(target=_feed, args=(wfd, payload, nbytes))
        reader.start()
        feeder.start()
        t = time.perf_counter()
        if framed:
            StreamWriter(a.sendall).pump(iter(lambda: os.read(rfd, chunk), b""))
        else:
            while True:
                data = os.read(rfd, chunk)
                if not data:
                    break
                a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        reader.join()
        elapsed = time.perf_counter() - t
        feeder.join()
        os.close(rfd)
        a.close()
        b.close()
        return nbytes / elapsed / 1e6

    raw = run(False)
    framed = run(True)
    return {"bytes": nbytes, "chunk": chunk, "raw_MBps": raw, "stream_MBps": framed, "ratio": framed / raw}


def _feed(wfd: int, payload: bytes, nbytes: int) -> None:
    sent = 0
    while sent < nbytes:
        sent += os.write(wfd, payload[: min(len(payload), nbytes - sent)])
    os.close(wfd)


def main() -> None:
    scan = bench_scan()
    print(f"bitmap scan, {scan['bitmap_bytes'] >> 20} MiB bitmap (1 TiB guest), {scan['dirty_fraction']:.1%} "
          f"dirty, {scan['runs']} runs: python {scan['python_s'] * 1000:.1f} ms", end="")
    if scan["c_s"] is not None:
        print(f", C {scan['c_s'] * 1000:.1f} ms, python/C = {scan['ratio']:.1f}x")
    else:
        print(" (no C compiler: no comparison)")
    dp = bench_data_path()
    print(f"data path, {dp['bytes'] >> 20} MiB in {dp['chunk'] >> 10} KiB chunks: raw pipe->socket "
          f"{dp['raw_MBps']:.0f} MB/s, data fd->stream->socket {dp['stream_MBps']:.0f} MB/s "
          f"({dp['ratio']:.0%})")


if __name__ == "__main__":
    main()
