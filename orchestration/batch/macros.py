"""Macro references in submit values, read and expanded by the portal itself.

A value is cut into literal text and `$(name)` references. Only plain
references are understood; every other form HTCondor would act on is a
problem: `$ENV(...)` (the environment), `$$(...)` (the machine a job lands
on), `$INT(...)`, `$CHOICE(...)` and every other `$NAME(...)` function, and
`$(` not followed by `name)`. A `$` followed by anything else is literal text.

References to macros of the file are expanded here; references to the names
HTCondor sets for each job (queue variables, Process, ...) are kept, to be
filled in per job. `render` writes a template back for htcondor2 with every
literal `$` as `$(DOLLAR)`, so HTCondor's own expansion can never build a
`$ENV(` out of a literal `$` and an item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestration.batch.grammar import clip

MAX_VALUE_CHARS = 64 * 1024
MAX_EXPANDED_CHARS = 8 * 1024 * 1024
MAX_DEPTH = 50
_DOLLAR = re.compile(
    r"\$(?:\((?P<ref>[A-Za-z_][A-Za-z0-9_]*)\)|(?P<dd>\$)|(?P<fn>[A-Za-z0-9_]+)\s*\(|(?P<bad>\())"
)


@dataclass(frozen=True)
class Ref:
    """A reference to a name set for each job; `name` is lower case, `written` as HTCondor gets it."""

    name: str
    written: str


Part = str | Ref
Template = tuple[Part, ...]


def scan(value: str, line: int, problems: list[tuple[int, str]]) -> list[Part]:
    """Cut a value into literal text and references (names as written), listing forms not allowed."""
    parts: list[Part] = []
    pos = 0
    for m in _DOLLAR.finditer(value):
        if m.group("ref") is not None:
            if m.start() > pos:
                parts.append(value[pos : m.start()])
            parts.append(Ref(m.group("ref").lower(), m.group("ref")))
            pos = m.end()
            continue
        if m.group("dd") is not None:
            message = "$$() (values taken from the machine a job runs on) is not supported."
        elif m.group("fn") is not None:
            name = m.group("fn")
            if name.upper() == "ENV":
                message = "$ENV() is not allowed; it would read the portal's environment."
            else:
                message = f"${clip(name, 20)}() is not supported; only $(name) references are."
        else:
            message = (
                f"'{clip(value[m.start() : m.start() + 20], 20)}' is not a macro reference; write $(name)."
            )
        problems.append((line, f"line {line}: {message}"))
        pos = m.end()
    if pos < len(value):
        parts.append(value[pos:])
    return parts


class Expander:
    """Expands references to the file's macros, memoised, with limits on size and no cycles."""

    def __init__(
        self,
        definitions: dict[str, tuple[int, list[Part]]],
        per_job: dict[str, str],
        problems: list[tuple[int, str]],
    ) -> None:
        self.definitions = definitions  # lower-case name -> (line, parts)
        self.per_job = per_job  # lower-case name -> name as HTCondor gets it
        self.problems = problems
        self.done: dict[str, Template] = {}
        self.visiting: set[str] = set()
        self.budget = MAX_EXPANDED_CHARS
        self.exhausted = False

    def expand(self, name: str) -> Template:
        if name in self.done:
            return self.done[name]
        if self.exhausted:
            return ()
        line, parts = self.definitions[name]
        self.visiting.add(name)
        out: list[Part] = []
        run: list[str] = []  # literal text not yet in `out`: joined once, so the work stays linear
        size = 0
        for part in parts:
            pieces: Template
            if isinstance(part, str):
                pieces = (part,)
            elif part.name in self.per_job:
                pieces = (Ref(part.name, self.per_job[part.name]),)
            elif part.name == "dollar":
                pieces = ("$",)
            elif part.name in self.visiting:
                self.problems.append((line, f"line {line}: $({part.written}) refers back to itself."))
                pieces = ()
            elif part.name in self.definitions and len(self.visiting) >= MAX_DEPTH:
                self.problems.append(
                    (line, f"line {line}: macros refer to macros more than {MAX_DEPTH} deep.")
                )
                self.exhausted = True
                pieces = ()
            elif part.name in self.definitions:
                pieces = self.expand(part.name)
            else:
                self.problems.append(
                    (
                        line,
                        f"line {line}: $({part.written}) is neither defined in this file nor a queue "
                        "variable, Process or Cluster.",
                    )
                )
                pieces = ()
            for piece in pieces:
                if isinstance(piece, str):
                    run.append(piece)
                    size += len(piece)
                else:
                    if run:
                        out.append("".join(run))
                        run = []
                    out.append(piece)
                    size += 8
            if size > MAX_VALUE_CHARS:
                break
        if run:
            out.append("".join(run))
        self.visiting.discard(name)
        self.budget -= size
        if size > MAX_VALUE_CHARS:
            self.problems.append(
                (line, f"line {line}: the value expands to more than {MAX_VALUE_CHARS // 1024} KiB.")
            )
            out = []
        elif self.budget < 0:
            self.problems.append(
                (line, f"line {line}: the macros expand to more than {MAX_EXPANDED_CHARS >> 20} MiB.")
            )
            self.exhausted = True
            out = []
        result = tuple(out)
        self.done[name] = result
        return result


def literal(template: Template) -> str | None:
    """The value when it has no per-job reference, else None."""
    if any(isinstance(p, Ref) for p in template):
        return None
    return "".join(p for p in template if isinstance(p, str))


def fill(template: Template, values: dict[str, str]) -> str:
    """The value for one job: references replaced by the job's values (lower-case names)."""
    if len(template) < 2:
        if not template:
            return ""
        one = template[0]
        return one if isinstance(one, str) else values[one.name]
    return "".join([p if isinstance(p, str) else values[p.name] for p in template])


def render(template: Template) -> str:
    """The value as htcondor2 gets it: literal `$` escaped, references to per-job names kept."""
    return "".join(p.replace("$", "$(DOLLAR)") if isinstance(p, str) else f"$({p.written})" for p in template)
