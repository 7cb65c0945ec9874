"""``optlab-grade``: release an assignment, or grade a folder of submissions into a score table.

    optlab-grade release ASSIGNMENT [--check]
    optlab-grade grade ASSIGNMENT SUBMISSIONS [--out scores.csv] [--timeout 60] [--reference-timeout 60] [--jobs 1]
"""

from __future__ import annotations

import argparse
import sys

from .grade import GradingError, format_table, grade_assignment, write_csv
from .release import release_assignment


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
    g.add_argument("--out", help="also write the table as CSV to this path")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per submitted notebook (default 60)")
    g.add_argument("--reference-timeout", type=float, default=60.0,
                   help="seconds for the instructor's notebook, run once for the expected values (default 60)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
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
        scores = grade_assignment(args.assignment, args.submissions, timeout=args.timeout,
                                  reference_timeout=args.reference_timeout, jobs=args.jobs)
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
