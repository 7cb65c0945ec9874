"""A matplotlib figure shown in an ``ipywidgets.Image``: built once, its artists updated in place.

The figure is a plain :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot state, no backend
to configure), so a widget looks the same in JupyterLab, on Binder, under nbval and in a browser test.
After a view changes its artists (``set_data``, ``set_xdata``...), :meth:`FigureImage.refresh` renders
the same figure again into the image widget.

Fast path (blitting): a view names the artists that move with the controls in :meth:`FigureImage.animate`.
Everything else -- axes, ticks, labels, contours, fields, regime maps, legends -- is drawn once into a
background (and the layout frozen); a refresh then restores that background, draws only the named
artists (in z-order, so a mark that sits above the moving line stays above it: name it too), and
encodes the PNG with fast compression (:func:`png_bytes`). :meth:`FigureImage.redraw_background` draws the background again
after a view changed a static artist (a new surface, new axis limits).
"""

from __future__ import annotations

import struct
import zlib

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_bytes(rgba: np.ndarray, level: int = 1) -> bytes:
    """An ``(h, w, 4)`` uint8 image as PNG: every row unfiltered, one zlib stream at ``level``.

    Adaptive row filters (what general encoders try per row) cost more time than they save here:
    a figure is mostly flat colour, which zlib compresses well by itself. RGBA, as Agg's buffer is,
    so that nothing is copied pixel by pixel.

    Example:
        >>> png_bytes(np.zeros((1, 2, 4), dtype=np.uint8))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    h, w, _ = rgba.shape
    raw = np.empty((h, 1 + 4 * w), dtype=np.uint8)  # each row: filter type 0, then its pixels
    raw[:, 0] = 0
    raw[:, 1:] = np.ascontiguousarray(rgba).reshape(h, 4 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8 bits, colour type 6 (RGBA)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(memoryview(raw), level))
            + chunk(b"IEND", b""))


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
        return png_bytes(np.asarray(self.figure.canvas.buffer_rgba()))

    def refresh(self) -> None:
        """Render the (already updated) artists into the image widget."""
        self.image.value = self.png()
