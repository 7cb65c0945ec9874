# Sourced by scripts/course.sh and scripts/test.sh: make the environment if it is missing,
# install optlab and what it needs, and put the environment first on PATH.
#   OPTLAB_VENV  where the environment lives (default: .venv in the repository)
#   PYTHON       the interpreter that creates it (default: python3; 3.10 or newer)
#   OPTLAB_NO_INSTALL  set (e.g. to 1) to stop with an error instead of (re)installing; the tests that
#                run these scripts set it, so that they never reinstall the environment running them
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OPTLAB_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "optlab needs Python >= 3.10; '$PY' is $("$PY" --version 2>&1 || echo missing)." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating the environment in $VENV"
    "$PY" -m venv "$VENV"
fi
# Reinstall only when what the install depends on has changed.
stamp="$VENV/.optlab-install-stamp"
want="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(open(f, "rb").read() for f in sys.argv[1:])).hexdigest())' \
    "$ROOT/pyproject.toml" "$ROOT/constraints.txt" "$ROOT/scripts/env.sh")"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && [ -n "${OPTLAB_NO_INSTALL:-}" ]; then
    echo "$VENV was not installed from this checkout's pyproject.toml, constraints.txt and scripts/env.sh," >&2
    echo "and OPTLAB_NO_INSTALL is set: install it with 'bash scripts/test.sh' (OPTLAB_VENV=$VENV)." >&2
    exit 3
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing optlab and its dependencies (CPU torch 2.13.0)"
    t0=$(date +%s)
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # torch first, pinned to the CPU build; the constraint file keeps every later step on it.
    # On Linux x86_64 PyPI's torch is a CUDA build of several GB, so ask for the +cpu one: it lies on
    # disk on the course machines, and elsewhere comes from PyTorch's CPU wheel index.
    if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
        "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" "torch==2.13.0+cpu" ||
        "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" \
            --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
    else  # macOS and Linux aarch64 wheels on PyPI are CPU builds
        "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" "torch==2.13.0"
    fi
    "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
    if "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is None)'; then
        echo "A CUDA build of torch got into $VENV; optlab's install expects the CPU build." >&2
        exit 1
    fi
    echo "$want" > "$stamp"
    echo "==> installed in $(( $(date +%s) - t0 )) s; environment size: $(du -sh "$VENV" | cut -f1)"
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
