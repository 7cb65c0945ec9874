"""What a committed notebook shows before it runs: a widget's saved output says to run its cell.

JupyterLab (before the kernel has run the cell) and static viewers show a widget output's text/plain
fallback; ipywidgets' default is the box's repr, ``VBox(children=(FloatSlider(value=0.125, ...``.
"""

import json
from pathlib import Path

import pytest

from optlab.widgets import (CurvatureExplorer, LearningRateRegimes, MomentumExplorer, NormalizationEffect,
                            OptimizerRace, SaddleFlow)
from optlab.widgets._view import RUN_HINT

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for pattern in ["lectures/*.ipynb", "assignments/*/*/*.ipynb"] for p in ROOT.glob(pattern))
WIDGET = "application/vnd.jupyter.widget-view+json"
VIEWS = [lambda: LearningRateRegimes([0.5, 2.0, 4.0]), MomentumExplorer,  # one row per widget view
         lambda: SaddleFlow(steps=10), lambda: OptimizerRace("ravine", ["SGD"], horizon=5), NormalizationEffect,
         lambda: CurvatureExplorer(steps=2, every=2)]


def outputs(path: Path):
    for cell in json.loads(path.read_text())["cells"]:
        yield from cell.get("outputs", [])


def text(output) -> str:
    plain = output.get("data", {}).get("text/plain", output.get("text", ""))
    return "".join(plain) if isinstance(plain, list) else plain


def test_notebooks_are_found():
    assert any(p.parent.name == "lectures" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_saved_widget_outputs_say_to_run_the_cell(path):
    for output in outputs(path):
        assert "VBox(children=" not in text(output), f"a widget's default repr is saved in {path.name}"
        if WIDGET in output.get("data", {}):
            assert "Run this cell to use the widget" in text(output), text(output)


@pytest.mark.parametrize("make", VIEWS)
def test_view_text_says_to_run_the_cell(make):
    view = make()
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == repr(view) and RUN_HINT in repr(view)
    assert bundle[WIDGET]["model_id"] == view.widget.model_id, "the page must still render the live widget"
