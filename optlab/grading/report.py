"""What the grader writes: the score table, the CSV, per-student feedback and the records a rerun or a
``merge`` reads back.

Every text that may come from a student (the student id, error messages, notes) is escaped before it
reaches a terminal or a file: control characters, newlines and other invisible characters become
``\\xNN``/``\\uNNNN`` escapes (:func:`clean_text`), and a CSV cell that would start a spreadsheet
formula (``= + - @``) gets a leading ``'`` (:func:`csv_cell`). Files are written
atomically (a temporary file in the same folder, then ``os.replace``), so a reader never sees half a
file and a symbolic link at the destination is replaced, never followed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import data_error

RECORD_FORMAT = 1


@dataclass
class Score:
    """One student's row: points per probe, total, status (``ok``/``errors``/``timeout``/``crashed``/
    ``invalid``), the notes that explain every lost point, the SHA-256 of the submitted file, and the
    written answers left to grade by hand (``manual``: grade_id -> points available; not in ``total``
    nor in ``max_points``)."""

    student: str
    points: dict[str, float]
    total: float
    max_points: float
    status: str
    notes: list[str] = field(default_factory=list)
    sha256: str = ""
    manual: dict[str, float] = field(default_factory=dict)


def clean_text(text: str) -> str:
    """``text`` with every control, format, separator-of-lines or unassigned character escaped, so that
    it prints on one line and cannot move the cursor or recolour a terminal."""
    out = []
    for ch in str(text):
        if ch == " " or unicodedata.category(ch)[0] not in ("C", "Z"):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def csv_cell(text: str) -> str:
    """A text cell for a spreadsheet: escaped, and a leading ``'`` where it would start a formula."""
    text = clean_text(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # tab and CR are escaped already


def _fmt(x: float) -> str:
    return f"{x:g}"


def format_table(scores: list[Score]) -> str:
    """The score table as aligned text: a legend numbering the probes (then the written answers graded
    by hand), then one row per student with the points per probe, ``manual`` for each written answer,
    total/max of the automatic points, status and notes (the CSV has the probes' full names)."""
    if not scores:
        return "(no submissions)"
    names, manual = list(scores[0].points), list(scores[0].manual)
    legend = [f"#{i}: {n}" for i, n in enumerate(names, 1)]
    legend += [f"#{i}: {n} (manual, {_fmt(scores[0].manual[n])} points)" for i, n in enumerate(manual, len(names) + 1)]
    header = ["student", *(f"#{i}" for i in range(1, len(legend) + 1)), "total", "status", "notes"]
    rows = [[clean_text(s.student), *(_fmt(s.points[n]) for n in names), *("manual" for _ in manual),
             f"{_fmt(s.total)}/{_fmt(s.max_points)}", clean_text(s.status), clean_text("; ".join(s.notes))]
            for s in scores]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["probes: " + ", ".join(legend), ""]
    for r in [header, *rows]:
        lines.append(("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip())
    return "\n".join(lines)


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(scores: list[Score], path: str | Path) -> None:
    """The score table as CSV: ``student, <probe>..., <written answer>..., total, max, manual_max, status,
    notes, sha256`` (written atomically; text cells escaped and formula-safe). A written answer's cell
    says ``manual``: it is graded by hand, and ``total``/``max`` count the automatic points only."""
    names = list(scores[0].points) if scores else []
    manual = list(scores[0].manual) if scores else []
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", *names, *manual, "total", "max", "manual_max", "status", "notes", "sha256"])
    for s in scores:
        w.writerow([csv_cell(s.student), *(_fmt(s.points[n]) for n in names), *("manual" for _ in manual),
                    _fmt(s.total), _fmt(s.max_points), _fmt(sum(s.manual.values())),
                    csv_cell(s.status), csv_cell("; ".join(s.notes)), s.sha256])
    atomic_write(path, buf.getvalue())


def feedback_text(score: Score) -> str:
    """The feedback a student gets: each probe with its points, the total, the status and the notes."""
    width = max((len(n) for n in [*score.points, *score.manual]), default=0)
    lines = [f"student: {clean_text(score.student)}", f"status: {clean_text(score.status)}", ""]
    lines += [f"{n.ljust(width)}  {_fmt(p)}" for n, p in score.points.items()]
    lines += [f"{n.ljust(width)}  manual (graded by hand, {_fmt(p)} points)" for n, p in score.manual.items()]
    lines += ["", f"total: {_fmt(score.total)}/{_fmt(score.max_points)}"
              + (f" (automatic; {_fmt(sum(score.manual.values()))} more points graded by hand)" if score.manual else ""),
              ""]
    lines += [f"- {clean_text(n)}" for n in score.notes] or ["(no notes)"]
    return "\n".join(lines) + "\n"


def write_feedback(score: Score, folder: str | Path, config: str) -> None:
    """``FOLDER/STUDENT.txt`` (the feedback) and ``FOLDER/STUDENT.json`` (the record a rerun skips on
    and ``merge`` reads), both written atomically. ``config`` identifies the checks, the source, the
    grader's code and its settings."""
    folder = Path(folder)
    record = {"format": RECORD_FORMAT, "student": score.student, "sha256": score.sha256, "config": config,
              "points": score.points, "total": score.total, "max_points": score.max_points,
              "status": score.status, "notes": score.notes,
              "manual": score.manual}
    atomic_write(folder / f"{score.student}.txt", feedback_text(score))
    atomic_write(folder / f"{score.student}.json", json.dumps(record, indent=1) + "\n")


def read_record(path: str | Path) -> tuple[Score, str] | None:
    """A record written by :func:`write_feedback` as ``(score, config)``; ``None`` if the file is
    missing, a symbolic link or not a record of this format."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file():
            return None
        r = json.loads(path.read_text(encoding="utf-8"))
        if r.get("format") != RECORD_FORMAT:
            return None
        points = {str(k): float(v) for k, v in r["points"].items()}
        manual = {str(k): float(v) for k, v in r.get("manual", {}).items()}
        score = Score(str(r["student"]), points, float(r["total"]), float(r["max_points"]), str(r["status"]),
                      [str(n) for n in r["notes"]], str(r["sha256"]), manual)
        return score, str(r["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def merge_records(folders: list[str | Path]) -> list[Score]:
    """The scores of every record in ``folders`` (e.g. one per shard), sorted by student.

    ``ValueError`` if the records were graded with different checks or settings, or one student has
    two records for different submissions."""
    found: dict[str, tuple[Score, str]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            rec = read_record(path)
            if rec is None:
                continue
            score, config = rec
            old = found.get(score.student)
            if old and old[0].sha256 != score.sha256:
                raise data_error("merge", "records", f"two different submissions graded for {clean_text(score.student)!r}",
                                 "one record per student")
            found[score.student] = rec
    configs = {c for _, c in found.values()}
    if len(configs) > 1:
        raise data_error("merge", "records", f"graded with {len(configs)} different checks/settings",
                         "every shard graded by the same grader, checks, source and options")
    if not found:
        raise data_error("merge", "folders", f"no grading record in {[str(f) for f in folders]}",
                         "folders written by optlab-grade grade --feedback")
    return [found[k][0] for k in sorted(found)]
