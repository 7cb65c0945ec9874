#!/usr/bin/env bash
# Run the tests: make the environment if missing, install what the tests need (Debian's chromium for
# the browser test and bubblewrap for the grader's sandbox, when run as root), then pytest with optlab's docstring examples (doctest) and nbval
# over the notebooks.
#   bash scripts/test.sh                  everything: optlab tests lectures assignments/*/source
#                                         (pyproject.toml's testpaths)
#   bash scripts/test.sh lectures -x      only the paths given; every argument goes to pytest
#   OPTLAB_CHROMIUM  a Chromium/Chrome binary for the browser test (default: chromium on the PATH)
# The exit code is pytest's: 0 all passed, 1 some failed, 5 no test was collected, ...
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

# need COMMAND PACKAGE WHAT [HINT]: install Debian's PACKAGE when COMMAND is missing and this is root;
# otherwise say what to install (and HINT) and stop
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "==> installing Debian's $2 for $3"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    else
        echo "$3 needs $2 and this is not root, so it cannot install it." >&2
        echo "Install it with 'sudo apt-get install -y $2' (Debian/Ubuntu)${4:+, $4}, then run this command again." >&2
        exit 1
    fi
}
[ -n "${OPTLAB_CHROMIUM:-}" ] || need chromium chromium "the browser test" "or point OPTLAB_CHROMIUM at a Chromium/Chrome binary"
need bwrap bubblewrap "the grader's sandbox (optlab-grade)"

t0=$(date +%s)
set +e
python -m pytest -p no:cacheprovider --doctest-modules --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg "$@"
rc=$?
set -e
[ "$rc" = 5 ] && echo "==> pytest collected no test (exit code 5): check the paths and -k/-m filters given" >&2
echo "==> test suite wall time: $(( $(date +%s) - t0 )) s; environment: $(du -sh "$VENV" | cut -f1)"
exit $rc
