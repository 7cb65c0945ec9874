"""Interactive widgets: each a pure model (numbers) and a thin ipywidgets view that updates in place.

The contract every widget follows
---------------------------------
1. **Model.** A pure function ``<name>_model(**params) -> <Name>State``: explicit arguments, no
   plotting, no widgets, returns a frozen dataclass of numbers that inherits
   :class:`~optlab.widgets._state.WidgetState`. Bad input raises ``ValueError`` naming the value and
   what was expected (:mod:`optlab.errors`). Extreme but legal settings never raise or warn: a run
   that blows up carries ``inf``/``nan`` (computed under ``np.errstate(all="ignore")``) and says so in a
   field (e.g. ``diverged=True``). Closed forms a lecture may also use live in the library
   (``optlab.problems``), with doctests, and the model calls them.
2. **State.** ``view.state`` *is* the model's dataclass for the controls' current values;
   ``view.state.to_dict()`` gives plain JSON data (lists, floats, ints, strings; a non-finite number
   becomes ``"diverged"``), which assignments grade.
3. **View.** A :class:`~optlab.widgets._view.WidgetView` subclass builds its controls, readouts and
   matplotlib figure **once** (a :class:`~optlab.widgets._figure.FigureImage`: plain Agg figure shown in
   an ``ipywidgets.Image``, identical in JupyterLab, Binder, nbval and a browser test) and afterwards
   only updates artists (``set_data``, ``set_xdata``, ``set_offsets``...). Expensive backgrounds --
   contours, vector fields, regime maps -- are computed in the constructor, never on a control event.
   The moving artists are named once with ``FigureImage.animate([...])``: everything else is drawn
   once into a background and each render only draws them over it (blitting), so keep axis limits
   fixed (plot in units that make them fixed, e.g. a velocity over its terminal value).
4. **One path.** ``view.controls`` maps the model's parameter names to the controls;
   ``view.set(**params)`` checks every value (the control's range or choices, then the model) and
   moves the controls, exactly as a student would, then runs the one update path: model -> readouts
   -> figure. A value outside a slider's range is a ``ValueError``, never silently clipped.
5. **Responsive.** Renders are coalesced (:class:`~optlab.widgets._view.LatestOnly`): while a render
   runs, newer slider values replace each other and only the newest is rendered next; inside a kernel
   the render runs on a background thread. ``view.state`` and the readouts are always the newest.
   Goals (``benchmarks/bench_widgets.py``): model <= 5 ms, view update with render <= 40 ms.
6. **Readouts** are generated from the state (:func:`~optlab.widgets._view.html_table`,
   :func:`~optlab.widgets._view.number`), never written by hand next to a control; a non-finite
   number reads ``"diverged"``, never ``nan``. Figure labels use mathtext (``r"$\\alpha\\lambda_i$"``).
7. **Accessible.** Every control has a ``description`` and a ``tooltip``/caption; sliders are keyboard
   operable (:data:`~optlab.widgets._view.KEYS_HELP`: arrows one step, PageUp/PageDown five, Home/End
   the ends) with a step a student can feel. Colours come from the Okabe-Ito palette
   (:mod:`optlab.widgets._palette`), every series also has its own marker and line style, reference
   marks are black/grey dash patterns with a label: nothing depends on colour alone.
8. **Documented and tested.** The view's docstring has a runnable example (doctest) and cites its
   slide; tests: the model against closed forms and ``optlab.optim`` runs, the view headless (``set``,
   then state, readouts, artists), a seeded fuzz test over the controls' extremes (no exception, no
   warning), one real-browser test (keyboard input, readout checked against the model), a row in
   ``benchmarks/bench_widgets.py``, a cell in ``lectures/00_widgets.ipynb`` and a row in README's table.
"""

from ._cache import LRUCache
from .curvature_explorer import CurvatureExplorer, CurvatureExplorerState, CurvatureRun, curvature_explorer_model, curvature_run
from .lr_regimes import LearningRateRegimes, LRRegimesState, lr_regimes_model
from .momentum import MomentumExplorer, MomentumState, momentum_model
from .normalization import (InputsState, LayersState, NormalizationEffect, NormalizationEffectState,
                            input_normalization_model, layer_normalization_model)
from .race import OptimizerRace, RaceState, race_model
from .saddle_flow import SaddleFlow, SaddleFlowState, saddle_flow_model

__all__ = ["LearningRateRegimes", "LRRegimesState", "lr_regimes_model",
           "MomentumExplorer", "MomentumState", "momentum_model",
           "OptimizerRace", "RaceState", "race_model",
           "SaddleFlow", "SaddleFlowState", "saddle_flow_model",
           "NormalizationEffect", "NormalizationEffectState", "InputsState", "LayersState",
           "input_normalization_model", "layer_normalization_model",
           "CurvatureExplorer", "CurvatureExplorerState", "CurvatureRun", "curvature_run", "curvature_explorer_model",
           "LRUCache"]
