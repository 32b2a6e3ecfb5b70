"""Workflows in a real browser: the stages form showing its DAG, a DAG upload, the live graph."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in
from tests.workflows.helpers import lsst_files

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Long enough that the page, polling every 2 s, sees the nodes running whatever the load.
SLOW_STEP = '#!/bin/sh\necho "start $1"\nsleep 8\necho "end $1"\n'


def test_the_stages_form_shows_the_dag_and_the_graph_goes_live(page: Any, celery_worker_process: Any) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.goto("/batch/")
    page.get_by_test_id("new-workflow").click()
    expect(page.get_by_role("heading", name="New workflow")).to_be_visible()
    page.fill("#id_name", "canfar-merge")
    page.fill("#id_items", "1056215p\n1056216p\n1056217p")
    page.fill("#id_step1", SLOW_STEP)
    page.fill("#id_after", '#!/bin/sh\necho "merged"\n')
    page.get_by_test_id("preview-dag").click()
    expect(page.get_by_test_id("preview-nodes")).to_have_text("4 nodes")
    expect(page.get_by_test_id("preview-dag-text")).to_contain_text("PARENT step1_1056217p CHILD after")
    expect(page.locator("[data-testid=dag-preview] rect.wf-node")).to_have_count(4)
    screenshot(page, "workflow-01-form")

    page.get_by_test_id("submit-stages").click()
    expect(page.get_by_test_id("workflow-graph")).to_be_visible()
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = page.locator("#workflow-live").get_attribute("data-state") or ""
        rows = page.locator("[data-testid=node-table] tr[data-node]").evaluate_all(
            "rows => rows.map(r => r.dataset.state)"
        )
        seen.update(rows)
        if "running" in rows and "shot" not in seen:
            screenshot(page, "workflow-02-running")
            seen.add("shot")
        if state == "done":
            break
        time.sleep(0.3)
    assert "running" in seen and "done" in seen, seen
    expect(page.get_by_test_id("finished-banner")).to_contain_text("4 of 4 nodes done")
    expect(page.get_by_test_id("count-done")).to_have_text("4")
    expect(page.get_by_test_id("wf-hold")).to_have_count(0)  # gone with the live part: nothing to hold
    screenshot(page, "workflow-03-done")
    page.locator("[data-node=after] [data-testid=node-logs]").click()
    expect(page.get_by_role("heading", name="Node after")).to_be_visible()
    expect(page.get_by_test_id("job-out")).to_have_text("merged")
    expect(page.get_by_test_id("job-timeline")).to_contain_text("Finished, exit code 0")
    screenshot(page, "workflow-03b-node")


def test_a_dag_upload_with_a_problem_then_without(page: Any, live_server: Any, tmp_path: Path) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    text, files = lsst_files([f"im{i:02d}" for i in range(33)])
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "bad.dag").write_text(text + "SPLICE more other.dag\nPARENT step3_im00 CHILD init\n")
    (tmp_path / "lsst.dag").write_text(text)
    page.goto("/workflows/upload/")
    page.fill("#id_name", "lsst")
    page.set_input_files("#id_dag_file", str(tmp_path / "bad.dag"))
    page.set_input_files("#id_inputs", [str(tmp_path / n) for n in files])
    page.get_by_test_id("submit-dag").click()
    errors = page.get_by_test_id("form-errors")
    expect(errors).to_contain_text("SPLICE is not supported")
    expect(errors).to_contain_text(
        "the DAG has a cycle (init -> step1_im00 -> step2_im00 -> step3_im00 -> init)"
    )
    screenshot(page, "workflow-04-upload-problems")
    page.fill("#id_name", "lsst")
    page.set_input_files("#id_dag_file", str(tmp_path / "lsst.dag"))
    page.set_input_files("#id_inputs", [str(tmp_path / n) for n in files])
    page.get_by_test_id("submit-dag").click()
    expect(page.get_by_test_id("workflow-graph")).to_be_visible()
    expect(page.locator("rect.wf-node")).to_have_count(100)
    screenshot(page, "workflow-05-uploaded")
