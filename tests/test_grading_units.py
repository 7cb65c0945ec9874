"""The grading parts one by one: markers, release, probes, value encoding, comparison, the child process."""

from __future__ import annotations

import importlib.util
import math
import sys

import nbformat
import numpy as np
import pytest
import torch

from optlab.grading import Probe, compare, load_checks, release_notebook, run_notebook
from optlab.grading.cli import main
from optlab.grading.execute import RUNNER, code_cells
from optlab.grading.grade import format_table, score_run
from optlab.grading.markers import strip_hidden_tests, strip_solutions
from optlab.grading.probes import Checks

_spec = importlib.util.spec_from_file_location("_optlab_runner", RUNNER)
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)


# --- markers and release ---------------------------------------------------------------------------

def test_solution_becomes_a_stub_at_the_marker_indentation():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = 2 * x\n    return y\n    ### END SOLUTION\n"
    assert strip_solutions(src) == ("def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n"
                                    "    raise NotImplementedError()")
    assert strip_solutions("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "markdown") == \
        "Why?\nYOUR ANSWER HERE"
    assert strip_solutions("x = 1\n") == "x = 1"  # no marker, no change


def test_hidden_tests_are_removed():
    src = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\nprint('ok')"
    assert strip_hidden_tests(src) == "assert f(1) == 2\nprint('ok')"


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the region opened on line 1"),
])
def test_unbalanced_markers_are_rejected_with_the_line(src, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(src, where="nb, cell 3")
    with pytest.raises(ValueError, match="nb, cell 3"):
        strip_solutions(src, where="nb, cell 3")


def test_strip_solutions_rejects_unknown_cell_type():
    with pytest.raises(ValueError, match="cell_type"):
        strip_solutions("x", "raw")


def test_release_notebook_clears_outputs_drops_hidden_only_cells_and_keeps_the_source():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  execution_count=3, outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert f() == 1\n### END HIDDEN TESTS"),
        nbformat.v4.new_markdown_cell("The end."),
    ])
    before = nbformat.writes(nb)
    out = release_notebook(nb, "source/x.ipynb")
    assert nbformat.writes(nb) == before
    assert [c.cell_type for c in out.cells] == ["code", "markdown"]
    assert out.cells[0].outputs == [] and out.cells[0].execution_count is None
    assert "return 1" not in out.cells[0].source
    assert out.metadata["optlab"]["source"] == "source/x.ipynb"


@pytest.mark.parametrize("source", ["x = 1  ### BEGIN SOLUTION\ny = 2\n### END SOLUTION",
                                    "## BEGIN SOLUTION\nsecret = 1\n## END SOLUTION",
                                    "### BEGIN HIDDEN TESTS:\nassert True"])
def test_mistyped_marker_is_an_error_not_a_leak(source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    with pytest.raises(ValueError, match="source, cell 1: "):
        release_notebook(nb)


# --- probes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(name="two words", code="1"), "identifier"),
    (dict(name="a", code="  "), "non-empty"),
    (dict(name="a", code="x = 1"), "last statement is an expression"),
    (dict(name="a", code="1", points=0), r"Probe 'a': invalid points=0; expected a finite number > 0"),
    (dict(name="a", code="1", rtol=-1e-3), "rtol"),
    (dict(name="a", code="1", atol=math.nan), "atol"),
])
def test_bad_probes_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Probe(**kwargs)


def test_load_checks_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="checks.py"):
        load_checks(tmp_path)
    (tmp_path / "checks.py").write_text("PROBES = []\n")
    with pytest.raises(ValueError, match="non-empty list"):
        load_checks(tmp_path)
    (tmp_path / "checks.py").write_text(
        "from optlab.grading import Probe\nPROBES = [Probe('a', '1'), Probe('a', '2', points=2)]\n")
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        load_checks(tmp_path)
    (tmp_path / "checks.py").write_text(
        "from optlab.grading import Probe\nPROBES = [Probe('a', '1'), Probe('b', '2', points=2.5)]\n")
    assert load_checks(tmp_path).max_points == 3.5


# --- encoding (child side) and comparison (grader side) ---------------------------------------------

def test_encode_values_without_judging_them():
    assert runner.encode(np.float64(2.5)) == {"kind": "number", "value": 2.5}
    assert runner.encode(np.array(2.5)) == {"kind": "number", "value": 2.5}
    enc = runner.encode(np.arange(6.0).reshape(2, 3))
    assert enc["kind"] == "array" and enc["lib"] == "numpy" and enc["shape"] == [2, 3]
    assert enc["data"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    enc = runner.encode(torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert enc["lib"] == "torch" and enc["data"] == [1.0, 2.0] and enc["dtype"] == "float64"
    from optlab.grading import protocol

    assert protocol.value(enc) == enc  # a torch tensor passes the grader's check of the stream
    assert runner.encode((1, [True, None])) == {"kind": "sequence", "items": [
        {"kind": "number", "value": 1.0},
        {"kind": "sequence", "items": [{"kind": "bool", "value": True}, {"kind": "none"}]}]}
    assert runner.encode(object())["kind"] == "other"
    assert runner.encode(np.array(["a"]))["kind"] == "other"  # strings arrays are not numbers


def _num(x):
    return {"kind": "number", "value": x}


def _arr(data, shape=None, lib="numpy"):
    return {"kind": "array", "lib": lib, "shape": shape or [len(data)], "dtype": "float64", "data": data}


def _err(t):
    return {"kind": "error", "type": t, "message": "m", "where": []}


@pytest.mark.parametrize("expected, got, ok", [
    (_num(1.0), _num(1.0 + 1e-9), True),
    (_num(1.0), _num(1.001), False),
    (_num(0.0), _num(1e-12), True),                        # atol near zero
    (_num(math.nan), _num(math.nan), True),
    (_num(math.inf), _num(math.inf), True),
    (_num(math.inf), _num(1e300), False),
    (_num(1.0), _arr([1.0]), False),                        # a number is not a 1-element array
    (_arr([1.0, 2.0]), _arr([1.0, 2.0]), True),
    (_arr([1.0, 2.0]), _arr([1.0, 2.0], lib="torch"), False),
    (_arr([1.0, 2.0]), _arr([1.0, 2.0], shape=[2, 1]), False),
    (_arr([1.0, 2.0]), _arr([1.0, 2.5]), False),
    (_arr([1.0, 2.0]), {"kind": "sequence", "items": [_num(1.0), _num(2.0)]}, False),
    (_err("ValueError"), _err("ValueError"), True),
    (_err("ValueError"), _err("TypeError"), False),
    (_err("ValueError"), _num(0.0), False),
    (_num(0.0), _err("ValueError"), False),
    ({"kind": "sequence", "items": [_num(1.0), _arr([2.0])]},
     {"kind": "sequence", "items": [_num(1.0), _arr([2.0])]}, True),
    ({"kind": "sequence", "items": [_num(1.0)]}, {"kind": "sequence", "items": [_num(1.0), _num(1.0)]}, False),
    ({"kind": "mapping", "items": {"a": _num(1.0)}}, {"kind": "mapping", "items": {"a": _num(1.0)}}, True),
    ({"kind": "mapping", "items": {"a": _num(1.0)}}, {"kind": "mapping", "items": {"b": _num(1.0)}}, False),
    ({"kind": "str", "value": "x"}, {"kind": "str", "value": "y"}, False),
    ({"kind": "bool", "value": True}, {"kind": "bool", "value": True}, True),
])
def test_compare(expected, got, ok):
    reason = compare(expected, got, rtol=1e-6, atol=1e-9)
    assert (reason is None) == ok, reason
    if not ok:
        assert isinstance(reason, str) and reason


def test_score_run_gives_points_only_for_matches():
    from optlab.grading.execute import RunResult

    checks = Checks((Probe("a", "1", points=2), Probe("b", "2"), Probe("c", "3")))
    expected = {"a": _num(1.0), "b": _num(2.0), "c": _num(3.0)}
    run = RunResult(status="timeout", values={"a": _num(1.0), "b": _num(2.5)}, stopped_in="probe c")
    score = score_run("s1", run, expected, checks, timeout=7)
    assert score.points == {"a": 2.0, "b": 0.0, "c": 0.0} and score.total == 2.0 and score.max_points == 4.0
    assert any("b: value differs" in n for n in score.notes)
    assert any("time limit of 7 s reached in probe c" in n for n in score.notes)
    table = format_table([score])
    assert "#1: a" in table and "2/4" in table and "timeout" in table


# --- the child process -----------------------------------------------------------------------------

def test_child_runs_cells_in_order_records_errors_and_keeps_going(monkeypatch):
    monkeypatch.setenv("OPTLAB_TEST_SECRET", "do-not-leak")
    cells = [
        "import sys, os\nx = 2\nprint('student output goes nowhere')",
        "raise SystemExit(3)",                     # a cell may not end the run
        "%timeit x\ny = 1",                        # rejected: the whole cell is skipped
        "%matplotlib inline\nz = x + 1",           # %matplotlib is harmless and ignored
        "1 / 0",
        "w = x * 10",
    ]
    probes = [
        Probe("x", "x"), Probe("y_defined", "'y' in dir()"), Probe("z", "z"), Probe("w", "w"),
        Probe("sets", "leak = 1\nleak"), Probe("isolated", "leak"),            # probes do not share state
        Probe("env", "os.environ.get('OPTLAB_TEST_SECRET')"),
        Probe("own_env", "[os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MPLBACKEND', 'HOME')]"),
        Probe("light", "sorted(m for m in ('numpy', 'torch') if m in sys.modules)"),
        Probe("setup", "helper"),
    ]
    run = run_notebook(cells, probes, setup="helper = 5", timeout=60)
    assert run.status == "errors"
    assert {i: e["type"] for i, e in run.cell_errors.items()} == {
        2: "SystemExit", 3: "MagicNotSupported", 5: "ZeroDivisionError"}
    assert "line 1" in run.cell_errors[3]["message"]
    v = run.values
    assert v["x"] == _num(2.0) and v["z"] == _num(3.0) and v["w"] == _num(20.0)
    assert v["y_defined"] == {"kind": "bool", "value": False}
    assert v["sets"] == _num(1.0) and v["isolated"]["kind"] == "error" and v["isolated"]["type"] == "NameError"
    assert v["env"] == {"kind": "none"}                 # the child does not inherit the grader's environment
    # ...but gets its own, inside the sandbox too: one thread (two OpenMP threads on a loaded 2-core
    # machine made torch's autograd ten times slower), a headless plot backend, a home in /tmp
    assert v["own_env"] == {"kind": "sequence", "items": [{"kind": "str", "value": "1"}, {"kind": "str", "value": "Agg"},
                                                          {"kind": "str", "value": "/tmp"}]}
    assert v["light"] == {"kind": "sequence", "items": []}  # nothing heavy imported unless the notebook does
    assert v["setup"] == _num(5.0)


def test_child_that_dies_is_reported_as_crashed():
    run = run_notebook(["a = 1", "import os\nos._exit(7)", "b = 2"], [Probe("a", "a")], timeout=60)
    assert run.status == "crashed" and run.returncode == 7 and run.stopped_in == "cell 2"
    assert run.values == {}


def test_time_limit_keeps_what_finished():
    probes = [Probe("fast", "1 + 1"), Probe("slow", "while True:\n    pass\n0"), Probe("after", "3")]
    run = run_notebook(["x = 1"], probes, timeout=1.5)
    assert run.status == "timeout" and run.stopped_in == "probe slow"
    assert run.values == {"fast": _num(2.0)}


def test_run_notebook_rejects_bad_arguments():
    with pytest.raises(ValueError, match="run_notebook: invalid timeout=0; expected a finite number > 0"):
        run_notebook(["x = 1"], timeout=0)
    with pytest.raises(TypeError, match="run_notebook: invalid cells of type str; expected a list of source strings"):
        run_notebook("x = 1")


def test_code_cells_skips_tagged_cells_and_rejects_non_notebooks(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("import torch", metadata={"tags": ["skip-grading"]})])
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert code_cells(path) == ["a = 1"]
    assert code_cells(path, skip_tag=None) == ["a = 1", "import torch"]
    (tmp_path / "bad.ipynb").write_text("{")
    with pytest.raises(ValueError, match="bad.ipynb is not a readable Jupyter notebook"):
        code_cells(tmp_path / "bad.ipynb")


# --- command line ----------------------------------------------------------------------------------

def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["grade", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert "invalid submissions: " in capsys.readouterr().err
    assert main(["grade", str(tmp_path), str(tmp_path)]) == 2
    assert "holds no .ipynb file" in capsys.readouterr().err
    assert main(["release", str(tmp_path)]) == 2
    assert "expected exactly one notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path), str(tmp_path), "--timeout", "soon"])


def test_grade_rejects_bad_jobs_and_timeout(tmp_path):
    from optlab.grading import grade_assignment

    with pytest.raises(ValueError, match="grade_assignment: invalid jobs=0; expected a positive integer"):
        grade_assignment(tmp_path, tmp_path, jobs=0)
    with pytest.raises(ValueError, match="grade_assignment: invalid timeout=-1; expected a finite number > 0"):
        grade_assignment(tmp_path, tmp_path, timeout=-1)
    with pytest.raises(ValueError, match="grade_assignment: invalid reference_timeout=0"):
        grade_assignment(tmp_path, tmp_path, reference_timeout=0)


def test_runner_is_standard_library_only():
    # The child must start fast and import numpy/torch only if the notebook does.
    source = RUNNER.read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from ")) or line.strip().startswith("import ")}
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}, imports


def test_the_reference_run_has_its_own_time_limit_and_the_child_reports_its_file_limit(tmp_path):
    from optlab.grading import GradingError, grade_assignment

    (tmp_path / "source").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]),
                   tmp_path / "source" / "slow.ipynb")
    (tmp_path / "checks.py").write_text("from optlab.grading import Probe\nPROBES = [Probe('one', '1')]\n")
    (tmp_path / "subs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), tmp_path / "subs" / "s.ipynb")
    with pytest.raises(GradingError, match="time limit of 1 s"):  # not silently raised to a minimum
        grade_assignment(tmp_path, tmp_path / "subs", timeout=60, reference_timeout=1)
    from optlab.grading import Limits

    run = run_notebook(["x = 1"], timeout=60, limits=Limits(file_mb=1, open_files=99))
    assert run.limits["RLIMIT_FSIZE"] == 2**20 and run.limits["RLIMIT_NOFILE"] == 99
    assert run.limits["RLIMIT_CORE"] == 0


# --- the result stream as hostile data (grader side) -------------------------------------------------

def _stream(*events) -> bytes:
    import json

    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


_START = {"event": "start", "limits": {"RLIMIT_AS": 1}}


def test_read_stream_accepts_exactly_the_job_sequence():
    from optlab.grading.protocol import read_stream

    ok = _stream(_START, {"event": "cell", "index": 1}, {"event": "cell_done", "index": 1, "error": None},
                 {"event": "probe", "name": "a"},
                 {"event": "probe_done", "name": "a", "value": {"kind": "number", "value": "nan"}}, {"event": "done"})
    events, problem = read_stream(ok, 1, ["a"])
    assert problem is None and [e[0] for e in events][-1] == "done"
    assert math.isnan(events[4][2]["value"]["value"])
    events, problem = read_stream(ok + b'{"event": "done"}\n', 1, ["a"])
    assert "after the done event" in problem
    events, problem = read_stream(ok[: ok.index(b'{"event": "probe"')] + ok[ok.index(b'{"event": "probe_done"'):], 1, ["a"])
    assert "'probe_done' event where 'probe' was due" in problem and len(events) == 3
    _, problem = read_stream(ok.replace(b'"name": "a"', b'"name": "b"', 1), 1, ["a"])
    assert "probe 'b' where 'a' was due" in problem
    _, problem = read_stream(ok.replace(b'"index": 1}', b'"index": 1, "x": 0}', 1), 1, ["a"])
    assert "fields" in problem
    _, problem = read_stream(ok.replace(b'"nan"', b"NaN"), 1, ["a"])
    assert "NaN is not allowed" in problem
    _, problem = read_stream(b"[" * 100000 + b"]" * 100000 + b"\n", 1, ["a"])
    assert "line 1 is not JSON" in problem
    events, problem = read_stream(ok[:-3], 1, ["a"])  # cut by a kill: the last line is dropped
    assert problem is None and events[-1][0] == "probe_done"


@pytest.mark.parametrize("value, problem", [
    ({"kind": "array", "lib": "numpy", "shape": [3], "dtype": "float64", "data": []}, "data of length 0, expected 3"),
    ({"kind": "array", "lib": "numpy", "shape": [2, 2], "dtype": "float64", "data": [1, 2, 3, 4, 5]}, "expected 4"),
    ({"kind": "array", "lib": "jax", "shape": [1], "dtype": "float64", "data": [1]}, "not 'numpy' or 'torch'"),
    ({"kind": "array", "lib": "numpy", "shape": [-1], "dtype": "float64", "data": []}, "sizes >= 0"),
    ({"kind": "number", "value": "abc"}, "not a number"),
    ({"kind": "number", "value": True}, "not a number"),
    ({"kind": "number", "value": 10**400}, "too large"),
    ({"kind": "number", "value": 1e308 * 10}, "not finite"),
    ({"kind": "sequence", "items": {"a": 1}}, "not a list"),
    ({"kind": "mapping", "items": [1]}, "not an object"),
    ({"kind": "number", "value": 1.0, "extra": 1}, "fields"),
    ({"kind": "str", "value": "x" * 5000}, "characters"),
    ({"kind": "huh"}, "unknown kind"),
    ([1], "not an object with a kind"),
])
def test_values_are_checked_against_the_schema(value, problem):
    from optlab.grading.protocol import ProtocolError
    from optlab.grading.protocol import value as check_value

    with pytest.raises(ProtocolError, match=problem):
        check_value(value)


def test_nesting_is_bounded():
    from optlab.grading.protocol import MAX_DEPTH, ProtocolError
    from optlab.grading.protocol import value as check_value

    v = {"kind": "none"}
    for _ in range(MAX_DEPTH + 1):
        v = {"kind": "sequence", "items": [v]}
    with pytest.raises(ProtocolError, match="nested"):
        check_value(v)


def test_an_invalid_value_scores_zero_for_that_probe_only():
    from optlab.grading.execute import RunResult

    checks = Checks((Probe("a", "1"), Probe("b", "2")))
    run = RunResult(status="ok", values={"a": {"kind": "invalid", "problem": "made up"}, "b": _num(2.0)})
    score = score_run("s", run, {"a": _num(1.0), "b": _num(2.0)}, checks, timeout=1)
    assert score.points == {"a": 0.0, "b": 1.0}
    assert any("a: an invalid value (made up)" in n for n in score.notes)


# --- dependencies and per-student seeds ---------------------------------------------------------------

def test_a_required_probe_must_earn_its_points_first():
    from optlab.grading.execute import RunResult

    checks = Checks((Probe("value", "1", points=2), Probe("raises", "2", requires=("value",)),
                     Probe("chain", "3", requires="raises")))
    expected = {"value": _num(1.0), "raises": _err("ValueError"), "chain": _num(3.0)}
    honest = RunResult(status="ok", values=dict(expected))
    assert score_run("s", honest, expected, checks, timeout=1).total == 4.0
    shortcut = RunResult(status="ok", values={"value": _num(0.0), "raises": _err("ValueError"), "chain": _num(3.0)})
    score = score_run("s", shortcut, expected, checks, timeout=1)
    assert score.points == {"value": 0.0, "raises": 0.0, "chain": 0.0}  # transitively
    assert any("raises: right, but counts only when" in n and "not earned: value" in n for n in score.notes)


def test_requires_must_name_earlier_probes(tmp_path):
    with pytest.raises(ValueError, match="requires"):
        Probe("a", "1", requires=("a",))
    with pytest.raises(ValueError, match="requires"):
        Probe("a", "1", requires=(3,))
    (tmp_path / "checks.py").write_text(
        "from optlab.grading import Probe\nPROBES = [Probe('a', '1', requires=('b',)), Probe('b', '2')]\n")
    with pytest.raises(ValueError, match=r"probe 'a' requires \['b'\]"):
        load_checks(tmp_path)


def test_seeded_probes_see_the_student_seed_and_the_reference_covers_every_seed():
    from optlab.grading import student_seed
    from optlab.grading.execute import RunResult
    from optlab.grading.probes import job_probes, probe_key

    assert student_seed("alice") == student_seed("alice") != student_seed("bob")
    assert 0 <= student_seed("alice") < 2**32
    probes = [Probe("fixed", "1"), Probe("mine", "seed * 2", seeded=True)]
    assert [e["name"] for e in job_probes(probes, [5, 3, 5])] == ["fixed", "mine@3", "mine@5"]
    ref = run_notebook([], probes, seeds=[3, 5], timeout=60)
    assert ref.values["mine@3"] == _num(6.0) and ref.values["mine@5"] == _num(10.0)
    s = student_seed("alice")
    checks = Checks(tuple(probes))
    expected = {"fixed": _num(1.0), f"mine@{s}": _num(2.0 * s), "mine@7": _num(14.0)}
    leaked = RunResult(status="ok", values={"fixed": _num(1.0), probe_key(probes[1], s): _num(14.0)})
    assert score_run("alice", leaked, expected, checks, timeout=1).points == {"fixed": 1.0, "mine": 0.0}
    own = RunResult(status="ok", values={"fixed": _num(1.0), f"mine@{s}": _num(2.0 * s)})
    assert score_run("alice", own, expected, checks, timeout=1).total == 2.0


# --- outputs --------------------------------------------------------------------------------------------

def test_student_text_is_escaped_and_formula_safe():
    from optlab.grading.report import clean_text, csv_cell

    assert clean_text("a\nb\x1b[31m\u202e\t") == "a\\x0ab\\x1b[31m\\u202e\\x09"
    assert clean_text("déjà vu") == "déjà vu"
    for text in ("=1+2", "+1", "-1", "@SUM(A1)"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("\t=1") == "\\x09=1"  # escaped first: no longer a formula
    assert csv_cell("alice") == "alice"


def test_csv_and_feedback_are_written_atomically_and_a_link_is_replaced_not_followed(tmp_path):
    from optlab.grading.report import Score, read_record, write_feedback

    target = tmp_path / "precious.txt"
    target.write_text("keep")
    (tmp_path / "scores.csv").symlink_to(target)
    score = Score("=bob", {"a": 1.0}, 1.0, 1.0, "ok", ["x\ny"], "abc")
    from optlab.grading import write_csv

    write_csv([score], tmp_path / "scores.csv")
    assert target.read_text() == "keep" and not (tmp_path / "scores.csv").is_symlink()
    text = (tmp_path / "scores.csv").read_text()
    assert "'=bob" in text and "x\\x0ay" in text and len(text.splitlines()) == 2
    write_feedback(Score("bob", {"a": 1.0}, 1.0, 1.0, "ok", ["n"], "abc"), tmp_path, "cfg")
    assert read_record(tmp_path / "bob.json")[1] == "cfg"
    assert "total: 1/1" in (tmp_path / "bob.txt").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- intake, integrity, no sandbox ------------------------------------------------------------------

def _tiny_assignment(tmp_path, probe_code="f()"):
    (tmp_path / "a" / "source").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f():\n    return 2")]),
                   tmp_path / "a" / "source" / "t.ipynb")
    (tmp_path / "a" / "checks.py").write_text(f"from optlab.grading import Probe\nPROBES = [Probe('f', {probe_code!r})]\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    for student, body in [("ann", "return 2"), ("ben", "return 3"), ("cid", "return 2")]:
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"def f():\n    {body}")]),
                       subs / f"{student}.ipynb")
    return tmp_path / "a", subs


def test_intake_copies_hashes_and_refuses_links(tmp_path):
    import hashlib

    from optlab.grading.grade import intake

    _, subs = _tiny_assignment(tmp_path)
    (subs / "link.ipynb").symlink_to(subs / "ann.ipynb")
    private = tmp_path / "private"
    private.mkdir()
    taken = {s.student: s for s in intake(subs, private)}
    assert taken["ann"].sha256 == hashlib.sha256((subs / "ann.ipynb").read_bytes()).hexdigest()
    assert taken["ann"].path.parent == private and taken["ann"].path.read_bytes() == (subs / "ann.ipynb").read_bytes()
    assert taken["link"].path is None and "symbolic link" in taken["link"].problem


def test_grading_refuses_when_its_files_change_during_the_run(tmp_path):
    from optlab.grading import GradingError
    from optlab.grading.grade import fingerprint, verify

    assignment, _ = _tiny_assignment(tmp_path)
    baseline = fingerprint(assignment)
    verify(assignment, baseline)
    with open(assignment / "checks.py", "a") as f:
        f.write("# edited\n")
    with pytest.raises(GradingError, match="checks.py changed since this grading run started"):
        verify(assignment, baseline)


def test_without_a_sandbox_the_grader_refuses_unless_told(tmp_path, monkeypatch, capsys):
    import optlab.grading.grade as grade

    assignment, subs = _tiny_assignment(tmp_path)
    monkeypatch.setattr(grade, "sandbox_problem", lambda: "bubblewrap is not installed")
    assert main(["grade", str(assignment), str(subs)]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap is not installed" in err and "--no-sandbox" in err
    assert main(["grade", str(assignment), str(subs), "--no-sandbox"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("ann", "ben", "cid"))]
    assert len(rows) == 3 and all("NOT SANDBOXED" in r for r in rows)


def test_shards_merge_into_the_full_table_and_a_rerun_skips_what_is_graded(tmp_path, capsys):
    import json

    from optlab.grading import grade_assignment

    assignment, subs = _tiny_assignment(tmp_path)
    full = grade_assignment(assignment, subs, jobs=2)
    assert [(s.student, s.total) for s in full] == [("ann", 1.0), ("ben", 0.0), ("cid", 1.0)]
    one = grade_assignment(assignment, subs, shard=(1, 2), feedback=tmp_path / "f1")
    two = grade_assignment(assignment, subs, shard=(2, 2), feedback=tmp_path / "f2")
    assert sorted(s.student for s in one + two) == ["ann", "ben", "cid"] and len(one) == 2
    assert main(["merge", str(tmp_path / "f1"), str(tmp_path / "f2"), "--out", str(tmp_path / "m.csv")]) == 0
    merged = (tmp_path / "m.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in merged[1:]] == [["ann", "1"], ["ben", "0"], ["cid", "1"]]
    # a rerun reuses a record with the same submission hash and configuration: mark one to see it
    record = tmp_path / "f1" / "ann.json"
    data = json.loads(record.read_text())
    data["notes"] = ["from the record"]
    record.write_text(json.dumps(data))
    again = {s.student: s for s in grade_assignment(assignment, subs, shard=(1, 2), feedback=tmp_path / "f1")}
    assert again["ann"].notes == ["from the record"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f():\n    return 5")]),
                   subs / "ann.ipynb")  # a new submission is graded again
    again = {s.student: s for s in grade_assignment(assignment, subs, shard=(1, 2), feedback=tmp_path / "f1")}
    assert again["ann"].notes != ["from the record"] and again["ann"].total == 0.0
    (assignment / "checks.py").write_text("from optlab.grading import Probe\nPROBES = [Probe('f', 'f() + 0')]\n")
    grade_assignment(assignment, subs, shard=(1, 2), feedback=tmp_path / "f1")
    from optlab.grading import merge_records

    with pytest.raises(ValueError, match="different checks"):  # f2 was graded with the old checks
        merge_records([tmp_path / "f1", tmp_path / "f2"])
    capsys.readouterr()
    assert main(["grade", str(assignment), str(subs), "--shard", "3/2"]) == 2
    assert "invalid shard='3/2'; expected i/n" in capsys.readouterr().err


# --- written answers graded by hand ------------------------------------------------------------------

def _manual_cell(text, grade_id, points):
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["nbgrader"] = {"solution": True, "grade": True, "task": False, "locked": False,
                                 "grade_id": grade_id, "points": points, "schema_version": 3}
    return cell


def test_manual_items_are_the_markdown_answers_marked_as_nbgrader_marks_them(tmp_path):
    from optlab.grading.probes import manual_items

    plain = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nnot marked\n### END SOLUTION")
    code = nbformat.v4.new_code_cell("x = 1")
    code.metadata["nbgrader"] = {"solution": True, "grade": True, "grade_id": "code_cell", "points": 1}
    nb = nbformat.v4.new_notebook(cells=[_manual_cell("Why?", "why", 2), plain, code, _manual_cell("How?", "how", 1.5)])
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert manual_items(tmp_path / "t.ipynb") == (("why", 2.0), ("how", 1.5))


@pytest.mark.parametrize("cells, message", [
    ([("a b", 1)], "grade_id"),
    ([("why", 0)], "points"),
    ([("why", 1), ("why", 2)], "used twice"),
])
def test_manual_items_reject_bad_marks_naming_the_cell(tmp_path, cells, message):
    from optlab.grading.probes import manual_items

    nb = nbformat.v4.new_notebook(cells=[_manual_cell("?", g, p) for g, p in cells])
    nbformat.write(nb, tmp_path / "t.ipynb")
    with pytest.raises(ValueError, match=message) as err:
        manual_items(tmp_path / "t.ipynb")
    assert "t.ipynb, cell" in str(err.value)


def test_manual_items_are_listed_as_manual_and_never_scored(tmp_path):
    from optlab.grading import grade_assignment, write_csv
    from optlab.grading.report import feedback_text, read_record

    assignment, subs = _tiny_assignment(tmp_path)
    nb = nbformat.read(assignment / "source" / "t.ipynb", as_version=4)
    nb.cells.append(_manual_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "why", 2))
    nbformat.write(nb, assignment / "source" / "t.ipynb")
    assert load_checks(assignment).manual == (("why", 2.0),)
    scores = {s.student: s for s in grade_assignment(assignment, subs, timeout=60, feedback=tmp_path / "fb")}
    ann, ben = scores["ann"], scores["ben"]
    assert (ann.total, ann.max_points, ann.manual) == (1.0, 1.0, {"why": 2.0})
    assert (ben.total, ben.manual) == (0.0, {"why": 2.0})
    table = format_table([ann, ben])
    assert "#2: why (manual, 2 points)" in table
    assert [line.split()[:4] for line in table.splitlines()[3:]] == [["ann", "1", "manual", "1/1"],
                                                                     ["ben", "0", "manual", "0/1"]]
    write_csv([ann, ben], tmp_path / "scores.csv")
    import csv

    rows = list(csv.DictReader(open(tmp_path / "scores.csv", encoding="utf-8")))
    assert [(r["why"], r["total"], r["max"], r["manual_max"]) for r in rows] == [("manual", "1", "1", "2"),
                                                                               ("manual", "0", "1", "2")]
    assert "why  manual (graded by hand, 2 points)" in feedback_text(ann)
    assert "total: 1/1 (automatic; 2 more points graded by hand)" in feedback_text(ann)
    assert read_record(tmp_path / "fb" / "ann.json")[0].manual == {"why": 2.0}
