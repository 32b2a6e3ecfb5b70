"""The portal's own reader of HTCondor submit descriptions: statements, never actions.

`read_submit(text)` turns a submit file into its `key = value` assignments and
one queue statement with its items, joining continuation lines as HTCondor
25 does (checked against htcondor2.Submit):

- trailing white space is dropped; a line then ending in a backslash loses
  that one backslash and continues with the next line, whose leading white
  space is dropped (`a = x \\` + `  y` is `x y`; `a = x\\` + `  y` is `xy`);
- a comment line is never continued by HTCondor, while other readers continue
  it: a comment ending in a backslash is refused, so no line can mean two
  things;
- a blank line or a comment inside a continued line is refused (HTCondor
  refuses the first and drops the second);
- items of `queue ... from (` are the following lines up to a line holding
  only `)`, comments skipped, blank lines refused; `from ( a b )` on one line
  is ONE item `a b`; items of `in ( ... )` are split on white space and
  commas.

Nothing here reads a file, the environment or the clock; every step is linear
in the size of the text. What is allowed in the values is decided by the
caller (`orchestration.batch.submit`); this module only reads the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_ASSIGNMENT = re.compile(r"([+]?[A-Za-z_][A-Za-z0-9_.]*)[ \t]*=(.*)", re.DOTALL)
_QUEUE = re.compile(r"queue(?![A-Za-z0-9_.])", re.IGNORECASE)
_INCLUDE = re.compile(r"include(?![A-Za-z0-9_.])", re.IGNORECASE)
_DIRECTIVE = re.compile(r"(if|elif)\s|(else|endif)\s*$|(error|warning)\s*:|use\s", re.IGNORECASE)
_COUNT = re.compile(r"(\d+)(?:\s+|$)")
_KEYWORD = re.compile(r"(?<![A-Za-z0-9_.])(from|in|matching)(?![A-Za-z0-9_.])", re.IGNORECASE)
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEPARATORS = re.compile(r"[\s,]+")
_TOKEN = re.compile(r"[^ \t,]*")
_WHITE = " \t\f\v"
MAX_VARIABLES = 10


@dataclass(frozen=True)
class Assignment:
    line: int
    key: str  # as written: "Output", "+ProjectName", "MY.ProjectName"
    value: str  # without the white space around it


@dataclass
class QueueStatement:
    line: int
    count: int
    variables: list[str]  # as written; empty for `queue` and `queue N`
    items: list[dict[str, str]] = field(default_factory=list)  # one dict per item, keyed as written
    item_lines: list[int] = field(default_factory=list)


@dataclass
class SubmitFile:
    assignments: list[Assignment]
    queue: QueueStatement | None
    problems: list[tuple[int, str]]  # (line number, message starting "line N: ")


def clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _describe(c: str) -> str:
    return f"U+{ord(c):04X}"


def logical_lines(text: str, problems: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The statements of `text`: continuation lines joined, each with the number of its first line."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    for number, raw in enumerate(physical, start=1):
        bad = _CONTROL.search(raw)
        if bad:
            problems.append(
                (
                    number,
                    f"line {number}: contains the control or invisible character {_describe(bad.group())}.",
                )
            )
        line = raw.rstrip(_WHITE)
        if parts:
            body = line.lstrip(_WHITE)
            if not body or body.startswith("#"):
                what = "is empty" if not body else "is a comment"
                problems.append(
                    (
                        number,
                        f"line {number}: line {number - 1} ends with '\\' but line {number} {what}; "
                        "remove the backslash or the line.",
                    )
                )
                out.append((start, "".join(parts)))
                parts = []
                if not body:
                    continue
                line = body
            else:
                line = body
        if not parts and line.lstrip(_WHITE).startswith("#"):
            if line.endswith("\\"):
                problems.append(
                    (
                        number,
                        f"line {number}: a comment ends with '\\'; remove the backslash (HTCondor does not "
                        "continue comments, other readers do, so the next line would mean two things).",
                    )
                )
            out.append((number, line))
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        out.append((start, "".join(parts)))
        parts = []
    if parts:  # the file ends inside a continued line: HTCondor joins it with nothing
        out.append((start, "".join(parts)))
    return out


def read_submit(text: str) -> SubmitFile:
    """Read the shape of a submit description; problems are listed, never raised."""
    problems: list[tuple[int, str]] = []
    lines = logical_lines(text, problems)
    assignments: list[Assignment] = []
    queue: QueueStatement | None = None
    i = 0
    while i < len(lines):
        number, line = lines[i]
        i += 1
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if queue is not None:
            problems.append(
                (
                    number,
                    f"line {number}: only one queue statement is allowed and it must come last "
                    f"(the queue statement is on line {queue.line}).",
                )
            )
            continue
        if _INCLUDE.match(s):
            problems.append((number, f"line {number}: include is not allowed; put everything in one file."))
            continue
        if _QUEUE.match(s) and not _ASSIGNMENT.fullmatch(s):
            queue, i = _read_queue(number, s[5:].strip(), lines, i, problems)
            continue
        m = _ASSIGNMENT.fullmatch(s)
        if m:
            assignments.append(Assignment(number, m.group(1), m.group(2).strip()))
        elif _DIRECTIVE.match(s):
            problems.append(
                (
                    number,
                    f"line {number}: if/else blocks, use templates and error/warning directives are not supported.",
                )
            )
        else:
            problems.append((number, f"line {number}: expected 'key = value', found '{clip(s)}'."))
    if queue is None:
        problems.append(
            (len(lines) + 1, "There is no queue statement: end the file with 'queue arguments from ( ... )'.")
        )
    return SubmitFile(assignments, queue, problems)


def _read_queue(
    number: int, rest: str, lines: list[tuple[int, str]], i: int, problems: list[tuple[int, str]]
) -> tuple[QueueStatement, int]:
    """Read `queue [N] [vars] [from|in] ...` and its block; return it and the index after the block."""
    count = 1
    m = _COUNT.match(rest)
    if m:
        count = int(m.group(1)[:9])
        rest = rest[m.end() :]
    queue = QueueStatement(number, count, [])
    if not rest:
        return queue, i
    k = _KEYWORD.search(rest)
    if k is None:
        problems.append((number, f"line {number}: cannot read the queue statement 'queue {clip(rest)}'."))
        return queue, i
    keyword = k.group(1).lower()
    names = [n for n in _SEPARATORS.split(rest[: k.start()]) if n]
    source = rest[k.end() :].strip()
    if keyword == "matching":
        problems.append(
            (number, f"line {number}: 'queue ... matching' is not supported; list the items inline.")
        )
        return queue, i
    bad = [n for n in names if not _VARIABLE.fullmatch(n)]
    if bad:
        problems.append(
            (number, f"line {number}: '{clip(bad[0])}' is not a queue variable name (letters, digits, _).")
        )
    if len(names) > MAX_VARIABLES:
        problems.append(
            (number, f"line {number}: a queue statement takes at most {MAX_VARIABLES} variables.")
        )
    if keyword == "in" and len(names) > 1:
        problems.append(
            (number, f"line {number}: 'queue ... in' takes one variable; use 'from' for several.")
        )
    queue.variables = names or ["Item"]
    if source == "(":
        return queue, _read_block(queue, k.group(1), keyword, lines, i, problems)
    if source.startswith("(") and source.endswith(")"):
        inner = source[1:-1].strip()
        if inner:
            _add_item(queue, keyword, inner, number)
        return queue, i
    if keyword == "in":
        problems.append((number, f"line {number}: put the items of 'queue ... in' between '(' and ')'."))
    else:
        problems.append(
            (
                number,
                f"line {number}: items must be listed inline between 'from (' and ')', not read from a file.",
            )
        )
    return queue, i


def _read_block(
    queue: QueueStatement,
    written: str,
    keyword: str,
    lines: list[tuple[int, str]],
    i: int,
    problems: list[tuple[int, str]],
) -> int:
    for j in range(i, len(lines)):
        number, line = lines[j]
        s = line.strip()
        if s == ")":
            return j + 1
        if s.startswith("#"):
            continue
        if not s:
            problems.append(
                (
                    number,
                    f"line {number}: a blank line inside the queue block (HTCondor refuses it); remove it.",
                )
            )
            continue
        _add_item(queue, keyword, s, number)
    problems.append(
        (
            queue.line,
            f"line {queue.line}: the 'queue ... {written} (' block is never closed by a line holding only ')'.",
        )
    )
    return len(lines)


def _add_item(queue: QueueStatement, keyword: str, text: str, number: int) -> None:
    names = queue.variables
    if keyword == "in":
        for token in _SEPARATORS.split(text):
            if token:
                queue.items.append({names[0]: token})
                queue.item_lines.append(number)
        return
    queue.items.append(split_item(text, names))
    queue.item_lines.append(number)


def split_item(text: str, names: list[str]) -> dict[str, str]:
    """One line of `queue a, b from`: as HTCondor splits it, the last variable takes the rest."""
    values: dict[str, str] = {}
    rest = text.strip()
    for name in names[:-1]:
        token = _TOKEN.match(rest)
        assert token is not None  # the pattern matches the empty string
        values[name] = token.group()
        rest = rest[token.end() + 1 :].lstrip(_WHITE)
    values[names[-1]] = rest.strip()
    return values
