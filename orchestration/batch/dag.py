"""DAG files (HTCondor DAGMan's language), read by the portal itself, and the workflow they make.

`read_dag(text)` reads the statements the portal supports:

    JOB name submit-file [DONE]          FINAL name submit-file
    PARENT p1 p2 ... CHILD c1 c2 ...     VARS name|ALL_NODES key="value" ...
    RETRY name N [UNLESS-EXIT code]      SCRIPT PRE|POST name script [arguments]
    PRIORITY name N                      CATEGORY name category    MAXJOBS category N
    ABORT-DAG-ON name exit [RETURN code] DONE name

`SUBDAG EXTERNAL`, `SPLICE` and the other DAGMan statements are refused with a
line-numbered message, as are `DIR` and `NOOP`. Every problem is listed at once;
cycles are named by the nodes of one cycle. Nothing here reads a file, the
environment or the clock, and every step is linear in the size of the DAG.

`check_workflow(text, files)` then vets each node's submit file with exactly the
function that vets a batch submit file (`parse_submit`), with the node's VARS
given as macros, and wraps PRE and POST scripts into the node's own job: they
run where the job runs, in its sandbox, never on the portal's machine.
"""

from __future__ import annotations

import re
import shlex
from collections import deque
from dataclasses import dataclass, field, replace

from orchestration.batch.allowlist import (
    ALLOWED_COMMANDS,
    BUILTINS,
    ITEM_OK,
    MACRO_NAME,
    OTHER_COMMANDS,
    PORTAL_KEYS,
    REFUSED_KEYS,
)
from orchestration.batch.base import BatchValidationError, ParsedSubmit
from orchestration.batch.grammar import clip, read_submit
from orchestration.batch.submit import MAX_PROBLEMS, parse_submit, raise_if_problems
from orchestration.batch.validate import MAX_SCRIPT_BYTES, check_file_name

MAX_DAG_BYTES = 4 * 1024 * 1024
MAX_NODES = 20_000
MAX_EDGES = 200_000
MAX_RETRIES = 100
MAX_VARS_PER_NODE = 50
MAX_VAR_CHARS = 1000
MAX_SCRIPT_ARGS = 50
NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
_INT = re.compile(r"[+-]?\d{1,9}")
_VAR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_SCRIPT_MACRO = re.compile(r"\$([A-Za-z_]+)")
SCRIPT_MACROS = {"JOB", "RETRY", "MAX_RETRIES", "RETURN"}  # $RETURN only in POST scripts
# DAGMan's other script macros: they describe DAGMan's own run on the schedd (its job ids, its counts),
# which a script running inside the node's job cannot be told truthfully, so they are refused by name.
DAGMAN_ONLY_MACROS = {
    "JOBID",
    "PRE_SCRIPT_RETURN",
    "DAG_STATUS",
    "FAILED_COUNT",
    "FUTILE_COUNT",
    "DONE_COUNT",
    "QUEUED_COUNT",
    "NODE_COUNT",
    "JOB_COUNT",
    "JOB_ABORT_COUNT",
    "EXIT_CODES",
    "DAGID",
}
RETRY_VARIABLE = "PORTAL_DAG_RETRY"  # the wrapper's own variable: the attempt's retry number, digits only
RETRY_VAR = "PortalDagRetry"  # the DAGMan VARS name whose value DAGMan sets to $(RETRY) for each attempt
_RETRY_LINE = f'{RETRY_VARIABLE}="${{{RETRY_VARIABLE}:-0}}"'
_RETRY_CHECK = f'case "${RETRY_VARIABLE}" in "" | *[!0-9]*) {RETRY_VARIABLE}=0 ;; esac'
RESERVED_NAMES = {"PARENT", "CHILD", "ALL_NODES"}
WRAPPER_PREFIX = "dagnode-"
_REFUSED = {
    "SUBDAG": "SUBDAG EXTERNAL is not supported: put the inner DAG's nodes into this file.",
    "SPLICE": "SPLICE is not supported: put the spliced DAG's nodes into this file.",
    "INCLUDE": "INCLUDE is not supported: put everything in one DAG file.",
    "CONFIG": "CONFIG is not supported: the portal configures DAGMan itself.",
    "ENV": "ENV is not supported: DAGMan's environment is the portal's, never the user's.",
    "SET_JOB_ATTR": "SET_JOB_ATTR is not supported; set job attributes in the node's submit file.",
    "SUBMIT-DESCRIPTION": "SUBMIT-DESCRIPTION is not supported: give each node a submit file.",
    "NODE_STATUS_FILE": "NODE_STATUS_FILE is not supported: the portal follows node states itself.",
    "JOBSTATE_LOG": "JOBSTATE_LOG is not supported: the portal follows node states itself.",
    "DOT": "DOT is not supported: the workflow page draws the graph.",
    "SAVE_POINT_FILE": "SAVE_POINT_FILE is not supported; use Rescue on the workflow page.",
    "PRE_SKIP": "PRE_SKIP is not supported.",
    "CONNECT": "CONNECT is not supported (it joins splices).",
    "PIN_IN": "PIN_IN is not supported (it joins splices).",
    "PIN_OUT": "PIN_OUT is not supported (it joins splices).",
    "SERVICE": "SERVICE nodes are not supported.",
    "PROVISIONER": "PROVISIONER nodes are not supported.",
    "REJECT": "REJECT is not supported.",
}
SUPPORTED = (
    "JOB, FINAL, PARENT ... CHILD, VARS, RETRY, SCRIPT, PRIORITY, CATEGORY, MAXJOBS, ABORT-DAG-ON, DONE"
)


@dataclass(frozen=True)
class Script:
    """A PRE or POST script: one of the uploaded files, with its arguments ($JOB etc. still in them)."""

    name: str
    args: list[str]
    line: int


@dataclass
class DagNode:
    name: str
    submit_file: str
    line: int
    final: bool = False
    done: bool = False
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    unless_exit: int | None = None
    pre: Script | None = None
    post: Script | None = None
    priority: int = 0
    category: str = ""
    abort_exit: int | None = None
    abort_return: int | None = None


@dataclass
class Dag:
    """A read DAG: nodes in topological order (parents first, the FINAL node last)."""

    nodes: list[DagNode]
    maxjobs: dict[str, int]
    text: str


@dataclass(frozen=True)
class VettedNode:
    node: DagNode
    parsed: ParsedSubmit  # what the node's job runs (its wrapper when it has PRE or POST scripts)
    files: list[str]  # the uploaded files this node's job needs
    wrapper: str  # the wrapper's text, "" when the node has no scripts


@dataclass(frozen=True)
class VettedWorkflow:
    dag: Dag
    nodes: list[VettedNode]


def _int(s: str) -> int | None:
    return int(s) if _INT.fullmatch(s) else None


class _Reader:
    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self.nodes: dict[str, DagNode] = {}
        self.order: list[str] = []
        self.edges: list[tuple[int, list[str], list[str]]] = []
        self.later: list[
            tuple[int, str, list[str]]
        ] = []  # statements about nodes, applied once all are known
        self.maxjobs: dict[str, int] = {}
        self.n_edges = 0
        self.too_many = False
        self.final: str | None = None

    def add(self, line: int, message: str) -> None:
        self.problems.append((line, f"line {line}: {message}"))

    def name_ok(self, line: int, name: str) -> bool:
        if name.upper() in RESERVED_NAMES:
            self.add(line, f"'{name}' is a DAGMan keyword and cannot name a node.")
            return False
        if not NODE_NAME.fullmatch(name):
            self.add(
                line,
                f"'{clip(name, 40)}' is not a node name the portal accepts (letters, digits and _ . + -, "
                "at most 100, not starting with . + -).",
            )
            return False
        return True

    def job(self, line: int, words: list[str], final: bool) -> None:
        keyword = "FINAL" if final else "JOB"
        if len(words) < 3:
            self.add(line, f"{keyword} takes a node name and its submit file: '{keyword} name file.sub'.")
            return
        name, submit, rest = words[1], words[2], [w.upper() for w in words[3:]]
        ok = self.name_ok(line, name)
        problem = check_file_name(submit, "submit file")
        if problem:
            self.add(line, f"node {clip(name, 40)}: {problem} Upload it with the DAG and name it alone.")
            ok = False
        done = False
        for word in rest:
            if word == "DONE" and not final:
                done = True
            elif word == "DIR":
                self.add(line, "DIR is not supported: every node runs from the workflow's own directory.")
                ok = False
                break
            elif word == "NOOP":
                self.add(line, "NOOP is not supported: a node runs its job.")
                ok = False
            else:
                self.add(
                    line, f"unexpected '{clip(word, 20)}' after the submit file of node {clip(name, 40)}."
                )
                ok = False
        if not ok:
            return
        if name in self.nodes:
            self.add(line, f"node {name} is defined twice (first on line {self.nodes[name].line}).")
            return
        if final:
            if self.final is not None:
                self.add(line, f"only one FINAL node is allowed ({self.final} is the FINAL node).")
                return
            self.final = name
        if len(self.nodes) >= MAX_NODES:
            if not self.too_many:
                self.add(line, f"the DAG has more than {MAX_NODES} nodes, the limit.")
            self.too_many = True
            return
        self.nodes[name] = DagNode(name, submit, line, final=final, done=done)
        self.order.append(name)

    def parent_child(self, line: int, words: list[str]) -> None:
        upper = [w.upper() for w in words]
        if "CHILD" not in upper:
            self.add(line, "PARENT needs CHILD: 'PARENT a b CHILD c d'.")
            return
        at = upper.index("CHILD")
        parents, children = words[1:at], words[at + 1 :]
        if not parents or not children:
            self.add(line, "PARENT ... CHILD needs at least one node on each side.")
            return
        self.n_edges += len(parents) * len(children)
        if self.n_edges > MAX_EDGES:
            if self.n_edges - len(parents) * len(children) <= MAX_EDGES:
                self.add(line, f"the DAG has more than {MAX_EDGES} dependencies, the limit.")
            return
        self.edges.append((line, parents, children))

    def maxjobs_line(self, line: int, words: list[str]) -> None:
        n = _int(words[2]) if len(words) == 3 else None
        if n is None or n < 1:
            self.add(line, "MAXJOBS takes a category and a whole number of at least 1: 'MAXJOBS cat 4'.")
            return
        self.maxjobs[words[1]] = n

    def node_of(self, line: int, name: str) -> DagNode | None:
        node = self.nodes.get(name)
        if node is None and not self.too_many:
            self.add(line, f"there is no node {clip(name, 40)} (no JOB line defines it).")
        return node

    def apply(self, line: int, keyword: str, words: list[str]) -> None:
        if keyword == "VARS":
            self.vars(line, words)
        elif keyword == "RETRY":
            self.retry(line, words)
        elif keyword == "SCRIPT":
            self.script(line, words)
        elif keyword == "PRIORITY":
            self.simple_int(line, words, "PRIORITY", "priority")
        elif keyword == "CATEGORY":
            if len(words) != 3 or not MACRO_NAME.fullmatch(words[2]):
                self.add(line, "CATEGORY takes a node and a category name (letters, digits, _).")
                return
            if (node := self.node_of(line, words[1])) is not None:
                node.category = words[2]
        elif keyword == "ABORT-DAG-ON":
            self.abort(line, words)
        elif keyword == "DONE":
            if len(words) != 2:
                self.add(line, "DONE takes one node name.")
            elif (node := self.node_of(line, words[1])) is not None:
                if node.final:
                    self.add(line, f"the FINAL node {node.name} cannot be marked DONE.")
                node.done = True

    def vars(self, line: int, words: list[str]) -> None:
        # words: ["VARS", node, rest-of-line]
        if len(words) < 3:
            self.add(line, 'VARS takes a node and key="value" pairs.')
            return
        targets: list[DagNode]
        if words[1].upper() == "ALL_NODES":
            targets = [self.nodes[n] for n in self.order]
        else:
            node = self.node_of(line, words[1])
            if node is None:
                return
            targets = [node]
        pairs = _read_vars(line, words[2], self)
        for node in targets:
            for key, value in pairs:
                node.vars[key] = value
            if len(node.vars) > MAX_VARS_PER_NODE:
                self.add(line, f"node {node.name} has more than {MAX_VARS_PER_NODE} VARS.")
                node.vars = {}

    def retry(self, line: int, words: list[str]) -> None:
        n = _int(words[2]) if len(words) >= 3 else None
        unless: int | None = None
        ok = n is not None and 0 <= n <= MAX_RETRIES
        if len(words) > 3:
            if len(words) == 5 and words[3].upper() == "UNLESS-EXIT" and _int(words[4]) is not None:
                unless = _int(words[4])
            else:
                ok = False
        if not ok:
            self.add(
                line, f"RETRY takes a node, a number from 0 to {MAX_RETRIES} and optionally UNLESS-EXIT code."
            )
            return
        if (node := self.node_of(line, words[1])) is not None:
            node.retries, node.unless_exit = int(n or 0), unless

    def script(self, line: int, words: list[str]) -> None:
        if len(words) >= 2 and words[1].upper() == "DEFER":
            self.add(line, "SCRIPT DEFER is not supported.")
            return
        if len(words) >= 2 and words[1].upper() == "HOLD":
            self.add(line, "SCRIPT HOLD is not supported.")
            return
        if len(words) < 4 or words[1].upper() not in ("PRE", "POST"):
            self.add(line, "SCRIPT takes PRE or POST, a node and a script: 'SCRIPT PRE a check.sh $JOB'.")
            return
        kind, name, script, args = words[1].upper(), words[2], words[3], words[4:]
        ok = True
        if "/" in script or "\\" in script or script.startswith("~"):
            self.add(
                line,
                f"SCRIPT {kind} {clip(name, 40)} names '{clip(script, 40)}', a path: scripts run inside the "
                "node's job, so name one of the files you upload with the DAG (no directories), never a "
                "program of the portal's machine.",
            )
            ok = False
        elif problem := check_file_name(script, "script"):
            self.add(line, problem)
            ok = False
        if len(args) > MAX_SCRIPT_ARGS:
            self.add(line, f"a SCRIPT takes at most {MAX_SCRIPT_ARGS} arguments.")
            ok = False
        allowed = "$JOB, $RETRY, $MAX_RETRIES" + (", $RETURN" if kind == "POST" else "")
        for arg in args:
            for m in _SCRIPT_MACRO.finditer(arg):
                macro = m.group(1)
                if macro == "RETURN" and kind == "PRE":
                    self.add(
                        line, f"$RETURN is the node job's exit code: only a POST script gets it ({allowed})."
                    )
                    ok = False
                elif macro in DAGMAN_ONLY_MACROS:
                    self.add(
                        line,
                        f"${macro} is not supported: scripts run inside the node's job, where the portal fills "
                        f"in {allowed}.",
                    )
                    ok = False
                elif macro not in SCRIPT_MACROS:
                    self.add(
                        line, f"${clip(macro, 20)} is not a script macro the portal fills in ({allowed})."
                    )
                    ok = False
            plain = _SCRIPT_MACRO.sub("", arg)
            if "$" in plain or not ITEM_OK.fullmatch(plain) or "\t" in plain:
                bad = sorted({c for c in plain if c == "$" or not ITEM_OK.fullmatch(c) or c == "\t"})
                self.add(
                    line,
                    f"script arguments may not contain {', '.join(repr(c) for c in bad[:5])} "
                    "(letters, digits and . _ + , = : @ / % ~ - only).",
                )
                ok = False
        if not ok:
            return
        node = self.node_of(line, name)
        if node is None:
            return
        if (node.pre if kind == "PRE" else node.post) is not None:
            self.add(line, f"node {name} already has a {kind} script.")
            return
        if kind == "PRE":
            node.pre = Script(script, args, line)
        else:
            node.post = Script(script, args, line)

    def simple_int(self, line: int, words: list[str], keyword: str, attr: str) -> None:
        n = _int(words[2]) if len(words) == 3 else None
        if n is None:
            self.add(line, f"{keyword} takes a node and a whole number.")
            return
        if (node := self.node_of(line, words[1])) is not None:
            setattr(node, attr, n)

    def abort(self, line: int, words: list[str]) -> None:
        exit_value = _int(words[2]) if len(words) >= 3 else None
        ret: int | None = None
        ok = exit_value is not None
        if len(words) > 3:
            if len(words) == 5 and words[3].upper() == "RETURN" and _int(words[4]) is not None:
                ret = _int(words[4])
            else:
                ok = False
        if not ok:
            self.add(line, "ABORT-DAG-ON takes a node, an exit value and optionally RETURN value.")
            return
        if (node := self.node_of(line, words[1])) is not None:
            node.abort_exit, node.abort_return = exit_value, ret


def _read_vars(line: int, rest: str, reader: _Reader) -> list[tuple[str, str]]:
    """key="value" pairs; values are vetted as strictly as queue items, and never hold a macro."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    rest = rest.rstrip()
    while pos < len(rest):
        m = _VAR.match(rest, pos)
        if m is None:
            reader.add(line, f"cannot read VARS from '{clip(rest[pos:].strip(), 40)}'; write key=\"value\".")
            return []
        pos = m.end()
        key, raw = m.group(1), m.group(2)
        value = re.sub(r"\\(.)", r"\1", raw)
        low = key.lower()
        if (
            low in ALLOWED_COMMANDS
            or low in REFUSED_KEYS
            or low in PORTAL_KEYS
            or low in OTHER_COMMANDS
            or low in BUILTINS
            or low.startswith("queue")
            or low in ("dollar", "job", "retry", "dagnodename", "dag_status", "failed_count")
            or low.startswith("portal")  # the portal's own names (queue variables, the retry number)
            or low in ("include", "if", "elif", "else", "endif", "error", "warning", "use")
        ):
            reader.add(
                line,
                f"VARS {key} would set a submit command or a name HTCondor sets itself; choose another name.",
            )
            continue
        if len(value) > MAX_VAR_CHARS:
            reader.add(line, f"the value of VARS {key} is longer than {MAX_VAR_CHARS} characters.")
            continue
        if "$" in value:
            reader.add(
                line,
                f"the value of VARS {key} contains '$': no macros, $ENV or $-functions in VARS values.",
            )
            continue
        if not ITEM_OK.fullmatch(value) or "\t" in value:
            bad = sorted({c for c in value if not ITEM_OK.fullmatch(c) or c == "\t"})
            shown = ", ".join(f"U+{ord(c):04X}" if not c.isprintable() else repr(c) for c in bad[:5])
            reader.add(line, f"the value of VARS {key} may not contain {shown}.")
            continue
        pairs.append((key, value))
    return pairs


_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_NODE_STATEMENTS = {"VARS", "RETRY", "SCRIPT", "PRIORITY", "CATEGORY", "ABORT-DAG-ON", "DONE"}


def read_dag(text: str) -> Dag:
    """Read a DAG file; raise BatchValidationError with every problem (line-numbered)."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_DAG_BYTES:
        raise BatchValidationError([f"The DAG file is larger than {MAX_DAG_BYTES // (1024 * 1024)} MiB."])
    r = _Reader()
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        bad = _CONTROL.search(raw)
        if bad:
            r.add(number, f"contains the control or invisible character U+{ord(bad.group()):04X}.")
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            r.add(number, "DAG files have no continuation lines; remove the trailing backslash.")
            continue
        keyword = s.split(None, 1)[0].upper()
        if keyword == "VARS":
            parts = s.split(None, 2)
            words = parts if len(parts) == 3 else parts
        else:
            words = s.split()
        if keyword in ("JOB", "FINAL"):
            r.job(number, words, keyword == "FINAL")
        elif keyword == "PARENT":
            r.parent_child(number, words)
        elif keyword == "MAXJOBS":
            r.maxjobs_line(number, words)
        elif keyword in _NODE_STATEMENTS:
            r.later.append((number, keyword, words))
        elif keyword in _REFUSED:
            r.add(number, _REFUSED[keyword])
        else:
            r.add(number, f"'{clip(words[0], 30)}' is not a DAG statement the portal accepts ({SUPPORTED}).")
    for number, keyword, words in r.later:
        r.apply(number, keyword, words)
    _link(r)
    if not r.nodes and not r.too_many:
        r.problems.append((0, "The DAG has no nodes: add 'JOB name file.sub' lines."))
    ordered = _order(r)
    raise_if_problems(r.problems)
    for cat in r.maxjobs:
        if not any(n.category == cat for n in r.nodes.values()):
            pass  # DAGMan accepts a limit on an unused category; so does the portal
    return Dag(ordered, r.maxjobs, text)


def _link(r: _Reader) -> None:
    seen: set[tuple[str, str]] = set()
    for line, parents, children in r.edges:
        ps = [n for name in parents if (n := r.node_of(line, name)) is not None]
        cs = [n for name in children if (n := r.node_of(line, name)) is not None]
        for n in (*ps, *cs):
            if n.final:
                r.add(
                    line, f"the FINAL node {n.name} cannot have parents or children: it runs last by itself."
                )
        if any(n.final for n in (*ps, *cs)):
            continue
        for p in ps:
            for c in cs:
                if p is c:
                    r.add(line, f"node {p.name} cannot be its own parent.")
                    continue
                if (p.name, c.name) in seen:
                    continue
                seen.add((p.name, c.name))
                p.children.append(c.name)
                c.parents.append(p.name)


def _order(r: _Reader) -> list[DagNode]:
    """Kahn's algorithm; when nodes are left over, name the nodes of one cycle among them."""
    nodes = r.nodes
    waiting = {name: len(node.parents) for name, node in nodes.items()}
    ready = deque(name for name in r.order if waiting[name] == 0 and not nodes[name].final)
    out: list[DagNode] = []
    while ready:
        name = ready.popleft()
        out.append(nodes[name])
        for child in nodes[name].children:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    left = {name for name, n in waiting.items() if n > 0}
    if left:
        cycle = _one_cycle(nodes, left)
        shown = " -> ".join([*cycle[:20], cycle[0]]) if len(cycle) <= 20 else " -> ".join(cycle[:20]) + " …"
        line = min(nodes[n].line for n in cycle)
        r.problems.append(
            (
                line,
                f"line {line}: the DAG has a cycle ({shown}); a workflow must be acyclic. {len(left)} node(s) are on "
                "or after a cycle.",
            )
        )
    if r.final is not None and r.final in nodes:
        out.append(nodes[r.final])
    return out


def _one_cycle(nodes: dict[str, DagNode], left: set[str]) -> list[str]:
    """Walk parents inside the left-over set (every node there has a parent there) until one repeats."""
    start = min(left, key=lambda n: nodes[n].line)
    path: list[str] = []
    index: dict[str, int] = {}
    name = start
    while name not in index:
        index[name] = len(path)
        path.append(name)
        name = next(p for p in nodes[name].parents if p in left)
    cycle = path[index[name] :]
    cycle.reverse()  # parent -> child order, from the node defined first
    first = min(range(len(cycle)), key=lambda i: nodes[cycle[i]].line)
    return cycle[first:] + cycle[:first]


# ---------------------------------------------------------------------------- nodes' submit files


def _with_vars(text: str, queue_line: int, used: list[tuple[str, str]]) -> str:
    """The submit file with the node's VARS as macro lines just before its queue statement (as
    condor_submit -append puts them), so they override the file's own definitions as in DAGMan."""
    lines = text.split("\n")
    at = max(queue_line - 1, 0) if queue_line else len(lines)
    return "\n".join([*lines[:at], *(f"{k} = {v}" for k, v in used), *lines[at:]])


_LINE_REF = re.compile(r"\bline (\d+)")


def _relabel(message: str, at: int, k: int, node: str) -> str:
    """Line numbers of a node's submit file with its VARS lines taken out again."""

    def fix(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n < at:
            return m.group(0)
        if n < at + k:
            return f"VARS of node {node} (line {n - at + 1} of them)"
        return f"line {n - k}"

    return _LINE_REF.sub(fix, message) if k else message


def _referenced(text: str) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text)}


def script_argv(script: Script, node: DagNode, post: bool) -> list[str]:
    """The script's arguments as shell words, each one word, macros filled in.

    $JOB and $MAX_RETRIES become quoted literals. $RETRY is the wrapper's own variable, which holds
    only digits: the portal writes the number into the wrapper for each attempt on its own workers
    (`with_retry`), and DAGMan's $(RETRY) arrives through the job's environment on a pool. The
    $RETURN of a POST script is the job's exit code. Nothing reaches a shell's parser as code.
    """
    out = []
    for arg in script.args:
        parts = re.split(r"(\$[A-Za-z_]+)", arg)
        words: list[str] = []
        for part in parts:
            if part == "$JOB":
                words.append(shlex.quote(node.name))
            elif part == "$MAX_RETRIES":
                words.append(str(node.retries))
            elif part == "$RETRY":
                words.append(f'"${RETRY_VARIABLE}"')
            elif part == "$RETURN" and post:
                words.append('"$rc"')
            elif part:
                words.append(shlex.quote(part))
        out.append("".join(words))
    return out


def wrapper_text(node: DagNode, executable: str) -> str:
    """A node's job with PRE and POST scripts: the scripts run before and after the executable, in the
    same job and sandbox. Every word is a quoted literal of vetted characters; the job's own arguments
    arrive as "$@", never through the shell's parser."""
    lines = [
        "#!/bin/sh",
        f"# Node {node.name}, written by the portal: PRE script, the node's job, POST script, as DAGMan",
        "# runs them; here they run in the job's own sandbox. $1... are the job's own arguments.",
        _RETRY_LINE,
        _RETRY_CHECK,
    ]
    names = [executable] + [s.name for s in (node.pre, node.post) if s is not None]
    lines.append("chmod u+x " + " ".join(shlex.quote("./" + n) for n in dict.fromkeys(names)))
    if node.pre is not None:
        args = " ".join(script_argv(node.pre, node, False))
        lines += [
            f"./{shlex.quote(node.pre.name)} {args}".rstrip(),
            "pre=$?",
            'if [ "$pre" -ne 0 ]; then echo "PRE script failed with exit code $pre" >&2; exit "$pre"; fi',
        ]
    lines += [f'./{shlex.quote(executable)} "$@"', "rc=$?"]
    if node.post is not None:
        args = " ".join(script_argv(node.post, node, True))
        lines += [f"./{shlex.quote(node.post.name)} {args}".rstrip(), "exit $?"]
    else:
        lines.append('exit "$rc"')
    return "\n".join(lines) + "\n"


def with_retry(wrapper: str, retry: int) -> str:
    """The wrapper for one attempt on the portal's workers: the retry number written in as a literal."""
    return wrapper.replace(_RETRY_LINE, f"{RETRY_VARIABLE}={int(retry)}", 1)


def uses_retry(wrapper: str) -> bool:
    """Whether a script of the wrapper is given $RETRY (the number must then reach the job)."""
    return f'"${RETRY_VARIABLE}"' in wrapper.split(_RETRY_CHECK, 1)[-1]


def wrapper_name(node: DagNode) -> str:
    return f"{WRAPPER_PREFIX}{node.name}.sh"


def check_workflow(text: str, files: dict[str, str], max_problems: int = MAX_PROBLEMS) -> VettedWorkflow:
    """Read the DAG and vet every node's submit file as a batch submit file is vetted; raise with all problems.

    `files` holds the uploaded submit files and scripts by name. Each node's submit file is read by
    `parse_submit` with the node's VARS as macros (`_parse_node`). As a fast path that gives the same
    verdict, nodes sharing a submit file are vetted in one `parse_submit` call with their VARS as
    queue items (`_parse_group`); a group that fails is vetted node by node, for exact messages.
    """
    dag = read_dag(text)
    problems: list[tuple[int, str]] = []
    # A script is stored with the workflow (PostgreSQL text holds no NUL) and run: text files only.
    problems += [
        (0, f"{name} contains NUL bytes; upload a text file.")
        for name in sorted(files)
        if "\x00" in files[name]
    ]
    problems += [
        (0, f"{name} is larger than {MAX_SCRIPT_BYTES // 1024} KiB.")
        for name in sorted(files)
        if len(files[name].encode()) > MAX_SCRIPT_BYTES  # a rescue's edited scripts too
    ]
    shapes: dict[str, tuple[int, int, bool, set[str]]] = {}
    groups: dict[tuple[str, tuple[str, ...]], list[DagNode]] = {}
    for node in dag.nodes:
        submit = files.get(node.submit_file)
        if submit is None:
            problems.append(
                (
                    node.line,
                    f"line {node.line}: node {node.name}: its submit file {node.submit_file} was not uploaded.",
                )
            )
            continue
        for script in (node.pre, node.post):
            if script is not None and script.name not in files:
                problems.append(
                    (script.line, f"line {script.line}: the script {script.name} was not uploaded.")
                )
        if node.submit_file not in shapes:
            read = read_submit(submit.replace("\r\n", "\n"))
            q = read.queue
            plain = q is not None and not q.variables and not read.problems
            shapes[node.submit_file] = (q.line if q else 0, q.count if q else 1, plain, _referenced(submit))
        used = tuple(sorted(k for k in node.vars if k.lower() in shapes[node.submit_file][3]))
        groups.setdefault((node.submit_file, used), []).append(node)
    parsed: dict[str, ParsedSubmit] = {}
    for (name, used), members in groups.items():
        if len(problems) > max_problems:
            break
        submit = files[name].replace("\r\n", "\n")
        at, count, plain, _ = shapes[name]
        group = _parse_group(submit, at, count, used, members) if plain and len(members) > 1 else None
        if group is not None:
            parsed.update(group)
            continue
        reported = 0
        for node in members:
            pairs = [(k, node.vars[k]) for k in used]
            try:
                parsed[node.name] = parse_submit(_with_vars(submit, at, pairs))
            except BatchValidationError as exc:
                reported += 1
                if reported <= 3 and len(problems) <= max_problems:
                    problems += [
                        (
                            node.line,
                            f"line {node.line}: node {node.name} ({name}): {_relabel(p, at, len(pairs), node.name)}",
                        )
                        for p in exc.problems
                    ]
        if reported > 3:
            problems.append((members[0].line, f"… and {reported - 3} more nodes whose {name} has problems."))
    raise_if_problems(problems)
    vetted = [_vetted(node, parsed[node.name], files, problems) for node in dag.nodes]
    raise_if_problems(problems)
    return VettedWorkflow(dag, vetted)


def _parse_node(submit: str, at: int, pairs: list[tuple[str, str]]) -> ParsedSubmit:
    return parse_submit(_with_vars(submit, at, pairs))


def _parse_group(
    submit: str, at: int, count: int, used: tuple[str, ...], members: list[DagNode]
) -> dict[str, ParsedSubmit] | None:
    """Nodes sharing a plain `queue [N]` submit file, vetted in one call with their VARS as the items of
    `queue N v1, v2 from (...)`; None when the values cannot be items unchanged, or on any problem."""
    lines = submit.split("\n")
    if not used or not at or not re.fullmatch(r"\s*queue(\s+\d+)?\s*", lines[at - 1], re.IGNORECASE):
        return None
    rows: list[str] = []
    for node in members:
        values = [node.vars[k] for k in used]
        if any(not v or v != v.strip() for v in values):
            return None
        if any(" " in v or "," in v for v in values[:-1]):
            return None
        rows.append("  " + " ".join(values))
    head = f"queue {count} {', '.join(used)} from ("
    text = "\n".join([*lines[: at - 1], head, *rows, ")", *lines[at:]])
    try:
        whole = parse_submit(text)
    except BatchValidationError:
        return None
    out: dict[str, ParsedSubmit] = {}
    for i, node in enumerate(members):
        jobs = whole.jobs[i * count : (i + 1) * count]
        jobs = [replace(job, proc=job.proc - i * count) for job in jobs]
        out[node.name] = replace(whole, jobs=jobs, text=submit)
    return out


def _vetted(
    node: DagNode, parsed: ParsedSubmit, files: dict[str, str], problems: list[tuple[int, str]]
) -> VettedNode:
    needed = [parsed.executable, *parsed.transfer_input_files]
    for name in needed:
        if name not in files and name != "cadcproxy.pem":
            problems.append(
                (
                    node.line,
                    f"line {node.line}: node {node.name}: {name} is named in {node.submit_file} but was not uploaded.",
                )
            )
    if node.pre is None and node.post is None:
        return VettedNode(node, parsed, [n for n in dict.fromkeys(needed) if n in files], "")
    wrapper = wrapper_name(node)
    inputs = list(
        dict.fromkeys(
            [*parsed.transfer_input_files, parsed.executable] + [s.name for s in (node.pre, node.post) if s]
        )
    )
    body = dict(parsed.body)
    body["executable"] = wrapper
    body["transfer_input_files"] = ", ".join(inputs)
    wrapped = replace(parsed, executable=wrapper, transfer_input_files=inputs, body=body)
    return VettedNode(node, wrapped, [n for n in inputs if n in files], wrapper_text(node, parsed.executable))


# ---------------------------------------------------------------------------- the form's DAG


@dataclass(frozen=True)
class StageSpec:
    """One job of the form: a script, with the item as its argument (per-item steps)."""

    name: str  # node name prefix, e.g. "step1"
    script: str  # an uploaded file name


def form_dag(
    items: list[str], steps: list[StageSpec], before: StageSpec | None, after: StageSpec | None
) -> tuple[str, dict[str, str]]:
    """The DAG file and submit files the stages form makes: before -> (step1 -> step2 ...) per item -> after."""
    lines = ["# written by the portal from the stages form"]
    submits: dict[str, str] = {}

    def submit_for(stage: StageSpec, per_item: bool) -> str:
        name = f"{stage.name}.sub"
        arg = "$(item)" if per_item else ""
        tag = "$(item)" if per_item else "all"
        submits[name] = (
            f"executable = {stage.script}\n"
            + (f"arguments = {arg}\n" if arg else "")
            + f"output = {stage.name}-{tag}.out\nerror = {stage.name}-{tag}.err\nlog = {stage.name}-{tag}.log\n"
            "queue\n"
        )
        return name

    if before is not None:
        lines.append(f"JOB {before.name} {submit_for(before, False)}")
    subs = [submit_for(s, True) for s in steps]
    for item in items:
        for step, sub in zip(steps, subs, strict=True):
            lines.append(f"JOB {step.name}_{item} {sub}")
            lines.append(f'VARS {step.name}_{item} item="{item}"')
    if after is not None:
        lines.append(f"JOB {after.name} {submit_for(after, False)}")
    for item in items:
        chain = [f"{s.name}_{item}" for s in steps]
        if before is not None and chain:
            lines.append(f"PARENT {before.name} CHILD {chain[0]}")
        for a, b in zip(chain, chain[1:], strict=False):
            lines.append(f"PARENT {a} CHILD {b}")
        if after is not None and chain:
            lines.append(f"PARENT {chain[-1]} CHILD {after.name}")
    if before is not None and after is not None and not steps:
        lines.append(f"PARENT {before.name} CHILD {after.name}")
    return "\n".join(lines) + "\n", submits
