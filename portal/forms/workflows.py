"""Workflow forms: a DAG file with its submit files and scripts, or stages written in the page.

Both end in the same place: a DAG text and the files it names, vetted by
`orchestration.batch.dag.check_workflow` (each node's submit file by the batch grammar).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from orchestration.batch.base import BatchValidationError
from orchestration.batch.dag import (
    MAX_DAG_BYTES,
    NODE_NAME,
    StageSpec,
    VettedWorkflow,
    check_workflow,
    form_dag,
)
from orchestration.batch.validate import MAX_SCRIPT_BYTES, check_file_name, validate_items

MAX_FILES = 50
MAX_STEPS = 5
EXECUTOR_LABELS = {"local": "Local workers", "htcondor": "HTCondor pool (DAGMan)"}


def _executor_field() -> forms.ChoiceField:
    choices = [(name, EXECUTOR_LABELS[name]) for name in settings.BATCH_EXECUTORS]
    return forms.ChoiceField(choices=choices, initial=settings.BATCH_EXECUTOR, label="Runs on")


class _WorkflowForm(forms.Form):
    name = forms.RegexField(
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
        max_length=40,
        error_messages={
            "invalid": "Use letters, digits, '.', '_' and '-' (at most 40), starting with a letter or digit."
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["executor"] = _executor_field()
        for field in self.fields.values():
            css = "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
            field.widget.attrs["class"] = f"{css} {field.widget.attrs.get('class', '')}".strip()
        self.vetted: VettedWorkflow | None = None
        self.dag_text = ""
        self.workflow_files: dict[str, str] = {}

    def vet(self, text: str, files: dict[str, str]) -> None:
        self.dag_text, self.workflow_files = text, files
        try:
            self.vetted = check_workflow(text, files)
        except BatchValidationError as exc:
            for problem in exc.problems:
                self.add_error(None, problem)


def _read(upload: Any, limit: int, problems: list[str]) -> tuple[str, str] | None:
    name = str(upload.name or "")
    problem = check_file_name(name, "file name")
    if problem:
        problems.append(problem)
        return None
    if upload.size > limit:
        problems.append(f"{name} is larger than {limit // 1024} KiB.")
        return None
    try:
        return name, upload.read().decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{name} is not a UTF-8 text file.")
        return None


class DagUploadForm(_WorkflowForm):
    dag_file = forms.FileField(label="DAG file (.dag)")
    # The submit files and scripts come as many files under one name ("inputs"), read by the view.

    def __init__(self, *args: Any, uploads: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uploads = list(uploads or [])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        dag = data.get("dag_file")
        uploads = self.uploads
        problems: list[str] = []
        if len(uploads) > MAX_FILES:
            problems.append(f"Upload at most {MAX_FILES} files with the DAG.")
            uploads = []
        files: dict[str, str] = {}
        for upload in uploads:
            read = _read(upload, MAX_SCRIPT_BYTES, problems)
            if read is not None:
                if read[0] in files:
                    problems.append(f"{read[0]} is uploaded twice.")
                files[read[0]] = read[1]
        text = None
        if dag is not None:
            if dag.size > MAX_DAG_BYTES:
                problems.append(f"The DAG file is larger than {MAX_DAG_BYTES // (1024 * 1024)} MiB.")
            else:
                try:
                    text = dag.read().decode("utf-8")
                except UnicodeDecodeError:
                    problems.append("The DAG file is not a UTF-8 text file.")
        for problem in problems:
            self.add_error(None, problem)
        if text is not None and not problems:
            self.vet(text, files)
        return data


class StagesForm(_WorkflowForm):
    items = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono script-text"}),
        help_text="One item per line (e.g. observation IDs): each runs the chain of steps with the item as argument.",
    )
    before = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono script-text"}),
        label="Before all (optional)",
        help_text="A script run once before every item's steps (e.g. initialise a repository).",
    )
    after = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono script-text"}),
        label="After all (optional)",
        help_text="A script run once when every item's steps are done (e.g. merge the catalogues).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(1, MAX_STEPS + 1):
            self.fields[f"step{i}"] = forms.CharField(
                required=i == 1,
                widget=forms.Textarea(attrs={"rows": 4, "class": "mono script-text"}),
                label=f"Step {i}" + (" (optional)" if i > 1 else ""),
                help_text="Runs as ./step.sh ITEM." if i == 1 else "",
            )
            self.fields[f"step{i}"].widget.attrs["class"] = "form-control mono script-text"

    def step_fields(self) -> list[Any]:
        return [self[f"step{i}"] for i in range(1, MAX_STEPS + 1)]

    def clean_items(self) -> list[str]:
        try:
            items = validate_items(
                self.cleaned_data.get("items", ""), max_items=settings.BATCH_MAX_ITEMS // 4
            )
        except BatchValidationError as exc:
            raise forms.ValidationError(exc.problems) from exc
        bad = [i for i in items if not NODE_NAME.fullmatch(i)]
        if bad:
            raise forms.ValidationError(
                f"Items name the workflow's nodes: use letters, digits and _ . + - only ('{bad[0][:40]}')."
            )
        return items

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        files: dict[str, str] = {}
        steps = []
        for i in range(1, MAX_STEPS + 1):
            script = (data.get(f"step{i}") or "").replace("\r\n", "\n")
            if script.strip():
                files[f"step{i}.sh"] = script
                steps.append(StageSpec(f"step{i}", f"step{i}.sh"))
        before = after = None
        if (data.get("before") or "").strip():
            files["before.sh"] = data["before"].replace("\r\n", "\n")
            before = StageSpec("before", "before.sh")
        if (data.get("after") or "").strip():
            files["after.sh"] = data["after"].replace("\r\n", "\n")
            after = StageSpec("after", "after.sh")
        for name, text in files.items():
            if len(text.encode()) > MAX_SCRIPT_BYTES:
                self.add_error(None, f"{name} is larger than {MAX_SCRIPT_BYTES // 1024} KiB.")
                return data
        text, submits = form_dag(data["items"], steps, before, after)
        self.vet(text, {**submits, **files})
        return data
