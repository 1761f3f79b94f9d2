"""The drift report thread: answers as the function did, then releases freed memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving._report_worker import ReportThread, release_memory


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_results_and_errors_pass_through_and_the_thread_keeps_working() -> None:
    thread = ReportThread()
    try:

        def add(a: int, b: int = 1) -> int:
            return a + b

        assert thread.submit(add, 2, b=3).result(timeout=30) == 5

        def broken() -> None:
            raise LookupError("too few judged completions")

        with pytest.raises(LookupError, match="too few"):
            thread.submit(broken).result(timeout=30)
        assert thread.submit(len, "abc").result(timeout=30) == 3
    finally:
        thread.shutdown(wait=True)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_memory_a_report_freed_goes_back_to_the_os() -> None:
    def report() -> int:
        # Many mid-sized blocks, freed but one in 64 kept: a heap glibc does not
        # shrink by itself (the kept blocks pin its top), which malloc_trim releases.
        blocks = [bytearray(4000) for _ in range(40_000)]
        kept = blocks[::64]
        del blocks
        return len(kept)

    thread = ReportThread()
    try:
        before = _rss_kib()
        thread.submit(report).result(timeout=60)
        after = _rss_kib()
    finally:
        thread.shutdown(wait=True)
    release_memory()
    assert after - before < 40_000 * 4 // 4  # KiB: well under a quarter of the 156 MiB made
