"""Submit descriptions: read with the portal's own grammar, checked against an allow-list, and built.

An uploaded submit file (or the one the batch form writes) is read by
`orchestration.batch.grammar`, never by htcondor2: HTCondor's submit language
runs commands, reads files and the environment while it is parsed. Only the
commands and job attributes listed here are accepted; macros are expanded by
the portal; what comes out is a dictionary of vetted values (`ParsedSubmit.body`)
and the jobs with every value filled in. Every problem is reported at once,
each with its line number.
"""

from __future__ import annotations

import re
from dataclasses import replace

from orchestration.batch.allowlist import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_COMMANDS,
    ATTRIBUTE_VALUE,
    BUILTINS,
    CHOICES,
    FILE_COMMANDS,
    ITEM_OK,
    MACRO_NAME,
    OTHER_COMMANDS,
    PER_JOB_COMMANDS,
    PORTAL_KEYS,
    QUEUE_VAR_PREFIX,
    REFUSED_KEYS,
)
from orchestration.batch.base import (
    BatchSpec,
    BatchValidationError,
    ParsedJob,
    ParsedSubmit,
    PoolProfile,
    WorkerTarget,
)
from orchestration.batch.grammar import Assignment, QueueStatement, clip, read_submit
from orchestration.batch.macros import Expander, Part, Ref, Template, fill, literal, scan
from orchestration.batch.macros import render as render_value
from orchestration.batch.validate import check_file_name, split_arguments

DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 2048
DEFAULT_DISK_MB = 4096
MAX_JOBS = 20_000
MAX_SUBMIT_BYTES = 2 * 1024 * 1024
PROXY_FILE_NAME = "cadcproxy.pem"
MAX_SHARED_LISTED = 5
MAX_PROBLEMS = 50
MAX_ITEM_LENGTH = 1000
MAX_JOBS_TEXT_CHARS = 32 * 1024 * 1024
_ALLOWED_SHOWN = ", ".join(ALLOWED_COMMANDS)


def raise_if_problems(problems: list[tuple[int, str]]) -> None:
    """Raise BatchValidationError with every problem found, or return when there is none.

    `problems` are (line, message) pairs, the message already saying its line ("line 4: ...");
    line 0 is for problems of the whole file. The messages are raised in line order, each once,
    and a list longer than MAX_PROBLEMS is cut with a count of the rest. The submit grammar and
    the DAG grammar (orchestration/batch/dag.py) both report through it, so the two read alike.
    """
    if not problems:
        return
    out: list[str] = []
    seen: set[str] = set()
    for _, message in sorted(problems, key=lambda p: p[0]):
        if message not in seen:
            seen.add(message)
            out.append(message)
    if len(out) > MAX_PROBLEMS:
        out = out[:MAX_PROBLEMS] + [f"… and {len(out) - MAX_PROBLEMS} more problems."]
    raise BatchValidationError(out)


def parse_submit(text: str, script_name: str | None = None, max_jobs: int = MAX_JOBS) -> ParsedSubmit:
    """Read and check a user's submit description; raise BatchValidationError with every problem."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_SUBMIT_BYTES:
        raise BatchValidationError([f"The submit file is larger than {MAX_SUBMIT_BYTES // 1024} KiB."])
    text = text.replace("\r\n", "\n")
    read = read_submit(text)
    problems = list(read.problems)
    queue = read.queue or QueueStatement(0, 1, [])
    per_job = _per_job_names(queue, problems)
    found = _classify(read.assignments, per_job, problems)
    expander = Expander(found.definitions, per_job, problems)
    templates = {name: expander.expand(name) for name in found.commands}
    values = _check_commands(templates, found, queue, problems)
    _check_items(queue, problems)
    raise_if_problems(problems)
    executable = values.get("executable", "")
    if not executable:
        problems.append((0, "There is no 'executable = ...' line naming your script."))
    elif script_name is not None and executable != script_name:
        problems.append((0, f"executable is '{executable}' but the script you gave is '{script_name}'."))
    n_jobs = queue.count * max(len(queue.items), 1)
    if queue.items == [] and queue.variables:
        problems.append((queue.line, f"line {queue.line}: the queue statement lists no items."))
    elif n_jobs == 0:
        problems.append((queue.line, f"line {queue.line}: the queue statement makes no jobs."))
    elif n_jobs > max_jobs:
        problems.append((queue.line, f"The submit file makes {n_jobs} jobs; the limit is {max_jobs}."))
    elif (size := _jobs_text_size(templates, queue, n_jobs)) > MAX_JOBS_TEXT_CHARS:
        problems.append(
            (
                queue.line,
                f"line {queue.line}: the jobs' arguments and file names come to about {size >> 20} MiB; "
                f"the limit is {MAX_JOBS_TEXT_CHARS >> 20} MiB (make fewer jobs or shorter values).",
            )
        )
    raise_if_problems(problems)
    cpus = _parse_amount(values.get("request_cpus", ""), "request_cpus", 1, found, problems)
    memory = _parse_amount(values.get("request_memory", ""), "request_memory", 1, found, problems)
    disk = _parse_amount(values.get("request_disk", ""), "request_disk", 1 / 1024, found, problems)
    inputs = [f.strip() for f in values.get("transfer_input_files", "").split(",") if f.strip()]
    raise_if_problems(problems)
    jobs = _expand_jobs(templates, queue, per_job)
    arguments_per_item = any(v.lower() == "arguments" for v in queue.variables)
    body = {
        name: render_value(templates[name])
        for name in ALLOWED_COMMANDS
        if name in templates and name != "universe" and not (name == "arguments" and arguments_per_item)
    }
    body.update({f"MY.{name}": value for name, value in found.attributes.items()})
    queue_vars = [per_job[v.lower()] for v in queue.variables] if queue.items else []
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


def _jobs_text_size(templates: dict[str, Template], queue: QueueStatement, n_jobs: int) -> int:
    """About how many characters the jobs' values take once filled in, counted before filling them:
    every job holds its own arguments and file names (a 64 KiB value times 20,000 jobs is 1.3 GB)."""
    longest = max((len(v) for item in queue.items for v in item.values()), default=0)
    per_job = 0
    for key in PER_JOB_COMMANDS:
        for part in templates.get(key, ()):
            per_job += len(part) if isinstance(part, str) else max(longest, 20)
    return n_jobs * per_job


_BODY_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_BODY_NAMES = {"arguments", "dollar", *BUILTINS}


def check_body(body: dict[str, str], item_vars: list[dict[str, str]]) -> None:
    """Check a stored description before it goes to htcondor2 (bodies recorded before this grammar).

    What `parse_submit` makes always passes: allowed keys only, every `$` a reference to a
    per-job name or `$(DOLLAR)`, items without `$` and named `arguments` or PortalItem_*.
    """
    problems: list[str] = []
    allowed = set(ALLOWED_COMMANDS) | {f"MY.{a}" for a in ALLOWED_ATTRIBUTES.values()}
    for key, value in body.items():
        if key not in allowed:
            problems.append(f"{key} is not a submit command the portal sends.")
        if "$" in _BODY_REF.sub("", value) or any(
            n.lower() not in _BODY_NAMES and not n.startswith(QUEUE_VAR_PREFIX)
            for n in _BODY_REF.findall(value)
        ):
            problems.append(f"{key} holds a macro the portal does not send.")
        if any(c in value for c in "\n\r\x00") or value.rstrip(" \t\f\v").endswith("\\"):
            problems.append(f"{key} holds a line end or ends with a backslash.")
    for item in item_vars:
        if any(k != "arguments" and not k.startswith(QUEUE_VAR_PREFIX) for k in item) or any(
            not ITEM_OK.fullmatch(v) for v in item.values()
        ):
            problems.append("an item holds a name or a character the portal does not send.")
            break
    if problems:
        raise BatchValidationError(
            ["This submission was recorded before the current checks: " + p for p in problems]
        )


def _per_job_names(queue: QueueStatement, problems: list[tuple[int, str]]) -> dict[str, str]:
    """Names set for each job (lower case) -> the name htcondor2 gets."""
    names = dict(BUILTINS)
    line = queue.line
    for var in queue.variables:
        low = var.lower()
        if low == "arguments":
            names[low] = "arguments"
            continue
        if low in BUILTINS:
            problems.append(
                (line, f"line {line}: {var} is set by HTCondor for each job; call the variable otherwise.")
            )
        elif low in ALLOWED_COMMANDS or low in REFUSED_KEYS or low in PORTAL_KEYS or low in OTHER_COMMANDS:
            problems.append(
                (
                    line,
                    f"line {line}: the queue variable {var} would set the submit command {var} for each job; "
                    "only arguments may be set per item.",
                )
            )
        elif low in names:
            problems.append((line, f"line {line}: the queue variable {var} is named twice."))
        names[low] = QUEUE_VAR_PREFIX + low
    return names


class _Found:
    """The assignments of a file, sorted into commands, macros and job attributes."""

    def __init__(self) -> None:
        self.definitions: dict[str, tuple[int, list[Part]]] = {}  # every command and macro, lower case
        self.commands: dict[str, int] = {}  # allowed command -> line of its (last) assignment
        self.raw: dict[str, str] = {}  # command -> value as written
        self.attributes: dict[str, str] = {}  # job attribute as htcondor2 gets it -> value


def _classify(
    assignments: list[Assignment], per_job: dict[str, str], problems: list[tuple[int, str]]
) -> _Found:
    found = _Found()
    macros: dict[str, tuple[int, str]] = {}
    referenced: set[str] = set()
    for a in assignments:
        written, line = a.key, a.line
        norm = "my." + written[1:].lower() if written.startswith("+") else written.lower()
        reason = PORTAL_KEYS.get(norm) or REFUSED_KEYS.get(norm)
        if reason:
            problems.append((line, f"line {line}: {written} is not allowed: {reason}."))
            continue
        if norm.startswith("my."):
            attribute = ALLOWED_ATTRIBUTES.get(norm[3:])
            if attribute is None:
                problems.append(
                    (
                        line,
                        f"line {line}: the job attribute {written} is not allowed: the portal accepts only "
                        "+ProjectName and +JobBatchName.",
                    )
                )
            elif not ATTRIBUTE_VALUE.fullmatch(a.value):
                problems.append(
                    (
                        line,
                        f"line {line}: {written} must be a quoted label (letters, digits, spaces and . _ : @ , + -) "
                        "or a whole number.",
                    )
                )
            else:
                found.attributes[attribute] = a.value
            continue
        if norm in BUILTINS:
            problems.append(
                (line, f"line {line}: {written} is set by HTCondor for each job; use another name.")
            )
            continue
        if norm in OTHER_COMMANDS or not MACRO_NAME.fullmatch(written):
            problems.append(
                (
                    line,
                    f"line {line}: {clip(written, 40)} is not a submit command the portal accepts ({_ALLOWED_SHOWN}).",
                )
            )
            continue
        parts = scan(a.value, line, problems)
        referenced.update(p.name for p in parts if isinstance(p, Ref))
        found.definitions[norm] = (line, parts)
        if norm in ALLOWED_COMMANDS:
            found.commands[norm] = line
            found.raw[norm] = a.value
        else:
            macros[norm] = (line, written)
    for norm, (line, written) in macros.items():
        if norm not in referenced and norm not in per_job:
            problems.append(
                (
                    line,
                    f"line {line}: {written} is not a submit command the portal accepts ({_ALLOWED_SHOWN}); "
                    f"a macro of your own must be used somewhere as $({written}).",
                )
            )
    return found


def _check_commands(
    templates: dict[str, Template], found: _Found, queue: QueueStatement, problems: list[tuple[int, str]]
) -> dict[str, str]:
    """Check each command's value; return the values that are the same for every job."""
    values: dict[str, str] = {}
    varying = {"step", "itemindex", "row"} if queue.count > 1 and queue.items else set()
    for name, template in templates.items():
        line = found.commands[name]
        shown = clip(found.raw[name])
        refs = [p for p in template if isinstance(p, Ref)]
        if name not in PER_JOB_COMMANDS and refs:
            problems.append(
                (line, f"line {line}: {name} cannot change from job to job (it uses $({refs[0].written})).")
            )
            continue
        odd = [r for r in refs if r.name in varying]
        if odd:
            problems.append(
                (
                    line,
                    f"line {line}: $({BUILTINS[odd[0].name]}) is not supported with 'queue N ... from'; "
                    "use $(Process).",
                )
            )
        # htcondor2 would keep "$(DOLLAR)$(DOLLAR)" as "$$(DOLLAR)": a value from the machine a job lands
        # on; and it reads "$(DOLLAR)(" again: "$(DOLLAR)(DOLLAR)" is "$", never the "$(DOLLAR)" shown.
        held = next((d for d in ("$$", "$(") if any(d in p for p in template if isinstance(p, str))), None)
        if held:
            problems.append(
                (line, f"line {line}: {name} may not hold '{held}' (after expanding its macros).")
            )
            continue
        if render_value(template).rstrip(" \t").endswith("\\"):
            # htcondor2 writes `name = value` lines and reads them: the portal's next line would join this one
            problems.append((line, f"line {line}: {name} may not end with a backslash."))
            continue
        text = "".join(p for p in template if isinstance(p, str))
        if name in FILE_COMMANDS and ("/" in text or text.strip().startswith("~") or "\\" in text):
            problems.append(
                (line, f"line {line}: {name} must name files without directories (found '{shown}').")
            )
            continue
        value = literal(template)
        if value is None:
            continue
        if name in CHOICES:
            choices = CHOICES[name]
            if value.lower() not in [c.lower() for c in choices]:
                if name == "universe":
                    problems.append(
                        (
                            line,
                            f"line {line}: universe = {shown} is not allowed: the portal runs every job "
                            "in the vanilla universe.",
                        )
                    )
                else:
                    problems.append(
                        (line, f"line {line}: {name} must be one of {', '.join(choices)}, not '{shown}'.")
                    )
        if name == "executable" and value and (problem := check_file_name(value, "executable")):
            problems.append((line, f"line {line}: {problem}"))
        if name == "transfer_input_files":
            for entry in (f.strip() for f in value.split(",")):
                if entry and (problem := check_file_name(entry, "transfer_input_files entry")):
                    problems.append((line, f"line {line}: {problem}"))
        values[name] = value.strip()
    return values


def _check_items(queue: QueueStatement, problems: list[tuple[int, str]]) -> None:
    """Items reach job argv and file names: an allow-list of characters, and a length limit."""
    bad: dict[str, list[int]] = {}
    long_lines: list[int] = []
    for item, line in zip(queue.items, queue.item_lines, strict=True):
        for value in item.values():
            if len(value) > MAX_ITEM_LENGTH:
                long_lines.append(line)
            if not ITEM_OK.fullmatch(value):
                for c in {c for c in value if not ITEM_OK.fullmatch(c)}:
                    bad.setdefault(_describe_char(c), []).append(line)
    for what, lines in bad.items():
        problems.append(
            (lines[0], f"line {lines[0]}: items may not contain {what} (line(s) {_lines_list(lines)}).")
        )
    if long_lines:
        problems.append(
            (
                long_lines[0],
                f"line {long_lines[0]}: items longer than {MAX_ITEM_LENGTH} characters "
                f"(line(s) {_lines_list(long_lines)}).",
            )
        )


def _describe_char(c: str) -> str:
    if c == "$":
        return "'$' (no macros in items)"
    if not c.isprintable():
        return f"the character U+{ord(c):04X}"
    return f"'{c}'"


def _lines_list(numbers: list[int], most: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


def _expand_jobs(
    templates: dict[str, Template], queue: QueueStatement, per_job: dict[str, str]
) -> list[ParsedJob]:
    jobs: list[ParsedJob] = []
    problems: list[str] = []
    writers: dict[tuple[str, str], list[int]] = {}  # (key, file name) -> procs
    empty: Template = ()
    names_of = {k: templates.get(k, empty) for k in ("output", "error", "log")}
    arguments = templates.get("arguments", empty)
    outputs_of = templates.get("transfer_output_files", empty)
    proc = 0
    for index, item in enumerate(queue.items or [{}]):
        base = {name.lower(): value for name, value in item.items()}
        item_vars = {per_job[name]: value for name, value in base.items()}
        raw_item = " ".join(item.values())
        where = f"line {queue.item_lines[index]}, job" if queue.items else "job"
        for step in range(queue.count):
            number = str(proc)
            values = {**base, "process": number, "procid": number, "cluster": "1", "clusterid": "1"}
            values.update(step=str(step), itemindex=str(index), row=str(index))
            names = {k: fill(t, values) for k, t in names_of.items()}
            raw_arguments = base["arguments"] if "arguments" in base else fill(arguments, values)
            try:
                argv = split_arguments(raw_arguments)
            except BatchValidationError as exc:
                problems.extend(f"{where} {proc}: {problem}" for problem in exc.problems)
                argv = []
            for key, name in names.items():
                problem = check_file_name(name, key) if name else None
                if problem and len(problems) < 20:
                    problems.append(f"{where} {proc}: {problem}")
                if key != "log" and name:  # jobs may share one event log, as in HTCondor
                    writers.setdefault((key, name), []).append(proc)
            outputs = _output_files(fill(outputs_of, values), names, f"{where} {proc}", problems)
            for name in outputs:
                writers.setdefault(("transfer_output_files", name), []).append(proc)
            jobs.append(
                ParsedJob(
                    proc,
                    raw_item,
                    argv,
                    names["output"],
                    names["error"],
                    names["log"],
                    dict(item_vars),
                    outputs,
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


def _output_files(value: str, names: dict[str, str], job: str, problems: list[str]) -> list[str]:
    """The job's declared outputs: plain file names, none of them its .out, .err or .log."""
    out: list[str] = []
    for name in (n.strip() for n in value.split(",")):
        if not name or name in out:
            continue
        problem = check_file_name(name, "transfer_output_files entry")
        if problem is None and name in names.values():
            problem = f"'{name}' is the job's output, error or log file; list only the files the job writes."
        if problem:
            if len(problems) < 20:
                problems.append(f"{job}: {problem}")
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
    "t": 1024.0**2,
    "tb": 1024.0**2,
}


def _parse_amount(
    value: str, key: str, default_unit_mb: float, found: _Found, problems: list[tuple[int, str]]
) -> float | None:
    """Parse '2 GB', '2048', '2G' into MB (cpus: a plain count). None when not set."""
    value = value.strip()
    if not value:
        return None
    line = found.commands.get(key, 0)
    m = re.fullmatch(r"(\d{1,12}(?:\.\d{1,6})?)\s*([A-Za-z]{0,2})", value)
    if not m or m.group(2).lower() not in _UNITS or (key == "request_cpus" and m.group(2)):
        units = (
            "a whole number" if key == "request_cpus" else "a number with an optional unit (KB, MB, GB, TB)"
        )
        problems.append((line, f"line {line}: {key} must be {units}, not '{clip(value)}'."))
        return None
    number, unit = float(m.group(1)), m.group(2).lower()
    if number <= 0:
        problems.append((line, f"line {line}: {key} must be greater than zero."))
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
    """A submit description in text; a value or item holding a line end is a programming error."""
    for text in [comment, queue_var, *(k for k, _ in lines), *(v for _, v in lines), *items]:
        if "\n" in text or "\r" in text or text.rstrip().endswith("\\"):
            raise ValueError(f"a line end or a trailing backslash in a submit value: {text[:40]!r}")
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
