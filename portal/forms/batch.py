"""Batch forms: the submit form and the upload of an existing submit file.

Both collect every problem at once (field errors and whole-form errors) and, when
valid, hand a `BatchPlan` of plain data to the view that records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from django import forms
from django.conf import settings

from orchestration.batch.base import BatchSpec, BatchValidationError, ParsedSubmit, PoolProfile, WorkerTarget
from orchestration.batch.submit import PROXY_FILE_NAME, build_submit, parse_spec, parse_submit
from orchestration.batch.validate import check_file_name, validate_items, validate_script
from orchestration.storage.base import InvalidPath, normalize
from portal.certificates import problem_for_jobs, proxy_needed
from portal.models import Flavor, Image, shared_from

# The CANFAR batch tutorial's pipeline script; the form starts from it. On a portal with a local archive
# and storage, its jobs get stand-ins for cadcget and vcp (orchestration/batch/jobtools).
SEED_SCRIPT = """#!/bin/bash
id=$1
cadcget cadc:CFHT/${id}.fits.fz
funpack -D ${id}.fits.fz
cp /usr/share/source-extractor/default* .
echo 'NUMBER
MAG_AUTO
X_IMAGE
Y_IMAGE' > default.param
source-extractor ${id}.fits -CATALOG_NAME ${id}.cat
vcp ${id}.cat vos:[VOSpace]/
"""
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A file name pattern of the form: plain characters and $(arguments) or $(Process), nothing else.
_PATTERN = re.compile(r"(?:[A-Za-z0-9._+=:@-]|\$\((?i:arguments|process)\))+")
PATTERN_HELP = (
    "Use a plain file name: letters, digits, . _ - + = : @ and $(arguments) or $(Process); "
    "no folders, spaces or line ends."
)
EXECUTOR_LABELS = {"local": "Local workers (the portal's own Celery workers)", "htcondor": "HTCondor pool"}


@dataclass
class BatchPlan:
    """A validated submission, ready to be recorded."""

    name: str
    executor: str
    script_name: str
    script: str
    submit_text: str
    parsed: ParsedSubmit
    test_first: bool
    image: Image | None
    flavor: Flavor | None
    output_folder: str = ""


OUTPUTS_HELP = (
    "Optional: a folder of your storage (created if needed). When each job finishes, its .out, .err and "
    ".log and its declared output files are copied there, replacing files of the same name."
)
OUTPUT_FILES_HELP = (
    "Files each job writes in its working directory and returns, comma-separated; $(arguments) is the "
    "item, so $(arguments).cat is 1056215p.cat for item 1056215p (the tutorial's catalogue). A job that "
    "exits 0 without writing them is marked “completed without output”. Leave empty to declare none."
)


def snapshot_help(executors: list[str]) -> str:
    """Which of the offered executors boot workers from the snapshot."""
    parts = []
    if "htcondor" in executors:
        parts.append("The HTCondor pool boots its workers from this snapshot (with the flavor below).")
    if "local" in executors:
        parts.append("Local workers ignore it: jobs run on the portal's own workers.")
    return " ".join(parts)


def proxy_problem(user: Any) -> str | None:
    """Why the user's jobs cannot get a proxy certificate now (cadc identity only), or None."""
    if settings.IDENTITY_BACKEND != "cadc" or user is None:
        return None
    return problem_for_jobs(user, proxy_needed())


def clean_output_folder(value: str) -> str:
    """The storage folder in its normal form; ValidationError for paths that leave the user's space."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        folder = normalize(value)
    except InvalidPath as exc:
        raise forms.ValidationError(str(exc)) from exc
    if not folder:
        raise forms.ValidationError("Name a folder inside your storage, not its top.")
    return folder


def _read_upload(upload: Any, what: str, problems: list[str]) -> str | None:
    if upload.size > MAX_UPLOAD_BYTES:
        problems.append(f"The {what} is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MiB.")
        return None
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"The {what} is not a UTF-8 text file.")
        return None


class _TargetMixin(forms.Form):
    """Snapshot, flavor and executor choices from the current project."""

    snapshot = forms.ChoiceField(required=False, label="Worker snapshot")
    flavor = forms.ChoiceField(required=False, label="Worker flavor")
    executor = forms.ChoiceField(label="Run on")
    test_first = forms.BooleanField(
        required=False, label="Test one first", help_text="Run the first item alone; start the rest after."
    )
    output_folder = forms.CharField(
        required=False, max_length=1024, label="Store outputs in", help_text=OUTPUTS_HELP
    )

    def __init__(self, *args: Any, project: Any = None, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["output_folder"].widget.attrs["placeholder"] = "e.g. results/do_catalogue"
        self.images = list(Image.objects.filter(project=project, is_snapshot=True)) if project else []
        self.flavors = list(Flavor.objects.filter(project=project)) if project else []
        none = [("", "None (the executor's default workers)")]
        owners = shared_from(project)

        def label(i: Image) -> str:
            return f"{i.name} · shared from {owners[i.external_id]}" if i.external_id in owners else i.name

        choices: dict[str, list[tuple[str, str]]] = {
            "snapshot": none + [(str(i.pk), label(i)) for i in self.images],
            "flavor": none + [(str(f.pk), f.label) for f in self.flavors],
            "executor": [(e, EXECUTOR_LABELS[e]) for e in settings.BATCH_EXECUTORS],
        }
        for key, values in choices.items():
            field = self.fields[key]
            assert isinstance(field, forms.ChoiceField)
            field.choices = values
        self.fields["executor"].initial = settings.BATCH_EXECUTOR
        newest = next((i for i in self.images if i.status == "active"), None)  # images are newest first
        if newest is not None:
            self.fields["snapshot"].initial = str(newest.pk)
        self.fields["snapshot"].help_text = snapshot_help(settings.BATCH_EXECUTORS)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{css} {widget.attrs.get('class', '')}".strip()

    def clean_output_folder(self) -> str:
        return clean_output_folder(self.cleaned_data.get("output_folder", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        image, flavor = self._target()
        if self.profile() == PoolProfile.V1 and (image is None or flavor is None):
            # Cloud-scheduler v1 boots workers from the snapshot with the flavor; without them the
            # jobs ask for VMType "<project>:" and no worker will ever match.
            self.add_error(
                "snapshot" if image is None else "flavor",
                "This HTCondor pool boots its workers from a snapshot (cloud-scheduler v1): "
                "choose the worker snapshot and flavor.",
            )
        return data

    def _check_proxy(self) -> None:
        problem = proxy_problem(self.user)
        if problem:
            self.add_error(None, problem)

    def _target(self) -> tuple[Image | None, Flavor | None]:
        image = next((i for i in self.images if str(i.pk) == self.cleaned_data.get("snapshot")), None)
        flavor = next((f for f in self.flavors if str(f.pk) == self.cleaned_data.get("flavor")), None)
        return image, flavor

    def profile(self) -> PoolProfile:
        if self.cleaned_data.get("executor") == "htcondor":
            return PoolProfile(settings.HTCONDOR_POOL_PROFILE)
        return PoolProfile.NONE

    def worker_target(self, project: Any) -> WorkerTarget | None:
        image, flavor = self._target()
        if image is None and flavor is None:
            return None
        return WorkerTarget(
            project=project.name if project else "",
            image_name=image.name if image else "",
            image_id=image.external_id if image else "",
            flavor=flavor.name if flavor else "",
        )


class BatchForm(_TargetMixin):
    name = forms.CharField(max_length=64, initial="do_catalogue", help_text="Letters, digits, - and _.")
    script_name = forms.CharField(max_length=100, initial="do_catalogue.bash", label="Script file name")
    script = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "mono script-text"}),
        initial=SEED_SCRIPT,
        strip=False,
        label="Executable script",
    )
    items = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono script-text"}),
        label="Items",
        help_text="One per line; each becomes one job, passed to the script as $1.",
    )
    items_file = forms.FileField(required=False, label="…or upload a text file of items")
    allow_duplicates = forms.BooleanField(required=False, label="Allow duplicate items")
    output = forms.CharField(required=False, max_length=255, label="Output (.out)")
    error = forms.CharField(required=False, max_length=255, label="Error (.err)")
    log = forms.CharField(required=False, max_length=255, label="Event log (.log)")
    request_cpus = forms.IntegerField(min_value=1, max_value=64, initial=1, label="CPUs")
    request_memory_mb = forms.IntegerField(
        min_value=64, max_value=512 * 1024, initial=2048, label="Memory (MB)"
    )
    request_disk_mb = forms.IntegerField(min_value=64, max_value=4096 * 1024, initial=4096, label="Disk (MB)")
    output_files = forms.CharField(
        required=False,
        max_length=1000,
        initial="$(arguments).cat",
        label="Output files",
        help_text=OUTPUT_FILES_HELP,
    )

    field_order = ["name", "script_name", "script", "items", "items_file", "allow_duplicates"]

    def __init__(self, *args: Any, project: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, project=project, **kwargs)
        self.project = project
        self.plan: BatchPlan | None = None
        name = self["name"].value() or "do_catalogue"
        owner: Any = self.user
        username = str(getattr(owner, "username", "") or "")
        if username:
            # The tutorial's "vos:[VOSpace]" placeholder, filled in with the user's own space.
            vos = settings.VOSPACE_BASE_URI.format(username=username)
            self.fields["script"].initial = SEED_SCRIPT.replace("vos:[VOSpace]", vos)
        self.fields["output_files"].widget.attrs["placeholder"] = "$(arguments).cat"
        for key in ("output", "error", "log"):
            self.fields[key].widget.attrs["placeholder"] = f"{name}-$(arguments).{key[:3]}"

    def _clean_pattern(self, key: str) -> str:
        value = self.cleaned_data.get(key, "").strip()
        if value and (not _PATTERN.fullmatch(value) or value.startswith(".")):
            raise forms.ValidationError(PATTERN_HELP)
        return value

    def clean_output(self) -> str:
        return self._clean_pattern("output")

    def clean_error(self) -> str:
        return self._clean_pattern("error")

    def clean_log(self) -> str:
        return self._clean_pattern("log")

    def clean_output_files(self) -> str:
        value = self.cleaned_data.get("output_files", "").strip()
        names = [n.strip() for n in value.split(",")] if value else []
        if any(not _PATTERN.fullmatch(n) or n.startswith(".") for n in names):
            raise forms.ValidationError(PATTERN_HELP + " Separate several with commas.")
        return ", ".join(names)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = data.get("name", "")
        if name and not _NAME.fullmatch(name):
            self.add_error("name", "Use letters, digits, '-' and '_' only (it becomes part of file names).")
        script_name = data.get("script_name", "")
        if script_name and (problem := check_file_name(script_name, "The script file name")):
            self.add_error("script_name", problem)
        script = data.get("script")
        if script is not None:
            try:
                data["script"] = validate_script(script)
            except BatchValidationError as exc:
                self.add_error("script", exc.problems)
        items = self._items(data)
        self._check_proxy()
        if self.errors:
            return data
        spec = BatchSpec(
            name=name,
            script_name=script_name,
            items=items,
            output=data.get("output", "").strip(),
            error=data.get("error", "").strip(),
            log=data.get("log", "").strip(),
            request_cpus=data["request_cpus"],
            request_memory_mb=data["request_memory_mb"],
            request_disk_mb=data["request_disk_mb"],
            output_files=data.get("output_files", "").strip(),
        )
        try:
            parsed = parse_spec(spec)
        except BatchValidationError as exc:
            for problem in exc.problems:
                self.add_error(None, problem)
            return data
        image, flavor = self._target()
        text = build_submit(replace(spec, profile=self.profile(), target=self.worker_target(self.project)))
        self.plan = BatchPlan(
            name,
            data["executor"],
            script_name,
            data["script"],
            text,
            parsed,
            data.get("test_first", False),
            image,
            flavor,
            data.get("output_folder", ""),
        )
        return data

    def _items(self, data: dict[str, Any]) -> list[str]:
        upload = data.get("items_file")
        text = data.get("items") or ""
        if upload is not None:
            problems: list[str] = []
            text = _read_upload(upload, "items file", problems) or ""
            if problems:
                self.add_error("items_file", problems)
                return []
        try:
            return validate_items(
                text, allow_duplicates=data.get("allow_duplicates", False), max_items=settings.BATCH_MAX_ITEMS
            )
        except BatchValidationError as exc:
            self.add_error("items_file" if upload is not None else "items", exc.problems)
            return []


class UploadForm(_TargetMixin):
    submit_file = forms.FileField(label="Submit file (.sub)")
    script_file = forms.FileField(label="Its executable script")
    name = forms.CharField(required=False, max_length=64, help_text="Defaults to the submit file's name.")

    field_order = ["submit_file", "script_file", "name"]

    def __init__(self, *args: Any, project: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, project=project, **kwargs)
        self.project = project
        self.plan: BatchPlan | None = None
        self.fields["output_folder"].help_text = OUTPUTS_HELP + (
            " The declared output files are those in the file's transfer_output_files."
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self._check_proxy()
        sub_file, script_file = data.get("submit_file"), data.get("script_file")
        if sub_file is None or script_file is None:
            return data
        problems: list[str] = []
        text = _read_upload(sub_file, "submit file", problems)
        script = _read_upload(script_file, "script", problems)
        script_name = PurePath(script_file.name).name
        name = (
            data.get("name") or re.sub(r"[^A-Za-z0-9_-]", "-", PurePath(sub_file.name).stem)[:64] or "batch"
        )
        if not _NAME.fullmatch(name):
            self.add_error("name", "Use letters, digits, '-' and '_' only (it becomes part of file names).")
        if script is not None:
            try:
                script = validate_script(script)
            except BatchValidationError as exc:
                problems += [f"Script: {p}" for p in exc.problems]
        parsed = None
        if text is not None:
            try:
                parsed = parse_submit(text, script_name=script_name, max_jobs=settings.BATCH_MAX_ITEMS)
            except BatchValidationError as exc:
                problems += exc.problems
        if parsed is not None:
            extra = [n for n in parsed.transfer_input_files if n not in (script_name, PROXY_FILE_NAME)]
            if extra:
                problems.append(
                    f"transfer_input_files names {', '.join(extra)}, which the portal cannot take with an "
                    "upload; have your script fetch its inputs from storage instead."
                )
        for problem in problems:
            self.add_error(None, problem)
        if self.errors or parsed is None or script is None or text is None:
            return data
        image, flavor = self._target()
        self.plan = BatchPlan(
            name,
            data["executor"],
            script_name,
            script,
            parsed.text,
            parsed,
            data.get("test_first", False),
            image,
            flavor,
            data.get("output_folder", ""),
        )
        return data


class ResubmitForm(forms.Form):
    """The script for resubmitted jobs, edited from the one they ran."""

    script = forms.CharField(
        strip=False,
        widget=forms.Textarea(
            attrs={"class": "form-control mono script-text", "rows": 16, "spellcheck": "false"}
        ),
    )

    def clean_script(self) -> str:
        try:
            return validate_script(self.cleaned_data["script"])
        except BatchValidationError as exc:
            raise forms.ValidationError([str(p) for p in exc.problems]) from exc
