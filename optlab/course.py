"""Students work on their own copies of the lectures: a working folder synced from ``lectures/``.

:func:`sync` brings a working folder up to date with the course and never loses a student's work:

- a lecture missing from the working folder is copied there;
- a copy the student has not changed follows the course: a new version of the lecture replaces it;
- a copy the student changed is kept; when the course's version changed since the copy was made,
  the new version goes beside it (``NAME.updated.ipynb``), once.

To tell "the student changed it" from "the course changed it", the working folder keeps a manifest
(:data:`MANIFEST`, a small JSON file): for each file, the SHA-256 of the course's version it was
copied from, and of the version last put beside it. The notebooks it writes are signed as trusted
(they are the course's own), so JupyterLab shows their saved outputs without a warning.

Command line (``scripts/course.sh`` and ``binder/start`` run it)::

    python -m optlab.course sync lectures work
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = ".optlab-course.json"  #: the manifest's name inside the working folder (hidden in JupyterLab)
SKIP = {".ipynb_checkpoints", "__pycache__"}


class SyncError(Exception):
    """A path that cannot be synced; the message names it."""


@dataclass
class SyncReport:
    """What :func:`sync` did, by path relative to the working folder."""

    copied: list = field(default_factory=list)  #: missing from the working folder, copied
    replaced: list = field(default_factory=list)  #: unchanged by the student, replaced by the course's new version
    beside: dict = field(default_factory=dict)  #: changed by the student: copy -> new version written beside it
    kept: list = field(default_factory=list)  #: nothing to do

    def lines(self) -> list[str]:
        """One line per change, for the terminal."""
        out = [f"copied {rel}" for rel in self.copied]
        out += [f"updated {rel} to the course's new version (you had not changed your copy)" for rel in self.replaced]
        out += [f"NEW VERSION of {rel} from the course: {new} (your copy {rel} is kept as it is)"
                for rel, new in self.beside.items()]
        return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def course_files(src: Path) -> list[str]:
    """The files of ``src`` to sync (relative POSIX paths), without hidden files and checkpoints."""
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*")
                  if p.is_file() and not any(part.startswith(".") or part in SKIP
                                             for part in p.relative_to(src).parts))


def beside_name(rel: str, n: int = 1) -> str:
    """``01_x.ipynb`` -> ``01_x.updated.ipynb`` (``01_x.updated-2.ipynb`` for ``n=2``...)."""
    path = Path(rel)
    tag = "updated" if n == 1 else f"updated-{n}"
    return path.with_name(f"{path.stem}.{tag}{path.suffix}").as_posix()


def read_manifest(dst: Path) -> dict:
    path = dst / MANIFEST
    if not path.exists():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        assert isinstance(files, dict)
        return files
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise SyncError(f"cannot read the working folder's manifest {path} ({err!r}); delete it and run "
                        "again: your notebooks stay, and changed lectures get their new version beside them") from err


def write_manifest(dst: Path, files: dict) -> None:
    tmp = dst / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, dst / MANIFEST)


def check_paths(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise SyncError(f"the course's folder {src} does not exist or is not a folder")
    if dst.exists() and not dst.is_dir():
        raise SyncError(f"the working folder {dst} exists and is not a folder")
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents or d in s.parents:
        raise SyncError(f"the working folder {dst} must lie outside the course's folder {src} and not contain it")


def sync(src, dst, *, trust: bool = True) -> SyncReport:
    """Bring the working folder ``dst`` up to date with the course's folder ``src`` (see the module doc).

    Args:
        src: the course's folder (``lectures/``); read only.
        dst: the student's working folder; created if missing.
        trust: sign the notebooks written here as trusted (Jupyter's signature database of the user).

    Raises:
        SyncError: naming the path that is missing, not a folder, or nested in the other.
    """
    src, dst = Path(src), Path(dst)
    check_paths(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    files = read_manifest(dst)
    report, written = SyncReport(), []
    for rel in course_files(src):
        new, entry = sha256(src / rel), files.get(rel, {})
        target = dst / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, target)
            files[rel] = {"copied": new}
            report.copied.append(rel)
            written.append(target)
            continue
        have = sha256(target)
        if have == new:  # the course's version, however it got there
            files[rel] = {"copied": new}
            report.kept.append(rel)
        elif entry.get("copied") == new or entry.get("offered") == new:  # nothing new since copied / offered
            report.kept.append(rel)
        elif entry.get("copied") == have:  # the student has not changed it: follow the course
            shutil.copyfile(src / rel, target)
            files[rel] = {"copied": new}
            report.replaced.append(rel)
            written.append(target)
        else:  # the student's own version: the new one goes beside it
            n, ours = 1, (entry.get("offered"), new)
            while (dst / beside_name(rel, n)).exists() and sha256(dst / beside_name(rel, n)) not in ours:
                n += 1  # a file of that name the student has edited: keep it too
            shutil.copyfile(src / rel, dst / beside_name(rel, n))
            files[rel] = {**entry, "offered": new}
            report.beside[rel] = beside_name(rel, n)
            written.append(dst / beside_name(rel, n))
    write_manifest(dst, files)
    if trust:
        sign_notebooks(p for p in written if p.suffix == ".ipynb")
    return report


def sign_notebooks(paths) -> None:
    """Record the notebooks as trusted in Jupyter's signature database (as ``jupyter trust`` does)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary()
    for path in paths:
        notary.sign(nbformat.read(path, as_version=4))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optlab.course", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("sync", help="copy the course's lectures into a working folder, keeping the student's edits")
    cmd.add_argument("src", help="the course's folder, e.g. lectures")
    cmd.add_argument("dst", help="the working folder, e.g. work")
    cmd.add_argument("--no-trust", dest="trust", action="store_false", help="do not sign the notebooks written")
    args = parser.parse_args(argv)
    try:
        report = sync(args.src, args.dst, trust=args.trust)
    except SyncError as err:
        print(f"optlab.course: {err}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(f"==> {args.dst}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
