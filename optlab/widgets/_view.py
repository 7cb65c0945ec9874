"""What every widget view shares: how it shows itself, and what a saved notebook shows in its place.

A notebook saves a widget's output as a reference to a live model plus a plain-text fallback. Until
the cell runs (a notebook just opened, a static viewer such as GitHub's), only that fallback can be
shown, so it says what to do instead of ipywidgets' ``VBox(children=(FloatSlider(value=0.125, ...``.
"""

from __future__ import annotations

RUN_HINT = "Run this cell to use the widget (it needs a running kernel)."


class WidgetView:
    """A view shows ``self.widget`` (an ipywidgets box); its text form is :data:`RUN_HINT`."""

    widget = None  #: the ipywidgets box the view shows (set by the subclass)

    def __repr__(self) -> str:
        return f"[{type(self).__name__}] {RUN_HINT}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The box's own output (its model's id, which the page renders), with the hint as the text."""
        return {**self.widget._repr_mimebundle_(), "text/plain": repr(self)}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
