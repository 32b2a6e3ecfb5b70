"""Upload/download of a big file through LocalStorage against a plain file copy, in one process.

Run: .venv/bin/python bench/storage_local.py [SIZE_MB]   (default 1024; target: ratio >= 0.5, memory flat)

References: `shutil.copyfile` (what `cp` does: sendfile, no user-space copy) and a plain Python
read/write loop with the same 1 MiB chunks. Peak memory: the process's RSS high-water mark and
tracemalloc's peak, both of which must stay far below the file size.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration.storage.base import CHUNK_SIZE, copy_stream
from orchestration.storage.local import LocalStorage

MB = 1024 * 1024


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_source(path: Path, size_mb: int) -> None:
    block = bytearray(os.urandom(MB))
    with open(path, "wb") as out:
        for i in range(size_mb):
            block[:4] = i.to_bytes(4, "big")
            out.write(block)


def best_of(runs: int, action: Callable[[], None], cleanup: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
        cleanup()
    return min(times)


def main(size_mb: int) -> None:
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        src = root / "source.bin"
        make_source(src, size_mb)
        storage = LocalStorage(root / "space")
        copy_dest = root / "copy.bin"
        download_dest = root / "download.bin"
        rss_start = rss_peak_mb()
        tracemalloc.start()

        def plain_loop() -> None:
            with open(src, "rb") as fin, open(copy_dest, "wb") as fout:
                while chunk := fin.read(CHUNK_SIZE):
                    fout.write(chunk)

        def upload() -> None:
            with open(src, "rb") as fin:
                storage.upload("big.bin", fin, overwrite=True)

        def download() -> None:
            with storage.open_read("big.bin") as fin, open(download_dest, "wb") as fout:
                copy_stream(fin, fout)

        t_cp = best_of(2, lambda: shutil.copyfile(src, copy_dest), copy_dest.unlink)
        t_loop = best_of(2, plain_loop, copy_dest.unlink)
        t_up = best_of(2, upload, lambda: None)
        t_down = best_of(2, download, download_dest.unlink)
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_end = rss_peak_mb()

        listing_dir = root / "space" / "many"
        listing_dir.mkdir()
        for i in range(10_000):
            (listing_dir / f"file-{i:05d}.fits").touch()
        start = time.perf_counter()
        first_page = storage.list("many", offset=0, limit=100)
        t_list = time.perf_counter() - start
        assert len(first_page) == 100

    rate = size_mb / 1024
    print(f"file size                 : {size_mb} MB")
    print(f"shutil.copyfile (cp)      : {t_cp:6.2f} s  {rate / t_cp:5.2f} GB/s")
    print(f"plain read/write loop     : {t_loop:6.2f} s  {rate / t_loop:5.2f} GB/s")
    print(f"LocalStorage.upload       : {t_up:6.2f} s  {rate / t_up:5.2f} GB/s")
    print(f"LocalStorage.open_read    : {t_down:6.2f} s  {rate / t_down:5.2f} GB/s")
    print(f"ratio upload   vs cp/loop : {t_cp / t_up:5.2f} / {t_loop / t_up:5.2f}  (>= 0.5 wanted)")
    print(f"ratio download vs cp/loop : {t_cp / t_down:5.2f} / {t_loop / t_down:5.2f}")
    print(f"list 10,000 entries (page): {t_list * 1000:6.1f} ms  (< 300 ms wanted)")
    print(f"python heap peak          : {py_peak / MB:6.1f} MB")
    print(f"RSS high-water            : {rss_start:6.1f} MB before, {rss_end:6.1f} MB after")
    flat = py_peak < 16 * MB and rss_end - rss_start < 64
    print(f"memory flat               : {'yes' if flat else 'NO'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
