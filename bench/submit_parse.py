"""Reading a 2 MiB submit file: the portal's grammar against references run in the same process.

Run: .venv/bin/python bench/submit_parse.py
Three 2 MiB files (the upload limit): one long statement of continuation lines, a queue block of
190,000 items (refused at the portal's limit of 20,000 jobs), and many short continued statements;
and the largest file the portal accepts as jobs, 20,000 items. On a busy machine the figures
are noisy: each is the best of several runs. For each it prints the time to the verdict
(accepted, or refused with its messages), the ratio to one `str.splitlines()` pass over the same
text, and the time at 1/4 and 1/2 of the size: linear means about x2 per doubling. The reader it
replaced (`_logical_lines`, quadratic in continuation lines) is timed on the first file at
64 KiB and 128 KiB only; at 2 MiB it took about a minute.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration.batch.base import BatchValidationError  # noqa: E402
from orchestration.batch.submit import MAX_SUBMIT_BYTES, parse_submit  # noqa: E402

SIZE = MAX_SUBMIT_BYTES - 1024


def _old_logical_lines(text: str) -> list[tuple[int, str]]:
    """The pre-scan's joining of continuation lines before this grammar (kept here as the reference)."""
    out: list[tuple[int, str]] = []
    raw = text.split("\n")
    i = 0
    while i < len(raw):
        start, line = i + 1, raw[i]
        while line.rstrip().endswith("\\") and i + 1 < len(raw):
            i += 1
            line = line.rstrip()[:-1] + " " + raw[i]
        out.append((start, line))
        i += 1
    return out


def continuations(size: int) -> str:
    head = "executable = a.sh\narguments = start \\\n"
    body = "  1056215p \\\n" * ((size - len(head) - 40) // 13)
    return head + body + "  end\nqueue\n"


def items(size: int) -> str:
    head = "executable = a.sh\noutput = o-$(arguments).out\nqueue arguments from (\n"
    n = (size - len(head) - 10) // 11
    return head + "".join(f"  {i:07d}\n" for i in range(n)) + ")\n"


def accepted_items(size: int) -> str:
    """20,000 items in a full-size call (the portal's limit of jobs), proportionally fewer otherwise."""
    n = 20_000 * size // SIZE
    head = "executable = a.sh\noutput = o-$(arguments).out\nqueue arguments from (\n"
    return head + "".join(f"  {i:07d}\n" for i in range(n)) + ")\n"


def statements(size: int) -> str:
    """Many continued assignments (HTCondor keeps the last of each), with a macro each refers to."""
    head = "executable = a.sh\nstem = do_catalogue\n"
    one = "arguments = $(stem) \\\n   part {0} \\\n   continued\n"
    lines, total, i = [head], len(head), 0
    while total < size - 200:
        lines.append(one.format(i))
        total += len(lines[-1])
        i += 1
    return "".join(lines) + "queue\n"


def _verdict(text: str, max_jobs: int) -> str:
    try:
        parsed = parse_submit(text, "a.sh", max_jobs=max_jobs)
    except BatchValidationError as exc:
        return f"refused ({len(exc.problems)} messages, first: {exc.problems[0][:60]})"
    return f"accepted ({len(parsed.jobs)} jobs)"


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _measure(text: str, max_jobs: int) -> tuple[float, float]:
    """(seconds to the verdict, the same over one splitlines() pass of the text)."""
    reference = _best(text.splitlines)
    seconds = _best(lambda: _verdict(text, max_jobs), repeat=3)
    return seconds, seconds / reference


def main() -> None:
    print(
        f"submit files of {SIZE / 1024 / 1024:.2f} MiB (ratios: time / one splitlines() pass of the same text)"
    )
    for name, make, max_jobs in (
        ("one statement of continuation lines", continuations, 20_000),
        ("a queue block of many items", items, 20_000),
        ("the most jobs the portal takes (20,000 items), accepted", accepted_items, 20_000),
        ("many continued statements", statements, 20_000),
    ):
        text = make(SIZE)
        print(f"\n{name}: {text.count(chr(10)):,} lines, {_verdict(text, max_jobs)}")
        for fraction in (4, 2, 1):
            seconds, ratio = _measure(make(SIZE // fraction), max_jobs)
            label = "full size" if fraction == 1 else f"1/{fraction} size"
            print(f"  {label:>9}: {seconds * 1000:6.0f} ms, ratio {ratio:5.0f}")
        print("  linear: the ratio stays the same as the size doubles")
    small, double = continuations(64 * 1024), continuations(128 * 1024)
    old_small = _best(lambda: _old_logical_lines(small), repeat=1)
    old_double = _best(lambda: _old_logical_lines(double), repeat=1)
    new_double = _best(lambda: _verdict(double, 20_000))
    print("\nthe reader it replaced (_logical_lines), one statement of continuation lines:")
    print(
        f"  64 KiB {old_small * 1000:.0f} ms, 128 KiB {old_double * 1000:.0f} ms: x{old_double / old_small:.1f} per doubling"
    )
    print(
        f"  at 128 KiB the grammar takes {new_double * 1000:.1f} ms: {old_double / new_double:.0f} x faster"
    )


if __name__ == "__main__":
    main()
