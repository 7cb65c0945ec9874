"""A matplotlib figure shown in an ``ipywidgets.Image``: built once, its artists updated in place.

The figure is a plain :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot state, no backend
to configure), so a widget looks the same in JupyterLab, on Binder, under nbval and in a browser test.
After a view changes its artists (``set_data``, ``set_xdata``...), :meth:`FigureImage.refresh` renders
the same figure again into the image widget.

Fast path (blitting): a view names the artists that move with the controls in :meth:`FigureImage.animate`.
Everything else -- axes, ticks, labels, contours, fields, regime maps, legends -- is drawn once into a
background (and the layout frozen); a refresh then restores that background, draws only the named
artists (in z-order, so a mark that sits above the moving line stays above it: name it too), and
encodes the PNG with fast compression. :meth:`FigureImage.redraw_background` draws the background again
after a view changed a static artist (a new surface, new axis limits).
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


class FigureImage:
    """Owns a figure and the ``Image`` widget that shows it."""

    def __init__(self, *, figsize=(7.5, 3.2), dpi=90, ncols=1, nrows=1):
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        axes = self.figure.subplots(nrows, ncols, squeeze=False)
        self.axes = axes[0] if nrows == 1 else axes.ravel()
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="auto"))
        self._animated: list = []
        self._background = None

    def animate(self, artists) -> None:
        """Draw ``artists`` on every refresh over a background drawn once without them (blitting)."""
        self._animated = sorted(artists, key=lambda a: a.get_zorder())
        for artist in self._animated:
            artist.set_animated(True)
        self._background = None

    def redraw_background(self) -> None:
        """Draw the static part again (after a view changed a static artist); the next refresh uses it."""
        self._background = None

    def _draw(self) -> None:
        canvas = self.figure.canvas
        if not self._animated:
            canvas.draw()
            return
        if self._background is None:
            canvas.draw()  # lays out and draws everything not animated
            self.figure.set_layout_engine("none")  # the layout is fixed from now on: the background stays valid
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        else:
            canvas.restore_region(self._background)
        for artist in self._animated:
            self.figure.draw_artist(artist)

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes."""
        self._draw()
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.figure.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def refresh(self) -> None:
        """Render the (already updated) artists into the image widget."""
        self.image.value = self.png()
