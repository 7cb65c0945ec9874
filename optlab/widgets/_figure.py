"""A matplotlib figure shown in an ``ipywidgets.Image``: built once, its artists updated in place.

The figure is a plain :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot state, no backend
to configure), so a widget looks the same in JupyterLab, on Binder, under nbval and in a browser test.
After a view changes its artists (``set_data``, ``set_xdata``...), :meth:`FigureImage.refresh` renders
the same figure again into the image widget.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class FigureImage:
    """Owns a figure and the ``Image`` widget that shows it."""

    def __init__(self, *, figsize=(7.5, 3.2), dpi=90, ncols=1):
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        self.axes = self.figure.subplots(1, ncols, squeeze=False)[0]
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="auto"))

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes."""
        buf = io.BytesIO()
        self.figure.canvas.print_png(buf)
        return buf.getvalue()

    def refresh(self) -> None:
        """Render the (already updated) artists into the image widget."""
        self.image.value = self.png()
