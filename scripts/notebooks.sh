#!/usr/bin/env bash
# Re-execute the lectures in place, each in a fresh kernel, so that the outputs committed with
# lectures/ are the ones the current optlab prints (nbval compares them cell by cell).
#   bash scripts/notebooks.sh                                every lectures/*.ipynb
#   bash scripts/notebooks.sh lectures/02_the_landscape.ipynb  only the notebooks given
#   OPTLAB_VENV  the environment (default: .venv in the repository). When it exists it is used as it is:
#                nothing is installed or upgraded. Only when it is missing does scripts/env.sh make it.
# No timing metadata and no widget state are written and consecutive prints are merged into one output,
# so re-executing an unchanged lecture changes nothing but what its cells print.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OPTLAB_VENV:-$ROOT/.venv}"
if [ -x "$VENV/bin/python" ]; then
    export PATH="$VENV/bin:$PATH"
else
    source "$ROOT/scripts/env.sh"
fi
cd "$ROOT"
# the kernel imports this checkout's optlab, whichever checkout the environment was installed from
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ $# -gt 0 ] || set -- lectures/*.ipynb
for nb in "$@"; do
    t0=$(date +%s)
    python -m jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
        --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 \
        --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.store_widget_state=False \
        --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor "$nb"
    echo "==> $nb re-executed in $(( $(date +%s) - t0 )) s"
done
