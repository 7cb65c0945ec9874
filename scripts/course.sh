#!/usr/bin/env bash
# Start the course: make the environment if missing, install, bring the working folder up to date with
# lectures/ (python -m optlab.course sync), and open JupyterLab on it.
#   bash scripts/course.sh            sync, then serve JupyterLab (extra arguments go to `jupyter lab`)
#   bash scripts/course.sh --update   sync only: copy new lectures, put changed ones beside your copies
#   OPTLAB_WORKDIR  the working folder (default: work/ in the repository; git ignores it)
#   OPTLAB_PORT     the port (default 8888); JupyterLab serves on 127.0.0.1 only
#   OPTLAB_OPEN_BROWSER  False to not open a browser tab (default True)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
WORKDIR="${OPTLAB_WORKDIR:-$ROOT/work}"
python -m optlab.course sync "$ROOT/lectures" "$WORKDIR"
if [ "${1:-}" = "--update" ]; then
    exit 0
fi
# no news pop-up, no avoidable warnings: scripts/jupyter/ holds the course's Jupyter settings
export JUPYTER_CONFIG_PATH="$ROOT/scripts/jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
PORT="${OPTLAB_PORT:-8888}"
echo "==> JupyterLab on http://127.0.0.1:$PORT/lab, serving your working folder $WORKDIR"
echo "    (the link with its access token is printed below)"
[ "$(id -u)" = 0 ] && set -- --allow-root "$@"   # e.g. in a container
exec jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port="$PORT" \
    --ServerApp.root_dir="$WORKDIR" --ServerApp.open_browser="${OPTLAB_OPEN_BROWSER:-True}" "$@"
