"""The README's first command serves JupyterLab on 127.0.0.1 with the lectures openable."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from test_browser import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_course_command_serves_the_lectures(tmp_path):
    port, token = free_port(), "optlab-test-token"
    env = dict(os.environ, OPTLAB_VENV=sys.prefix, OPTLAB_PORT=str(port), OPTLAB_OPEN_BROWSER="False",
               JUPYTER_TOKEN=token)
    for name in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"]:
        env[name] = str(tmp_path / name.lower())
    log = open(tmp_path / "course.log", "w")
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "course.sh")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                page = urllib.request.urlopen(f"{base}/lab?token={token}", timeout=3)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "course.log").read_text()[-3000:]
                assert time.time() < deadline, "course.sh did not serve within 120 s"
                time.sleep(0.5)
        assert page.status == 200 and b"JupyterLab" in page.read()
        listing = json.load(urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10))
        names = {item["name"] for item in listing["content"]}
        lectures = {p.name for p in (ROOT / "lectures").glob("*.ipynb")}
        assert lectures and lectures <= names, f"lectures/ not served at the root: {names}"
        first = sorted(lectures)[0]
        nb = json.load(urllib.request.urlopen(f"{base}/api/contents/{first}?token={token}", timeout=10))
        assert nb["type"] == "notebook" and nb["content"]["cells"], "the lecture does not open as a notebook"
        assert urllib.request.urlopen(f"{base}/lab/tree/{first}?token={token}", timeout=10).status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
