"""The DAG grammar: what DAGMan files may say, and a line-numbered message for everything else."""

from __future__ import annotations

import pytest

from orchestration.batch.base import BatchValidationError
from orchestration.batch.dag import (
    MAX_NODES,
    StageSpec,
    check_workflow,
    form_dag,
    read_dag,
    uses_retry,
    with_retry,
)

SUB = "executable = run.sh\narguments = $(item)\noutput = $(item).out\nerror = $(item).err\nlog = $(item).log\nqueue\n"
FILES = {"a.sub": SUB, "run.sh": "#!/bin/sh\n", "pre.sh": "#!/bin/sh\n", "post.sh": "#!/bin/sh\n"}


def problems(text: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(BatchValidationError) as exc:
        check_workflow(text, FILES if files is None else files)
    return exc.value.problems


def test_it_reads_every_supported_statement() -> None:
    dag = read_dag(
        """# the LSST shape, small
JOB init a.sub
JOB s1 a.sub DONE
job s2 a.sub
FINAL end a.sub
PARENT init CHILD s1 s2
VARS s1 item="one" other="two words, @home"
VARS ALL_NODES item="x"
RETRY s2 3 UNLESS-EXIT 2
SCRIPT PRE s1 pre.sh $JOB
SCRIPT POST s1 post.sh $JOB $RETURN
PRIORITY s2 10
CATEGORY s2 heavy
MAXJOBS heavy 2
ABORT-DAG-ON s2 3 RETURN 1
DONE init
"""
    )
    by = {n.name: n for n in dag.nodes}
    assert [n.name for n in dag.nodes] == ["init", "s1", "s2", "end"]  # parents first, FINAL last
    assert by["init"].done and by["s1"].done and not by["s2"].done
    assert by["s1"].parents == ["init"] and by["init"].children == ["s1", "s2"]
    assert by["s1"].vars == {"item": "x", "other": "two words, @home"}
    assert (by["s2"].retries, by["s2"].unless_exit, by["s2"].priority, by["s2"].category) == (
        3,
        2,
        10,
        "heavy",
    )
    assert (by["s2"].abort_exit, by["s2"].abort_return) == (3, 1)
    assert by["s1"].pre is not None and by["s1"].pre.args == ["$JOB"]
    assert by["end"].final and dag.maxjobs == {"heavy": 2}


def test_it_lists_every_problem_at_once_with_line_numbers() -> None:
    got = problems(
        "JOB A a.sub\nJOB A a.sub\nPARENT A CHILD ghost\nRETRY A lots\nFROB x\nJOB B a.sub DIR /tmp\nPRIORITY A high\n"
    )
    assert got == [
        "line 2: node A is defined twice (first on line 1).",
        "line 3: there is no node ghost (no JOB line defines it).",
        "line 4: RETRY takes a node, a number from 0 to 100 and optionally UNLESS-EXIT code.",
        "line 5: 'FROB' is not a DAG statement the portal accepts (JOB, FINAL, PARENT ... CHILD, VARS, RETRY, "
        "SCRIPT, PRIORITY, CATEGORY, MAXJOBS, ABORT-DAG-ON, DONE).",
        "line 6: DIR is not supported: every node runs from the workflow's own directory.",
        "line 7: PRIORITY takes a node and a whole number.",
    ]


def test_it_names_the_nodes_of_a_cycle() -> None:
    got = problems(
        "JOB a a.sub\nJOB b a.sub\nJOB c a.sub\nJOB d a.sub\nPARENT a CHILD b\nPARENT b CHILD c\nPARENT c CHILD b\nPARENT c CHILD d\n"
    )
    assert len(got) == 1
    assert "cycle (b -> c -> b)" in got[0] and got[0].startswith("line 2: ")


def test_it_refuses_subdag_splice_and_others_clearly() -> None:
    got = problems(
        "JOB a a.sub\nSUBDAG EXTERNAL inner inner.dag\nSPLICE s other.dag\nINCLUDE more.dag\nCONFIG dag.config\nSCRIPT DEFER 1 10 PRE a pre.sh\n"
    )
    assert got == [
        "line 2: SUBDAG EXTERNAL is not supported: put the inner DAG's nodes into this file.",
        "line 3: SPLICE is not supported: put the spliced DAG's nodes into this file.",
        "line 4: INCLUDE is not supported: put everything in one DAG file.",
        "line 5: CONFIG is not supported: the portal configures DAGMan itself.",
        "line 6: SCRIPT DEFER is not supported.",
    ]


def test_a_node_without_its_submit_file_or_script_is_named() -> None:
    got = problems('JOB a missing.sub\nJOB b a.sub\nVARS b item="x"\nSCRIPT PRE b nothere.sh\n')
    assert "line 1: node a: its submit file missing.sub was not uploaded." in got
    assert "line 4: the script nothere.sh was not uploaded." in got


def test_each_nodes_submit_file_is_vetted_as_a_batch_submit_file() -> None:
    bad = "executable = run.sh\ngetenv = true\noutput = $(item).out\nqueue\n"
    got = problems('JOB a bad.sub\nVARS a item="x"\n', {"bad.sub": bad, "run.sh": ""})
    assert got[0].startswith("line 1: node a (bad.sub): line 2: getenv is not allowed")


def test_vars_reach_the_job_as_macros_and_messages_keep_the_files_line_numbers() -> None:
    wf = check_workflow('JOB a a.sub\nVARS a item="img1"\n', FILES)
    job = wf.nodes[0].parsed.jobs[0]
    assert (job.argv, job.output, job.log) == (["img1"], "img1.out", "img1.log")
    sub = "executable = run.sh\noutput = $(item).out\nuniverse = docker\nqueue\n"
    got = problems('JOB a s.sub\nVARS a item="x"\n', {"s.sub": sub, "run.sh": ""})
    assert any("line 3: universe = docker is not allowed" in p for p in got), got


def test_nodes_sharing_a_submit_file_get_the_same_verdict_in_one_pass() -> None:
    text = "".join(f'JOB n{i} a.sub\nVARS n{i} item="img{i}"\n' for i in range(50))
    wf = check_workflow(text, FILES)
    assert [v.parsed.jobs[0].argv for v in wf.nodes] == [[f"img{i}"] for i in range(50)]
    assert all(v.parsed.jobs[0].proc == 0 for v in wf.nodes)
    # The same outputs for every node: each node on its own is fine, so the DAG is too.
    same = "executable = run.sh\noutput = same.out\nerror = same.err\nlog = same.log\narguments = $(item)\nqueue\n"
    wf = check_workflow(text.replace("a.sub", "s.sub"), {"s.sub": same, "run.sh": ""})
    assert len(wf.nodes) == 50


def test_pre_and_post_scripts_run_inside_the_nodes_job() -> None:
    wf = check_workflow(
        'JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a pre.sh $JOB one\nSCRIPT POST a post.sh $RETURN\n', FILES
    )
    node = wf.nodes[0]
    assert node.parsed.executable == "dagnode-a.sh"
    assert set(node.parsed.transfer_input_files) == {"run.sh", "pre.sh", "post.sh"}
    assert "./pre.sh a one" in node.wrapper and './post.sh "$rc"' in node.wrapper
    assert './run.sh "$@"' in node.wrapper


def test_final_node_rules() -> None:
    got = problems("JOB a a.sub\nFINAL f a.sub\nFINAL g a.sub\nPARENT a CHILD f\n")
    assert "line 3: only one FINAL node is allowed (f is the FINAL node)." in got
    assert "line 4: the FINAL node f cannot have parents or children: it runs last by itself." in got


def test_the_form_makes_the_lsst_and_canfar_shapes() -> None:
    steps = [StageSpec("step1", "s1.sh"), StageSpec("step2", "s2.sh"), StageSpec("step3", "s3.sh")]
    items = [f"img{i}" for i in range(33)]
    text, submits = form_dag(items, steps, StageSpec("init", "init.sh"), None)
    files = {**submits, "s1.sh": "", "s2.sh": "", "s3.sh": "", "init.sh": ""}
    wf = check_workflow(text, files)
    assert len(wf.nodes) == 100 and wf.nodes[0].node.name == "init"
    assert len(wf.nodes[0].node.children) == 33
    text, submits = form_dag(
        ["a", "b"], [StageSpec("catalogue", "cat.sh")], None, StageSpec("merge", "merge.sh")
    )
    wf = check_workflow(text, {**submits, "cat.sh": "", "merge.sh": ""})
    assert [v.node.name for v in wf.nodes] == ["catalogue_a", "catalogue_b", "merge"]
    assert wf.nodes[2].node.parents == ["catalogue_a", "catalogue_b"]


def test_too_many_nodes_are_refused_with_one_message() -> None:
    text = "".join(f"JOB n{i} a.sub\n" for i in range(MAX_NODES + 5))
    with pytest.raises(BatchValidationError) as exc:
        read_dag(text)
    assert exc.value.problems == [
        f"line {MAX_NODES + 1}: the DAG has more than {MAX_NODES} nodes, the limit."
    ]


def test_an_empty_dag_is_refused() -> None:
    assert problems("# nothing\n") == ["The DAG has no nodes: add 'JOB name file.sub' lines."]


def test_script_macros_the_portal_fills_in_are_accepted_and_dagmans_own_refused_by_name() -> None:
    wf = check_workflow(
        'JOB a a.sub\nVARS a item="x"\nRETRY a 3\nSCRIPT PRE a pre.sh $JOB $RETRY $MAX_RETRIES\n'
        "SCRIPT POST a post.sh try=$RETRY $RETURN\n",
        FILES,
    )
    wrapper = wf.nodes[0].wrapper
    assert './pre.sh a "$PORTAL_DAG_RETRY" 3' in wrapper
    assert './post.sh try="$PORTAL_DAG_RETRY" "$rc"' in wrapper
    got = problems(
        'JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a pre.sh $RETURN\nSCRIPT POST a post.sh $JOBID $DAG_STATUS\n'
        'JOB b a.sub\nVARS b item="y"\nSCRIPT PRE b pre.sh $HOME\n'
    )
    assert got == [
        "line 3: $RETURN is the node job's exit code: only a POST script gets it ($JOB, $RETRY, $MAX_RETRIES).",
        "line 4: $JOBID is not supported: scripts run inside the node's job, where the portal fills in "
        "$JOB, $RETRY, $MAX_RETRIES, $RETURN.",
        "line 4: $DAG_STATUS is not supported: scripts run inside the node's job, where the portal fills in "
        "$JOB, $RETRY, $MAX_RETRIES, $RETURN.",
        "line 7: $HOME is not a script macro the portal fills in ($JOB, $RETRY, $MAX_RETRIES).",
    ]


def test_each_attempt_gets_its_retry_number_written_in() -> None:
    wrapper = (
        check_workflow('JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a pre.sh $RETRY\n', FILES).nodes[0].wrapper
    )
    assert uses_retry(wrapper)
    second = with_retry(wrapper, 2)
    assert "PORTAL_DAG_RETRY=2\n" in second and "${PORTAL_DAG_RETRY:-0}" not in second
    plain = check_workflow('JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a pre.sh $JOB\n', FILES).nodes[0].wrapper
    assert not uses_retry(plain)


def test_vars_cannot_take_the_portals_own_names() -> None:
    got = problems('JOB a a.sub\nVARS a item="x" PortalDagRetry="7"\n')
    assert got == [
        "line 2: VARS PortalDagRetry would set a submit command or a name HTCondor sets itself; choose another name."
    ]
