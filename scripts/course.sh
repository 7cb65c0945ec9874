#!/usr/bin/env bash
# Start the course: make the environment if missing, install, and open JupyterLab on lectures/.
#   OPTLAB_PORT  the port (default 8888); JupyterLab serves on 127.0.0.1 only.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PORT="${OPTLAB_PORT:-8888}"
echo "==> JupyterLab on http://127.0.0.1:$PORT/lab (the link with its access token is printed below)"
[ "$(id -u)" = 0 ] && set -- --allow-root "$@"   # e.g. in a container
exec jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port="$PORT" \
    --ServerApp.root_dir="$ROOT/lectures" --ServerApp.open_browser="${OPTLAB_OPEN_BROWSER:-True}" "$@"
