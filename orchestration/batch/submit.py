"""Build submit descriptions from the batch form, and parse uploaded ones with htcondor2.Submit.

Uploaded files are pre-scanned line by line before htcondor2 sees them: the
bindings run `include command :` lines and expand `$ENV()` in the portal's
process, and their errors often lack line numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import htcondor2

from orchestration.batch.base import (
    BatchSpec,
    BatchValidationError,
    ParsedJob,
    ParsedSubmit,
    PoolProfile,
    WorkerTarget,
)
from orchestration.batch.validate import check_file_name, split_arguments

DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 2048
DEFAULT_DISK_MB = 4096
MAX_JOBS = 20_000
MAX_SUBMIT_BYTES = 2 * 1024 * 1024
PROXY_FILE_NAME = "cadcproxy.pem"
MAX_SHARED_LISTED = 5

# Keys the portal sets itself, as canfar_submit does (lower case; "+X" is stored as "my.x").
PORTAL_KEYS = {
    "requirements": "the portal sets Requirements from the snapshot and flavor you choose",
    "universe": "the portal runs every job in the vanilla universe",
    "my.vmtype": "the portal sets +VMType from the snapshot you choose",
    "my.vmami": "the portal sets +VMAMI from the snapshot you choose",
    "my.vminstancetype": "the portal sets +VMInstanceType from the flavor you choose",
    "my.vmamiconfig": "the portal configures the worker VMs",
    "my.vmkeepalive": "the portal configures the worker VMs",
    "my.precmd": "the portal installs your proxy certificate with its own +PreCmd",
    "my.prearguments": "the portal installs your proxy certificate with its own +PreCmd",
    "my.postcmd": "the portal does not run commands around your job",
    "my.postarguments": "the portal does not run commands around your job",
    "my.portalsubmitkey": "the portal uses it to track your submission",
    "x509userproxy": "the portal sends your proxy certificate with the jobs",
    "use_x509userproxy": "the portal sends your proxy certificate with the jobs",
}
# Keys that would act on the portal's own machine when it submits with spooling.
UNSAFE_KEYS = {
    "getenv": "it would copy the portal's environment, with its secrets, into your jobs",
    "initialdir": "the portal chooses the directory your jobs are submitted from",
    "iwd": "the portal chooses the directory your jobs are submitted from",
    "transfer_output_remaps": "outputs are always returned next to the job's logs",
    "output_destination": "outputs are always returned next to the job's logs",
    "accounting_group": "the pool sets accounting groups",
    "accounting_group_user": "the pool sets accounting groups",
    "my.owner": "the pool sets the job's owner",
    "copy_to_spool": "the portal always spools",
    "log_xml": "the portal reads classic event logs",
    "dagman_log": "DAGMan is not supported",
    "concurrency_limits": "the pool sets concurrency limits",
}
# Keys naming files on the submitting machine: only plain names of uploaded files.
FILE_KEYS = [
    "executable",
    "cmd",
    "input",
    "in",
    "stdin",
    "output",
    "out",
    "stdout",
    "error",
    "err",
    "stderr",
    "log",
    "userlog",
    "transfer_input_files",
    "transfer_input",
    "transfer_output_files",
    "jar_files",
]
_FILE_WORDS = ("file", "dir", "log", "path")
_KEY = re.compile(r"([+]?[A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)", re.DOTALL)
_DIRECTIVE = re.compile(r"((if|elif)\s|(else|endif)\s*$|(error|warning)\s*:)", re.IGNORECASE)


@dataclass
class _Scan:
    problems: list[str]
    key_lines: dict[str, int]
    queue_count: int


def _norm_key(key: str) -> str:
    key = key.strip().lower()
    return "my." + key[1:] if key.startswith("+") else key


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with the number of its first line."""
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


def _prescan(text: str) -> _Scan:
    problems: list[str] = []
    key_lines: dict[str, int] = {}
    queue_line = 0
    queue_count = 1
    lines = _logical_lines(text)
    i = 0
    while i < len(lines):
        number, line = lines[i]
        i += 1
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if queue_line:
            problems.append(
                f"line {number}: only one queue statement is allowed and it must come last "
                f"(the queue statement is on line {queue_line})."
            )
            continue
        if re.search(r"\$ENV\s*\(", s, re.IGNORECASE):
            problems.append(f"line {number}: $ENV() is not allowed; it would read the portal's environment.")
            continue
        lowered = s.lower()
        if re.match(r"include\b", lowered):
            problems.append(f"line {number}: include is not allowed; put everything in one file.")
            continue
        if _DIRECTIVE.match(s) and not _KEY.fullmatch(s):
            problems.append(f"line {number}: if/else blocks and error/warning directives are not supported.")
            continue
        if re.match(r"queue\b", lowered):
            queue_line = number
            count, block_end = _scan_queue(s[5:].strip(), number, lines, i, problems)
            queue_count = count
            i = block_end
            continue
        m = _KEY.fullmatch(s)
        if not m:
            problems.append(f"line {number}: expected 'key = value', found '{_clip(s)}'.")
            continue
        key_lines.setdefault(_norm_key(m.group(1)), number)
    if not queue_line and not problems:
        problems.append("There is no queue statement: end the file with 'queue arguments from ( ... )'.")
    return _Scan(problems, key_lines, queue_count)


def _scan_queue(
    rest: str, number: int, lines: list[tuple[int, str]], i: int, problems: list[str]
) -> tuple[int, int]:
    """Check a queue statement; return (count, index of the line after its block)."""
    m = re.match(r"(\d+)?\s*(.*)", rest, re.DOTALL)
    assert m is not None  # the pattern matches any string
    count = int(m.group(1)) if m.group(1) else 1
    tail = m.group(2).strip()
    if not tail:
        return count, i
    if re.search(r"\bmatching\b", tail, re.IGNORECASE):
        problems.append(f"line {number}: 'queue ... matching' is not supported; list the items inline.")
        return count, i
    m = re.match(
        r"([A-Za-z_][A-Za-z0-9_.]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_.]*)*)\s+(from|in)\b\s*(.*)",
        tail,
        re.IGNORECASE,
    )
    if not m:
        problems.append(f"line {number}: cannot read the queue statement '{_clip(tail)}'.")
        return count, i
    source = m.group(3).strip()
    if source == "(":
        for j in range(i, len(lines)):
            if lines[j][1].strip() == ")":
                return count, j + 1
        problems.append(
            f"line {number}: the 'queue ... {m.group(2)} (' block is never closed by a line holding only ')'."
        )
        return count, len(lines)
    if source.startswith("(") and source.endswith(")"):
        if m.group(2).lower() == "from":
            problems.append(
                f"line {number}: put each item on its own line between 'from (' and ')'; "
                "on one line HTCondor reads them all as a single item."
            )
        return count, i
    problems.append(
        f"line {number}: items must be listed inline between 'from (' and ')', not read from a file."
    )
    return count, i


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def parse_submit(text: str, script_name: str | None = None, max_jobs: int = MAX_JOBS) -> ParsedSubmit:
    """Parse and check a user's submit description; raise BatchValidationError with every problem."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_SUBMIT_BYTES:
        raise BatchValidationError([f"The submit file is larger than {MAX_SUBMIT_BYTES // 1024} KiB."])
    text = text.replace("\r\n", "\n")
    scan = _prescan(text)
    if scan.problems:
        raise BatchValidationError(scan.problems)
    try:
        sub = htcondor2.Submit(text)
        body = {k: v for k, v in sub.items()}
        qargs = sub.getQArgs() or ""
        items = list(sub.itemdata() or []) if qargs.strip() else []
    except (ValueError, TypeError, RuntimeError, htcondor2.HTCondorException) as exc:
        raise BatchValidationError([f"HTCondor cannot read the submit file: {exc}"]) from exc
    problems = _check_keys(body, scan.key_lines)
    executable = body.get("executable", body.get("cmd", "")).strip()
    if not executable:
        problems.append("There is no 'executable = ...' line naming your script.")
    elif (problem := check_file_name(executable, "executable")) is not None:
        if not problems:  # a path was already reported by _check_keys
            problems.append(problem)
    elif script_name is not None and executable != script_name:
        problems.append(f"executable is '{executable}' but the script you gave is '{script_name}'.")
    if problems:
        raise BatchValidationError(problems)
    if not items:
        items = [{}]
    n_jobs = scan.queue_count * len(items)
    if n_jobs == 0:
        raise BatchValidationError(["The queue statement makes no jobs."])
    if n_jobs > max_jobs:
        raise BatchValidationError([f"The submit file makes {n_jobs} jobs; the limit is {max_jobs}."])
    queue_vars = list(items[0].keys())
    jobs = _expand_jobs(body, items, scan.queue_count)
    first = htcondor2.Submit({**body, **items[0], "Process": "0", "Cluster": "1"})
    cpus = _parse_amount(_expand(first, "request_cpus"), "request_cpus", 1, problems)
    memory = _parse_amount(_expand(first, "request_memory"), "request_memory", 1, problems)
    disk = _parse_amount(_expand(first, "request_disk"), "request_disk", 1 / 1024, problems)
    inputs = [f.strip() for f in _expand(first, "transfer_input_files").split(",") if f.strip()]
    for name in inputs:
        problem = check_file_name(name, "transfer_input_files entry")
        if problem:
            problems.append(problem)
    if problems:
        raise BatchValidationError(problems)
    return ParsedSubmit(
        text=text,
        executable=executable,
        jobs=jobs,
        request_cpus=int(cpus or DEFAULT_CPUS),
        request_memory_mb=int(memory or DEFAULT_MEMORY_MB),
        request_disk_mb=int(disk or DEFAULT_DISK_MB),
        transfer_input_files=inputs,
        body=body,
        queue_vars=queue_vars,
    )


def _check_keys(body: dict[str, str], key_lines: dict[str, int]) -> list[str]:
    problems = []
    for key, value in body.items():
        norm = _norm_key(key)
        where = f"line {key_lines[norm]}: " if norm in key_lines else ""
        shown = "+" + key[3:] if norm.startswith("my.") else key
        if norm in PORTAL_KEYS:
            problems.append(f"{where}{shown} is not allowed: {PORTAL_KEYS[norm]}.")
        elif norm in UNSAFE_KEYS:
            problems.append(f"{where}{shown} is not allowed: {UNSAFE_KEYS[norm]}.")
        elif (norm in FILE_KEYS or any(w in norm for w in _FILE_WORDS)) and (
            "/" in value or value.strip().startswith("~")
        ):
            problems.append(f"{where}{shown} must name files without directories (found '{_clip(value)}').")
    return problems


def _expand(sub: htcondor2.Submit, key: str) -> str:
    try:
        return sub.expand(key) if key in sub else ""
    except KeyError:
        return ""


def _expand_jobs(body: dict[str, str], items: list[dict[str, str]], count: int) -> list[ParsedJob]:
    jobs: list[ParsedJob] = []
    problems: list[str] = []
    writers: dict[tuple[str, str], list[int]] = {}  # (key, file name) -> procs
    proc = 0
    for item in items:
        for _ in range(count):
            sub = htcondor2.Submit({**body, **item, "Process": str(proc), "Cluster": "1"})
            names = {k: _expand(sub, k) for k in ("output", "error", "log")}
            try:
                argv = split_arguments(_expand(sub, "arguments"))
            except BatchValidationError as exc:
                problems.extend(f"job {proc}: {p}" for p in exc.problems)
                argv = []
            for key, name in names.items():
                problem = check_file_name(name, key) if name else None
                if problem and len(problems) < 20:
                    problems.append(f"job {proc}: {problem}")
                if key != "log" and name:  # jobs may share one event log, as in HTCondor
                    writers.setdefault((key, name), []).append(proc)
            outputs = _output_files(sub, names, proc, problems)
            for name in outputs:
                writers.setdefault(("transfer_output_files", name), []).append(proc)
            raw_item = " ".join(item.values())
            jobs.append(
                ParsedJob(
                    proc, raw_item, argv, names["output"], names["error"], names["log"], dict(item), outputs
                )
            )
            proc += 1
    shared = [(key, name, procs) for (key, name), procs in writers.items() if len(procs) > 1]
    for key, name, procs in shared[:MAX_SHARED_LISTED]:
        listed = ", ".join(str(p) for p in procs[:10]) + (
            f" and {len(procs) - 10} more" if len(procs) > 10 else ""
        )
        problems.append(
            f"jobs {listed} all write their {key} to '{name}'; put $(arguments) or $(Process) in the pattern."
        )
    if problems:
        raise BatchValidationError(problems)
    return jobs


def _output_files(sub: htcondor2.Submit, names: dict[str, str], proc: int, problems: list[str]) -> list[str]:
    """The job's declared outputs: plain file names, none of them its .out, .err or .log."""
    out: list[str] = []
    for name in (n.strip() for n in _expand(sub, "transfer_output_files").split(",")):
        if not name or name in out:
            continue
        problem = check_file_name(name, "transfer_output_files entry")
        if problem is None and name in names.values():
            problem = f"'{name}' is the job's output, error or log file; list only the files the job writes."
        if problem:
            if len(problems) < 20:
                problems.append(f"job {proc}: {problem}")
            continue
        out.append(name)
    return out


_UNITS = {
    "": 1.0,
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "m": 1.0,
    "mb": 1.0,
    "g": 1024.0,
    "gb": 1024.0,
}
_UNITS.update({"t": 1024.0**2, "tb": 1024.0**2})


def _parse_amount(value: str, key: str, default_unit_mb: float, problems: list[str]) -> float | None:
    """Parse '2 GB', '2048', '2G' into MB (cpus: a plain count). None when not set."""
    value = value.strip()
    if not value:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", value)
    if not m or m.group(2).lower() not in _UNITS or (key == "request_cpus" and m.group(2)):
        problems.append(f"{key} must be a number with an optional unit (KB, MB, GB, TB), not '{value}'.")
        return None
    number, unit = float(m.group(1)), m.group(2).lower()
    if number <= 0:
        problems.append(f"{key} must be greater than zero.")
        return None
    return number if key == "request_cpus" else number * (_UNITS[unit] if unit else default_unit_mb)


# ---------------------------------------------------------------------------- building


def default_pattern(name: str, extension: str) -> str:
    return f"{name}-$(arguments).{extension}"


def _user_lines(spec: BatchSpec) -> list[tuple[str, str]]:
    return [
        ("executable", spec.script_name),
        ("output", spec.output or default_pattern(spec.name, "out")),
        ("error", spec.error or default_pattern(spec.name, "err")),
        ("log", spec.log or default_pattern(spec.name, "log")),
        ("request_cpus", str(spec.request_cpus)),
        ("request_memory", f"{spec.request_memory_mb} MB"),
        ("request_disk", f"{spec.request_disk_mb} MB"),
        *([("transfer_output_files", spec.output_files)] if spec.output_files.strip() else []),
    ]


def _classad_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_lines(
    profile: PoolProfile, target: WorkerTarget | None = None, proxy_name: str | None = None
) -> list[tuple[str, str]]:
    """The keys the portal adds for a pool profile, in the style of canfar_submit."""
    t = target or WorkerTarget()
    lines: list[tuple[str, str]] = []
    if profile == PoolProfile.V1:
        vm_type = _classad_string(f"{t.project}:{t.image_name}")
        lines += [
            ("Requirements", f'VMType =?= {vm_type} && Arch == "x86_64"'),
            ("+VMAMI", _classad_string(f"canfar:{t.image_id}")),
            ("+VMInstanceType", _classad_string(f"canfar:{t.flavor}")),
            ("+VMKeepAlive", "3"),
        ]
        if proxy_name:
            lines += [
                ("+PreCmd", '"canfar_condor_cert_hook"'),
                ("+PreArguments", _classad_string(proxy_name)),
            ]
    elif profile == PoolProfile.CSV2:
        lines += [
            ("Universe", "vanilla"),
            ("Requirements", 'group_name =?= "canfar" && Arch == "x86_64"'),
        ]
    lines += [("should_transfer_files", "YES"), ("when_to_transfer_output", "ON_EXIT")]
    return lines


def render(lines: list[tuple[str, str]], queue_var: str, items: list[str], comment: str = "") -> str:
    width = max((len(k) for k, _ in lines), default=0)
    out = [f"# {comment}"] if comment else []
    out += [f"{k.ljust(width)} = {v}" for k, v in lines]
    out.append("")
    out.append(f"queue {queue_var} from (")
    out += [f"  {item}" for item in items]
    out.append(")")
    return "\n".join(out) + "\n"


def build_user_submit(spec: BatchSpec) -> str:
    """The user's part of the description (no portal-owned keys): what `parse_submit` accepts."""
    lines = _user_lines(spec)
    if spec.proxy_cert:
        lines.append(("transfer_input_files", spec.proxy_cert))
    return render(lines, "arguments", spec.items)


def build_submit(spec: BatchSpec) -> str:
    """The full submit description the portal sends for the batch form, profile keys included."""
    lines = profile_lines(spec.profile, spec.target, spec.proxy_cert)
    head = [kv for kv in lines if kv[0] in ("Universe", "Requirements")]
    tail = [kv for kv in lines if kv not in head]
    user = _user_lines(spec)
    if spec.proxy_cert:
        user.append(("transfer_input_files", spec.proxy_cert))
    return render(
        head + user + tail,
        "arguments",
        spec.items,
        f"batch {spec.name}, written by the portal",
    )


def parse_spec(spec: BatchSpec) -> ParsedSubmit:
    """The jobs of a batch form, parsed from the user part exactly as an uploaded file would be."""
    return parse_submit(build_user_submit(replace(spec, profile=PoolProfile.NONE)), spec.script_name)
