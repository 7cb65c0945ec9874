#!/usr/bin/env bash
# Run every test: make the environment if missing, install what the tests need (Debian's chromium for
# the browser test, when run as root), then the whole suite: unit tests, the docstring examples of
# optlab (doctest), nbval over every notebook,
# grading end to end, and the real-browser widget test. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

if [ -z "${OPTLAB_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "==> installing Debian's chromium for the browser test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "The browser test needs Chromium and this is not root, so it cannot install it." >&2
        echo "Install it with 'sudo apt-get install -y chromium' (Debian/Ubuntu), or point" >&2
        echo "OPTLAB_CHROMIUM at a Chromium/Chrome binary, then run this command again." >&2
        exit 1
    fi
fi

t0=$(date +%s)
set +e
python -m pytest -p no:cacheprovider --doctest-modules --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
    optlab tests lectures assignments/*/source "$@"
rc=$?
set -e
echo "==> test suite wall time: $(( $(date +%s) - t0 )) s; environment: $(du -sh "$VENV" | cut -f1)"
exit $rc
