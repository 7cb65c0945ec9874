"""The README's first command serves JupyterLab on 127.0.0.1, on the student's own copies of the lectures.

Two starts on one working folder, as a student's first and second day: the first copies the lectures
and serves them; a notebook saved through JupyterLab changes the copy, never lectures/; the second
start keeps that edit. Neither start logs an avoidable warning, and the news pop-up is off.
"""

import asyncio
import concurrent.futures
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from browser_support import free_port

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted(p.name for p in (ROOT / "lectures").glob("*.ipynb"))
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"
AVOIDABLE = ["is not trusted", "websocket_ping_timeout", "running over TCP without encryption"]


class Course:
    """`bash scripts/course.sh` on the environment running the tests, with its own Jupyter folders."""

    def __init__(self, tmp_path, workdir: Path, name: str):
        self.port, self.token = free_port(), "optlab-test-token"
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, OPTLAB_VENV=sys.prefix, OPTLAB_NO_INSTALL="1", OPTLAB_PORT=str(self.port),
                   OPTLAB_OPEN_BROWSER="False", OPTLAB_WORKDIR=str(workdir), JUPYTER_TOKEN=self.token)
        env.pop("PYTHONPATH", None)
        for var in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"]:
            env[var] = str(tmp_path / var.lower())  # shared by both starts, as a student's own would be
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "course.sh")], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def request(self, path: str, method="GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req, timeout=60)

    def json(self, path: str, method="GET", body=None):
        return json.load(self.request(path, method, body))

    def wait_until_served(self):
        deadline = time.time() + 120
        while True:
            try:
                return self.request("/lab")
            except OSError:
                assert self.proc.poll() is None, self.log_text()[-3000:]
                assert time.time() < deadline, "course.sh did not serve within 120 s"
                time.sleep(0.5)

    def run_code(self, code: str) -> str:
        """Start a kernel, run ``code`` over the kernel websocket as JupyterLab does, return its stdout."""
        from tornado.websocket import websocket_connect

        kernel = self.json("/api/kernels", "POST", {"name": "python3"})["id"]
        session = uuid.uuid4().hex

        async def execute():
            ws = await websocket_connect(self.url(f"/api/kernels/{kernel}/channels?session_id={session}")
                                         .replace("http://", "ws://"))
            header = {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": session,
                      "username": "", "date": "", "version": "5.3"}
            await ws.write_message(json.dumps({
                "header": header, "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False}}))
            # outputs come on iopub, the reply on shell, in no fixed order between the two channels; the
            # kernel's iopub "idle" status for the request comes after all of its outputs
            out, replied, idle = [], False, False
            while not (replied and idle):
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 90))
                if msg["parent_header"].get("msg_id") != header["msg_id"]:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                replied = replied or msg["msg_type"] == "execute_reply"
                idle = idle or (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle")
            ws.close()
            return "".join(out)

        try:
            # a thread of its own: the session's browser fixture (Playwright) may hold a running event loop
            # in this one, and asyncio.run refuses to start inside it
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, execute()).result()
        finally:
            self.request(f"/api/kernels/{kernel}", "DELETE")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()


def page_config(page: bytes) -> dict:
    found = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "no jupyter-config-data in the /lab page"
    return json.loads(found.group(1))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_course_command_serves_the_students_copies(tmp_path):
    work = tmp_path / "work"
    lecture = LECTURES[0]
    course_version = sha256(ROOT / "lectures" / lecture)

    first = Course(tmp_path, work, "first")
    try:
        page = first.wait_until_served()
        assert page.status == 200
        html = page.read()
        assert b"JupyterLab" in html
        assert ANNOUNCEMENTS in page_config(html)["disabledExtensions"], "the news pop-up must be off"
        names = {item["name"] for item in first.json("/api/contents")["content"]}
        assert LECTURES and set(LECTURES) <= names, f"the lectures are not served at the root: {names}"
        assert set(LECTURES) <= {p.name for p in work.glob("*.ipynb")}, "the working folder lacks the lectures"
        nb = first.json(f"/api/contents/{lecture}")
        assert nb["type"] == "notebook" and nb["content"]["cells"], "the lecture does not open as a notebook"
        assert first.request(f"/lab/tree/{lecture}").status == 200
        assert first.run_code("print(6 * 7)").strip() == "42"
        # the student writes a note and JupyterLab saves the notebook: the copy changes, lectures/ does not
        nb["content"]["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "my own notes",
                                       "id": "my-notes"})
        first.request(f"/api/contents/{lecture}", "PUT", {"type": "notebook", "content": nb["content"]})
        assert "my own notes" in (work / lecture).read_text()
        assert sha256(ROOT / "lectures" / lecture) == course_version
    finally:
        first.stop()

    second = Course(tmp_path, work, "second")
    try:
        second.wait_until_served()
        nb = second.json(f"/api/contents/{lecture}")
        assert any(cell["source"] == "my own notes" for cell in nb["content"]["cells"]), "the edit was lost"
        assert not list(work.glob("*.updated*")), "the course did not change: nothing goes beside the copy"
    finally:
        second.stop()

    for course in [first, second]:
        log = course.log_text()
        assert "Serving notebooks from local directory: " + str(work) in log, log[-3000:]
        for warning in AVOIDABLE:
            assert warning not in log, f"{course.log_path.name}: {warning!r} in\n{log[-3000:]}"
    assert "copied " + lecture in first.log_text()
