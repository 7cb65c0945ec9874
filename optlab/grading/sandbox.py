"""Where a child runs: a bubblewrap sandbox on Linux, and the resource limits every child gets.

The sandbox (bubblewrap, Debian package ``bubblewrap``) gives the child:

- no network (its own network namespace with only a down loopback) and no IPC with the host;
- its own PID namespace: it sees only its own processes in its own ``/proc``, cannot signal the
  grader, and when the runner ends, or the grader kills bubblewrap, the kernel kills every process
  left in the namespace (``setsid`` and double forks included); ``--die-with-parent`` ends it if the
  grader dies;
- a new user namespace in which it is uid/gid 65534 with no capabilities, and cannot make further
  user namespaces;
- a file system made of read-only binds only: the system's ``/usr`` (and ``/lib*``, ``/bin``), the
  interpreter (``sys.base_prefix``), the environment (``sys.prefix``), the optlab package *without*
  ``optlab/grading`` (mounted at :data:`LIB_DIR`), and the runner script; plus a private
  ``/proc``, a minimal ``/dev`` and a size-limited tmpfs at ``/tmp`` (its working directory and the
  only writable place). The course folder, the submissions, the grader's files and ``/proc`` of the
  grader are not in its view.

:class:`Limits` are the resource limits the runner sets on itself (hard limits, so the student's code
cannot raise them) before any student code runs. They apply with and without the sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import positive_int

SANDBOX_UID = 65534  # "nobody" inside the sandbox's user namespace
LIB_DIR = "/opt/optlab-lib"  # the optlab package is mounted at LIB_DIR/optlab
RUNNER_PATH = "/opt/optlab-runner/runner.py"
WORK_DIR = "/tmp"  # the private tmpfs
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")

MiB = 2**20


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child (each the hard limit the runner sets before any student code).

    Args:
        memory_mb: address space (``RLIMIT_AS``), MiB. numpy and torch import in well under 1 GiB.
        cpu_seconds: CPU time of the runner process (``RLIMIT_CPU``); the wall-clock ``timeout`` of
            the grader bounds the whole run anyway.
        processes: processes and threads the child may have (``RLIMIT_NPROC``; inside the sandbox it
            counts the sandbox's own processes only). The kernel does not apply it when the grader
            runs as root; the grader then also caps the sandbox with a ``pids`` cgroup where it can
            make one (:class:`PidsCgroup`), and otherwise relies on the time limit and the PID
            namespace to end a fork bomb.
        file_mb: largest file the child may write (``RLIMIT_FSIZE``), MiB.
        open_files: open file descriptors (``RLIMIT_NOFILE``).
        tmpfs_mb: size of the sandbox's private ``/tmp``, the only place it can write, MiB.
        output_mb: most bytes the grader reads from the child's result channel; a child that writes
            more is stopped and scores 0.

    Core dumps are always off (``RLIMIT_CORE`` = 0).
    """

    memory_mb: int = 2048
    cpu_seconds: int = 120
    processes: int = 64
    file_mb: int = 64
    open_files: int = 256
    tmpfs_mb: int = 128
    output_mb: int = 16

    def __post_init__(self):
        for name, value in asdict(self).items():
            positive_int("Limits", name, value)

    def rlimits(self) -> dict[str, int]:
        """The ``resource.RLIMIT_*`` names and values the runner sets (the job carries this dict)."""
        return {"RLIMIT_AS": self.memory_mb * MiB, "RLIMIT_CPU": self.cpu_seconds, "RLIMIT_NPROC": self.processes,
                "RLIMIT_FSIZE": self.file_mb * MiB, "RLIMIT_NOFILE": self.open_files, "RLIMIT_CORE": 0}


def _bwrap() -> str | None:
    return shutil.which("bwrap", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin:/bin")


def _roots() -> list[Path]:
    """The interpreter's and the environment's folders, which the child needs read-only."""
    out: list[Path] = []
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
              os.path.dirname(os.path.realpath(sys.executable))):
        path = Path(os.path.realpath(p))
        if path == Path("/") or path == Path("/usr") or Path("/usr") in path.parents \
                or any(path == r or r in path.parents for r in out):
            continue
        out = [r for r in out if path not in r.parents] + [path]
    return sorted(out)


def optlab_package() -> Path:
    """The folder of the optlab package the grader runs (editable install or not)."""
    return Path(__file__).resolve().parents[1]


def sandbox_command(inner: list[str], runner: Path, limits: Limits, env: dict[str, str] | None = None) -> list[str]:
    """``inner`` (the child's command line, naming :data:`RUNNER_PATH`) wrapped in bubblewrap, with the
    environment ``env`` and nothing else (bubblewrap clears the environment it was started with)."""
    bwrap = _bwrap()
    if bwrap is None:
        raise RuntimeError("bwrap not found")
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
           "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
           # the tmpfs first: a bind below /tmp (an environment in /tmp/clone/.venv) lands on top of it
           "--size", str(limits.tmpfs_mb * MiB), "--perms", "0700", "--tmpfs", WORK_DIR,
           "--ro-bind", "/usr", "/usr"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for f in _ETC_FILES:
        if os.path.exists(f):
            cmd += ["--ro-bind", f, f]
    package = optlab_package()
    for root in _roots():
        cmd += ["--ro-bind", str(root), str(root)]
        if root in package.parents:  # optlab installed inside the environment: hide its grader there too
            cmd += ["--tmpfs", str(package / "grading")]
    cmd += ["--ro-bind", str(package), f"{LIB_DIR}/optlab", "--tmpfs", f"{LIB_DIR}/optlab/grading",
            "--ro-bind", str(runner), RUNNER_PATH,
            "--proc", "/proc", "--dev", "/dev", "--chdir", WORK_DIR]
    for key, val in (env or {}).items():
        cmd += ["--setenv", key, val]
    return [*cmd, "--", *inner]


class PidsCgroup:
    """A cgroup that caps the number of processes of one sandbox (``pids.max``), where the grader may
    make one (root, with cgroup v1's ``pids`` hierarchy or v2 with the ``pids`` controller enabled).

    Needed when the grader runs as root: the kernel never applies ``RLIMIT_NPROC`` to processes whose
    user on the host is root, and bubblewrap started by root maps the sandbox's user to root. Use
    :meth:`make` (``None`` where no such cgroup can be made), start the child with :meth:`entered_by`
    (everything it starts stays inside), and :meth:`remove` after it has been killed.
    """

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def make(cls, limit: int) -> PidsCgroup | None:
        if not (hasattr(os, "geteuid") and os.geteuid() == 0):
            return None
        for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            if base.name == "cgroup" and "pids" not in _read(base / "cgroup.subtree_control").split():
                continue
            path = base / f"optlab-grade-{os.getpid()}-{os.urandom(6).hex()}"
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(limit))
                return cls(path)
            except OSError:
                path.rmdir()
        return None

    def entered_by(self, cmd: list[str]) -> list[str]:
        """``cmd`` started from inside the cgroup: a shell moves itself in, then becomes ``cmd``.

        The process must enter before it forks: moving bubblewrap in after it has started would leave
        the sandbox's processes, forked at once, outside. A shell that cannot enter fails without
        running ``cmd`` (the child then reports nothing and scores 0, with its error in the note).
        """
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *cmd]

    def remove(self) -> None:
        import time

        for _ in range(100):  # the killed processes leave the cgroup within milliseconds
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """``None`` when bubblewrap sandboxes work on this machine, else why not (one sentence).

    Tried once per process: a sandbox like the children's runs ``python -c pass``.
    """
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}"
    if _bwrap() is None:
        return ("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; "
                "bash scripts/test.sh installs it when run as root)")
    cmd = sandbox_command([sys.executable, "-I", "-S", "-c", "pass"], Path(__file__).with_name("runner.py"), Limits())
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start a sandbox ({type(exc).__name__}: {exc})"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        return (f"bubblewrap could not start a sandbox ({err or f'exit code {proc.returncode}'}); "
                "user namespaces may be disabled on this machine")
    return None
