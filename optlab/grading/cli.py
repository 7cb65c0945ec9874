"""``optlab-grade``: release an assignment, grade a folder of submissions, merge sharded results.

    optlab-grade release ASSIGNMENT [--check]
    optlab-grade grade ASSIGNMENT SUBMISSIONS [--out scores.csv] [--feedback DIR] [--jobs N] [--shard i/n]
                 [--timeout 60] [--reference-timeout 60] [--memory-mb 2048] [--cpu-seconds 120]
                 [--processes 64] [--file-mb 64] [--open-files 256] [--tmpfs-mb 128] [--output-mb 16]
                 [--max-notebook-mb 8] [--no-sandbox]
    optlab-grade merge FEEDBACK_DIR... [--out scores.csv]
"""

from __future__ import annotations

import argparse
import sys

from .execute import GradingError
from .grade import MAX_NOTEBOOK_MB, grade_assignment, parse_shard
from .release import release_assignment
from .report import format_table, merge_records, write_csv
from .sandbox import Limits

_DEFAULTS = Limits()
_LIMITS = [("memory_mb", "address space of a child, MiB"), ("cpu_seconds", "CPU seconds of a child"),
           ("processes", "processes and threads in a child's sandbox"), ("file_mb", "largest file a child writes, MiB"),
           ("open_files", "open files of a child"), ("tmpfs_mb", "size of a child's private /tmp, MiB"),
           ("output_mb", "most result bytes read from a child, MiB")]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optlab-grade", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("release", help="write ASSIGNMENT/release/ from ASSIGNMENT/source/")
    r.add_argument("assignment", help="folder with source/NAME.ipynb")
    r.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the release is not what the source generates")
    g = sub.add_parser("grade", help="grade every SUBMISSIONS/*.ipynb (file name = student id)")
    g.add_argument("assignment", help="folder with source/NAME.ipynb and checks.py")
    g.add_argument("submissions", help="folder of STUDENT_ID.ipynb files")
    g.add_argument("--out", help="also write the table as CSV to this path (atomically)")
    g.add_argument("--feedback", help="folder for per-student feedback and records; a rerun skips students "
                                      "already graded with the same submission and configuration")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per submitted notebook (default 60)")
    g.add_argument("--reference-timeout", type=float, default=60.0,
                   help="seconds for the instructor's notebook, run once for the expected values (default 60)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    g.add_argument("--shard", default="1/1", help="grade only slice i of n (e.g. 2/4); join with merge")
    for name, text in _LIMITS:
        g.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(_DEFAULTS, name),
                       help=f"{text} (default {getattr(_DEFAULTS, name)})")
    g.add_argument("--max-notebook-mb", type=int, default=MAX_NOTEBOOK_MB,
                   help=f"largest submission accepted, MiB (default {MAX_NOTEBOOK_MB})")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run the children without the bubblewrap sandbox: ONLY for code you trust "
                        "(every row's notes then say so)")
    m = sub.add_parser("merge", help="join the feedback folders of sharded runs into one table")
    m.add_argument("folders", nargs="+", help="feedback folders written by grade --feedback")
    m.add_argument("--out", help="also write the table as CSV to this path (atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "release":
            path, up_to_date = release_assignment(args.assignment, check=args.check)
            if args.check:
                print(f"{path}: {'up to date' if up_to_date else 'OUT OF DATE (run optlab-grade release)'}")
                return 0 if up_to_date else 1
            print(f"{path}: {'unchanged' if up_to_date else 'written'}")
            return 0
        if args.command == "merge":
            scores = merge_records(args.folders)
        else:
            limits = Limits(**{name: getattr(args, name) for name, _ in _LIMITS})
            scores = grade_assignment(args.assignment, args.submissions, timeout=args.timeout,
                                      reference_timeout=args.reference_timeout, jobs=args.jobs, limits=limits,
                                      sandbox=not args.no_sandbox, feedback=args.feedback,
                                      shard=parse_shard(args.shard), max_notebook_mb=args.max_notebook_mb)
        print(format_table(scores))
        if args.out:
            write_csv(scores, args.out)
            print(f"wrote {args.out}")
        return 0
    except (ValueError, TypeError, GradingError) as exc:
        print(f"optlab-grade: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
