"""Restart Kernel and Run All Cells at the kernel's first connection, many times, on a busy machine.

Starts JupyterLab (127.0.0.1, a free port, no token, temporary Jupyter directories, the course's
settings from scripts/jupyter/ through JUPYTER_CONFIG_PATH) on a copy of lectures/ with outputs
cleared, keeps both cores busy with two busy-loop processes, and then N times: opens the first lecture
in headless Chromium, gives Kernel > Restart Kernel and Run All Cells (the menu item's command, run
through window.jupyterapp so that no click latency moves it) and accepts its dialog 0, 100, ..., 700 ms
after JupyterLab creates the kernel websocket (one delay per try, in turn: the half second around the
socket opening), then waits up to --run-timeout seconds for every code cell to show an execution
count; otherwise the run is stuck (prompts left at [*], status bar Unknown or Starting). Each try
ends by shutting the session down, so the next one starts a fresh kernel. The server's resident memory
is sampled all along. Prints one line per try, then the tries, stuck runs, the slowest run, the
server's maximum RSS and how often its log shows the failure.

Usage: python benchmarks/stress_restart.py [--tries 50] [--no-fix] [--no-load] [--config DIR]
    --no-fix   run without scripts/jupyter/ (JupyterLab's defaults): the figures before the fix
    --no-load  do not start the busy loops

Root cause (jupyter_server 2.21, tornado 6.6, JupyterLab 4.6, ipykernel 7)
---------------------------------------------------------------------------
JupyterLab restarts a kernel by POSTing /api/kernels/ID/restart, which returns before the new kernel
answers, then reconnect(): it closes its kernel websocket and opens a new one with the same
session_id. The server reads no frame of a websocket until KernelWebsocketHandler.open() returns, and
open() awaits ZMQChannelsWebsocketConnection.connect(), whose nudge() waits for the kernel to answer.
So when the restart comes while the first websocket is still opening, its frames (JupyterLab's
kernel_info, comm_info and debug requests) and its close are still unread when the new websocket
arrives, and ZMQChannelsWebsocketConnection._register_session (services/kernels/connection/channels.py)
logs "Replacing stale connection" and only calls close() on the old handler. Then:

1. 3.4 GB. tornado's WebSocketHandler.close() sets ws_connection to None, but the old socket's frames
   still reach on_message once open() returns. ZMQChannelsWebsocketConnection.subprotocol can no
   longer read selected_subprotocol (it asserts ws_connection) and falls back to the legacy protocol,
   so handle_incoming_message gives a binary frame of the v1.kernel.websocket.jupyter.org protocol
   (serialize_msg_to_ws_v1 in connection/base.py, serializeV1KernelWebsocketJupyterOrg in
   @jupyterlab/services) to the legacy deserialize_binary_message. That reads the frame's 8-byte
   little-endian offset count, 6, as a 4-byte big-endian buffer count, 0x06000000 = 100663296, and
   calls struct.unpack("!" + "I" * 100663296, ...): Python compiles that format into about 3.2 GB
   (tens of seconds of blocked event loop on a loaded machine), raises "struct.error: unpack requires
   a buffer of 402653184 bytes", and keeps the compiled format in the struct module's cache.
2. Stuck. Both connections open the kernel's channels with the session id as zmq identity
   (ZMQChannelsWebsocketConnection.create_stream), and the old one closes its channels only when its
   close frame is finally read. ipykernel's shell, control and stdin ROUTER sockets set
   router_handover, so the peer that connects last takes the identity and the other one is cut off:
   when the old connection's sockets reconnect to the restarted kernel after the new connection's,
   Run All's execute requests are lost and every prompt stays [*].

The fix, scripts/jupyter/jupyter_server_config.py: ServerApp.kernel_websocket_connection_class is a
ZMQChannelsWebsocketConnection that drops frames arriving on a websocket the server has closed and
opens each connection's channels with a zmq identity of its own. The documented
ZMQChannelsWebsocketConnection.kernel_ws_protocol = "" (legacy protocol for every socket) avoids 1
only: Chromium fails every handshake in which JupyterLab offers a subprotocol and the server selects
none ("Sent non-empty 'Sec-WebSocket-Protocol' header but no response was received"), JupyterLab then
reconnects without one, which makes replaced connections more frequent, and 2 remains.

Measured on the 2-core machine, both cores busy: without the fix 50 tries, 9 stuck, 13 replaced
connections and 13 struct.errors, server at 3569 MB; dropping the closed websocket's frames alone
24 tries, 4 stuck (8 replaced), 114 MB; with scripts/jupyter/ 50 tries, 0 stuck (14 replaced), 117 MB.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "scripts" / "jupyter"
LECTURE = "01_gradient_descent_on_a_quadratic.ipynb"
# try i accepts the Restart dialog DELAYS_MS[i % 8] ms after JupyterLab creates the kernel websocket
DELAYS_MS = [0, 100, 200, 300, 400, 500, 600, 700]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL_STATUS_JS = """() => {
    const items = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'));
    const item = items.find(e => /\\(ipykernel\\) \\| /.test(e.textContent));
    return item ? item.textContent.split(' | ').pop().trim() : '';
}"""
PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
    .map(p => p.textContent.trim())"""
FAILURE_LINES = ["Replacing stale connection", "struct.error"]
# runs before JupyterLab's scripts: notes (page clock, ms) when the first kernel websocket is created and opened
KERNEL_SOCKET_HOOK_JS = """(() => {
    const NativeWebSocket = window.WebSocket;
    window.kernelSocket = {created: null, opened: null};
    window.WebSocket = class extends NativeWebSocket {
        constructor(url, protocols) {
            super(url, protocols);
            if (String(url).includes('/channels') && window.kernelSocket.created === null) {
                window.kernelSocket.created = performance.now();
                this.addEventListener('open', () => { window.kernelSocket.opened = performance.now(); });
            }
        }
    };
})();"""
# Kernel > Restart Kernel and Run All Cells (the menu item's command), its dialog accepted `delay` ms
# after the first kernel websocket was created; returns when it was accepted (page clock, ms)
RESTART_AT_JS = """async delay => {
    const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
    window.jupyterapp.commands.execute('notebook:restart-run-all');
    let accept = null;
    while (!(accept = document.querySelector('.jp-Dialog .jp-mod-accept'))) await sleep(5);
    const wait = window.kernelSocket.created + delay - performance.now();
    if (wait > 0) await sleep(wait);
    accept.click();
    return performance.now();
}"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50, help="how many times to open and restart (default 50)")
    parser.add_argument("--no-fix", action="store_true", help="run without scripts/jupyter/ (the figures before)")
    parser.add_argument("--config", type=Path, default=CONFIG,
                        help="the Jupyter config folder to run with (default scripts/jupyter/)")
    parser.add_argument("--no-load", action="store_true", help="do not keep both cores busy")
    parser.add_argument("--run-timeout", type=float, default=60.0,
                        help="seconds a restart and run all may take before the run counts as stuck (default 60)")
    args = parser.parse_args(argv)
    if args.tries < 1:
        parser.error(f"--tries must be at least 1, got {args.tries}")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_lectures_without_outputs(dst: Path) -> None:
    """lectures/ copied to dst, every code cell's outputs and execution count cleared."""
    shutil.copytree(ROOT / "lectures", dst)
    for path in dst.glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        path.write_text(json.dumps(nb))


def lab_environment(base: Path, config: Path | None) -> dict:
    """os.environ with temporary Jupyter directories, and JUPYTER_CONFIG_PATH set to config (or unset for None)."""
    env = dict(os.environ)
    for name in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"]:
        env[name] = str(base / name.lower())
        Path(env[name]).mkdir()
    # window.jupyterapp, so that the restart command runs without a click's latency
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir()
    (labconfig / "page_config.json").write_text(json.dumps({"exposeAppInBrowser": True}))
    env.pop("JUPYTER_CONFIG_PATH", None)
    if config is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    return env


def start_lab(base: Path, root: Path, env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    """JupyterLab on 127.0.0.1 at a free port serving root; returns the process and its URL once it answers."""
    # every cell rendered (no windowing), so that the page shows every prompt
    settings = base / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = free_port()
    as_root = ["--allow-root"] if os.geteuid() == 0 else []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
             f"--ServerApp.root_dir={root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             f"--LabApp.user_settings_dir={base / 'user-settings'}", *as_root],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"JupyterLab did not answer at {url}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_bytes(pid: int) -> int:
    """Resident memory of process pid (psutil if installed, else /proc/PID/status); OSError once it is gone."""
    try:
        import psutil
    except ImportError:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.NoSuchProcess as gone:
        raise ProcessLookupError(f"no process {pid}") from gone


class RssSampler(threading.Thread):
    """Samples the resident memory of one process every `every` seconds; `peak` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.every):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, AttributeError):
                return  # the process is gone (AttributeError: a zombie's status has no VmRSS)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def delete_sessions(url: str) -> None:
    """Shut down every notebook session (and its kernel), so that the next try starts a fresh kernel."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    opener.open(f"{url}/lab", timeout=60)  # sets the _xsrf cookie that a DELETE must echo
    xsrf = next(c.value for c in cookies if c.name == "_xsrf")
    for session in json.load(opener.open(f"{url}/api/sessions", timeout=60)):
        request = urllib.request.Request(f"{url}/api/sessions/{session['id']}", method="DELETE",
                                         headers={"X-XSRFToken": xsrf})
        opener.open(request, timeout=60)


def all_cells_finished(prompts: list[str]) -> bool:
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def one_try(browser, url: str, delay_ms: int, run_timeout: float) -> tuple[str, float, str]:
    """Open the lecture, restart and run all delay_ms after the kernel websocket is created, wait for the cells.

    Returns the outcome ("finished" | "stuck" | "error"), the seconds from accepting the Restart dialog
    to the last execution count, and what happened.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(KERNEL_SOCKET_HOOK_JS)
    page = context.new_page()
    try:
        page.goto(f"{url}/lab/tree/{LECTURE}?reset", timeout=90_000)
        page.wait_for_function("() => window.jupyterapp && window.kernelSocket.created !== null", timeout=90_000)
        accepted_ms = page.evaluate(RESTART_AT_JS, delay_ms)
        accepted = time.time()
        while time.time() < accepted + run_timeout and not all_cells_finished(page.evaluate(PROMPTS_JS)):
            page.wait_for_timeout(250)
        seconds = time.time() - accepted
        opened_ms = page.evaluate("() => window.kernelSocket.opened")
        when = (f"accepted {accepted_ms - opened_ms:+5.0f} ms after the kernel websocket opened"
                if opened_ms is not None else "accepted; the first kernel websocket never opened")
        if all_cells_finished(page.evaluate(PROMPTS_JS)):
            return "finished", seconds, when
        return "stuck", seconds, (f"{when}; after {run_timeout:.0f} s the kernel status is "
                                  f"{page.evaluate(KERNEL_STATUS_JS)!r} and the prompts are "
                                  f"{' '.join(page.evaluate(PROMPTS_JS))}")
    except Exception as error:  # a try that breaks is reported and counted, not fatal for the others
        return "error", 0.0, f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        context.close()


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv=None) -> int:
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("No Chromium found: install Debian's chromium or set OPTLAB_CHROMIUM.")
    base = Path(tempfile.mkdtemp(prefix="stress_restart_"))
    root = base / "lectures"
    copy_lectures_without_outputs(root)
    log_path = base / "lab.log"
    config = None if args.no_fix else args.config.resolve()
    setting = "without scripts/jupyter/ (JupyterLab's defaults)" if args.no_fix else f"with {config}"
    load = "no load" if args.no_load else "both cores busy (2 busy loops)"
    print(f"{args.tries} tries, {setting}, {load}; server log: {log_path}", flush=True)

    proc, url = start_lab(base, root, lab_environment(base, config), log_path)
    sampler = RssSampler(proc.pid)
    sampler.start()
    loops = [] if args.no_load else busy_loops(2)
    counts = {"finished": 0, "stuck": 0, "error": 0}
    started, slowest = time.time(), 0.0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for i in range(1, args.tries + 1):
                t0 = time.time()
                delay_ms = DELAYS_MS[(i - 1) % len(DELAYS_MS)]
                outcome, seconds, detail = one_try(browser, url, delay_ms, args.run_timeout)
                counts[outcome] += 1
                slowest = max(slowest, seconds)
                print(f"try {i:3d}: {outcome:8s} run all {seconds:5.1f} s (try {time.time() - t0:5.1f} s), "
                      f"restart at +{delay_ms} ms, "
                      f"server RSS so far {sampler.peak / 2**20:5.0f} MB; {detail}", flush=True)
                delete_sessions(url)
            browser.close()
    finally:
        peak = sampler.stop()
        for loop in loops:
            stop(loop, timeout=5)
        stop(proc)
    log = log_path.read_text()
    print(f"\n{args.tries} tries in {time.time() - started:.0f} s ({setting}, {load}): "
          f"{counts['finished']} finished, {counts['stuck']} stuck, {counts['error']} errors; "
          f"slowest run all {slowest:.1f} s; max server RSS {peak / 2**20:.0f} MB")
    print("server log: " + ", ".join(f"{log.count(line)} x {line!r}" for line in FAILURE_LINES))
    return 0 if counts["stuck"] == counts["error"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
