"""The submit grammar's reading of lines and queue statements, as htcondor2 25.14 reads them.

Each expectation was checked against htcondor2.Submit (tests/security/test_submit_child.py
compares the two readers on generated files).
"""

from __future__ import annotations

from orchestration.batch.grammar import read_submit


def _values(text: str) -> dict[str, str]:
    read = read_submit(text)
    assert read.problems == [], read.problems
    return {a.key: a.value for a in read.assignments}


def test_it_joins_continuation_lines_as_htcondor_does() -> None:
    assert _values("a = x\\\n  y\nqueue\n") == {"a": "xy"}  # the next line's indentation goes
    assert _values("a = x \\  \n  y\nqueue\n") == {"a": "x y"}  # white space before the backslash stays
    assert _values("a = x\\\\\n  y\nqueue\n") == {"a": "x\\y"}  # only the last backslash continues
    assert _values("a = \\\n\\\n  x\nqueue\n") == {"a": "x"}


def test_it_refuses_lines_htcondor_and_other_readers_disagree_on() -> None:
    read = read_submit("# note \\\nb = 1\na = x\\\n\nc = 2\nd = y\\\n# c\n  z\nqueue\n")
    assert [line for line, _ in read.problems] == [1, 4, 7, 8]
    assert read.problems[0][1].startswith("line 1: a comment ends with '\\'")
    assert (
        read.problems[1][1]
        == "line 4: line 3 ends with '\\' but line 4 is empty; remove the backslash or the line."
    )


def test_it_reads_every_queue_form_the_portal_takes() -> None:
    def queue(text: str) -> tuple[int, list[str], list[dict[str, str]]]:
        read = read_submit(text)
        assert read.problems == [] and read.queue is not None, read.problems
        return read.queue.count, read.queue.variables, read.queue.items

    assert queue("queue\n") == (1, [], [])
    assert queue("queue 3\n") == (3, [], [])
    assert queue("queue a from (\n x\n # skipped\n y\n)\n") == (1, ["a"], [{"a": "x"}, {"a": "y"}])
    assert queue("queue a from ( x y z )\n") == (1, ["a"], [{"a": "x y z"}])  # one item
    assert queue("queue 2 from (\n x\n)\n") == (2, ["Item"], [{"Item": "x"}])
    assert queue("queue a in (x y, z)\n") == (1, ["a"], [{"a": "x"}, {"a": "y"}, {"a": "z"}])
    assert queue("Queue A, B from(\n 1 2 3\n 4, 5\n 4 ,5\n 6\n)\n")[2] == [
        {"A": "1", "B": "2 3"},
        {"A": "4", "B": "5"},
        {"A": "4", "B": ",5"},
        {"A": "6", "B": ""},
    ]


def test_it_reads_no_item_source_but_inline_ones() -> None:
    for line in ("queue a from items.txt", "queue a matching *.fits", "queue a in items.txt"):
        read = read_submit(line + "\n")
        assert [n for n, _ in read.problems] == [1], line
