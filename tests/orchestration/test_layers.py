"""The layout holds: light modules stay light, workers know every task, every operation kind has a handler."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from config.celery import app
from orchestration.kinds import HANDLERS, RECORDS
from orchestration.operations import handler_for

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("astropy", "sep", "openstack", "htcondor2")


def _modules(*packages: str) -> Iterator[tuple[Path, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), str(path))


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_it_imports_the_storage_task_without_the_heavy_libraries() -> None:
    code = (
        "import sys, django; django.setup(); import orchestration.tasks.storage; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_a_worker_knows_every_routed_and_scheduled_task() -> None:
    for module in settings.CELERY_IMPORTS:
        importlib.import_module(module)
    wanted = set(settings.CELERY_TASK_ROUTES) | {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert wanted - set(app.tasks) == set()


def test_the_tasks_package_imports_no_task_module() -> None:
    tree = ast.parse((ROOT / "orchestration" / "tasks" / "__init__.py").read_text())
    assert _imported(tree) == set()


def test_every_kind_in_the_table_has_a_handler_that_a_worker_imports() -> None:
    for kind, path in HANDLERS.items():
        assert callable(handler_for(kind)), kind
        assert path.rsplit(".", 1)[0] in settings.CELERY_IMPORTS, path
    assert set(HANDLERS).isdisjoint(RECORDS)
    assert handler_for("no_such_kind") is None


def _kinds_started(tree: ast.Module) -> tuple[set[str], list[str]]:
    """Kinds passed to start_operation: string constants, or a parameter of the calling function
    that its callers in the same module pass as a constant (a view's ``_start(request, vm, "vm_delete")``)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    kinds: set[str] = set()
    unknown: list[str] = []

    def called(node: ast.Call) -> str:
        return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")

    def argument(call: ast.Call, name: str, index: int) -> ast.expr | None:
        for keyword in call.keywords:
            if keyword.arg == name:
                return keyword.value
        return call.args[index] if index < len(call.args) else None

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and called(node) == "start_operation"):
            continue
        value = argument(node, "kind", 99)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            kinds.add(value.value)
            continue
        scope = parents.get(node)
        while scope is not None and not isinstance(scope, ast.FunctionDef):
            scope = parents.get(scope)
        if isinstance(value, ast.Name) and scope is not None:
            params = [a.arg for a in scope.args.args]
            index = params.index(value.id) if value.id in params else -1
            callers = [
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and called(n) == scope.name and index >= 0
            ]
            for caller in callers:
                passed = argument(caller, value.id, index)
                if isinstance(passed, ast.Constant) and isinstance(passed.value, str):
                    kinds.add(passed.value)
                else:
                    unknown.append(ast.unparse(caller))
            if callers and scope.name in functions:
                continue
        unknown.append(ast.unparse(node))
    return kinds, unknown


def test_every_kind_the_portal_starts_or_records_is_in_the_table() -> None:
    started: set[str] = set()
    recorded: set[str] = set()
    unknown: list[str] = []
    for _, tree in _modules("portal", "orchestration"):
        kinds, unclear = _kinds_started(tree)
        started |= kinds
        unknown += unclear
        for node in ast.walk(tree):  # Operation.objects.create(kind=...): rows written as finished
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "Operation.objects.create":
                for keyword in node.keywords:
                    if keyword.arg == "kind" and isinstance(keyword.value, ast.Constant):
                        recorded.add(keyword.value.value)
    assert unknown == []
    assert len(started) > 15  # the scan finds the views' operations
    assert started - set(HANDLERS) == set()
    assert recorded - set(RECORDS) == set()
