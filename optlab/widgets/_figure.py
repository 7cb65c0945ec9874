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

Tiles: a view that knows which axes changed names, per axes, a key of what its static part shows
(:meth:`FigureImage.show_background`, e.g. ``{ax_contours: surface, ax_loss: (surface, optimizers)}``).
Each axes owns a tile of the figure (the figure cut halfway between the axes' tight boxes: nothing else
draws there), and only the tiles whose
key changed are drawn again -- or pasted from the last :data:`TILES` tiles drawn. A tile is only used
when it gives the very pixels a full draw gives: if an axes draws outside its tile (a wider tick label),
the whole figure is drawn.
"""

from __future__ import annotations

import struct
import zlib

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._cache import LRUCache

#: how many tiles (one axes' static picture for one key) a figure keeps for reuse
TILES = 48
#: the least gap in pixels between two axes' tight boxes for tiles (antialiasing reaches about one pixel out)
TILE_PAD = 2


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
        self._keys: dict = {}  # axes -> the key of what its static part shows now (show_background)
        self._stale: set = set()  # axes whose key changed since the background was drawn
        self._cells: dict = {}  # axes -> (rows, columns) of its tile in the picture
        self._tiles = LRUCache(TILES)  # (axes index, key) -> the tile's pixels
        self._blank = None  # the figure's own colour, as Agg paints it

    def animate(self, artists) -> None:
        """Draw ``artists`` on every refresh over a background drawn once without them (blitting)."""
        self._animated = sorted(artists, key=lambda a: a.get_zorder())
        for artist in self._animated:
            artist.set_animated(True)
        self._background = None

    def redraw_background(self) -> None:
        """Draw the static part again (after a view changed a static artist); the next refresh uses it."""
        self._background = None
        self._tiles = LRUCache(TILES)

    def show_background(self, keys: dict) -> None:
        """Name what the static part of each axes shows now: ``{axes: key}``, a hashable key that determines
        everything static the axes draws (contours, limits, legend, title). The next refresh draws again
        only the axes whose key changed (or pastes their tile for that key, drawn before)."""
        for ax, key in keys.items():
            if ax not in self._keys or self._keys[ax] != key:
                self._stale.add(ax)
            self._keys[ax] = key

    def _draw(self) -> None:
        canvas = self.figure.canvas
        if not self._animated:
            canvas.draw()
            return
        if self._background is None or (self._stale and not self._draw_tiles()):
            self._draw_all()
        else:
            canvas.restore_region(self._background)
        for artist in self._animated:
            self.figure.draw_artist(artist)

    def _draw_all(self) -> None:
        """Draw the whole static part (and freeze the layout); find each axes' tile."""
        canvas = self.figure.canvas
        renderer = canvas.get_renderer()
        if self._keys and self._blank is None:  # tiles are used only by views that name their panels' keys
            renderer.clear()
            self.figure.patch.draw(renderer)
            h, w = renderer.height, renderer.width
            self._blank = np.asarray(renderer.buffer_rgba())[int(h) // 2, int(w) // 2].copy()
        canvas.draw()  # lays out and draws everything not animated
        self.figure.set_layout_engine("none")  # the layout is fixed from now on: the background stays valid
        self._background = canvas.copy_from_bbox(self.figure.bbox)
        cells = self._find_cells(canvas.get_renderer()) if self._keys else {}
        if cells != self._cells:  # tiles of other boxes do not fit any more
            self._cells, self._tiles = cells, LRUCache(TILES)
        picture = np.asarray(canvas.buffer_rgba())
        for i, ax in enumerate(self.figure.axes):
            if ax in self._keys and ax in self._cells:
                self._tiles[i, self._keys[ax]] = picture[self._cells[ax]].copy()
        self._stale.clear()

    def _find_cells(self, renderer) -> dict:
        """Each axes' tile, as numpy (rows, columns): the figure cut between every two axes' tight boxes
        halfway across the gap; none when two tight boxes overlap or the figure draws anything but axes."""
        fig = self.figure
        if fig.texts or fig.legends or fig.images or fig.lines or fig.patches or fig.artists or fig.subfigs:
            return {}
        height, width = int(renderer.height), int(renderer.width)
        boxes = {ax: ax.get_tightbbox(renderer) for ax in fig.axes}
        cells = {}
        for a, box in boxes.items():
            x0, x1, y0, y1 = 0, width, 0, height  # display pixels, y up
            for b, other in boxes.items():
                if b is a:
                    continue
                if box.x1 + 2 * TILE_PAD <= other.x0:  # b to the right: cut halfway across the gap
                    x1 = min(x1, int((box.x1 + other.x0) / 2))
                elif other.x1 + 2 * TILE_PAD <= box.x0:
                    x0 = max(x0, int((other.x1 + box.x0) / 2))
                elif box.y1 + 2 * TILE_PAD <= other.y0:
                    y1 = min(y1, int((box.y1 + other.y0) / 2))
                elif other.y1 + 2 * TILE_PAD <= box.y0:
                    y0 = max(y0, int((other.y1 + box.y0) / 2))
                else:  # too close: no tiles
                    return {}
            cells[a] = (slice(height - y1, height - y0), slice(x0, x1))  # rows count from the top
        return cells

    def _draw_tiles(self) -> bool:
        """Draw only the tiles of the axes whose key changed, over the background; ``False`` (nothing kept)
        when that would not give the pixels of a full draw."""
        if any(ax not in self._cells for ax in self._stale):
            return False
        canvas = self.figure.canvas
        renderer = canvas.get_renderer()
        canvas.restore_region(self._background)
        picture = np.asarray(renderer.buffer_rgba())  # a view: drawing changes it
        for i, ax in enumerate(self.figure.axes):
            if ax not in self._stale:
                continue
            cell, key = self._cells[ax], (i, self._keys[ax])
            if key in self._tiles:
                picture[cell] = self._tiles[key]
                continue
            before = picture.copy()
            picture[cell] = self._blank
            ax.draw(renderer)  # its static artists (animated ones are skipped), as a full draw draws them
            before[cell] = picture[cell]
            if not np.array_equal(before, picture):  # it drew outside its tile
                return False
            self._tiles[key] = picture[cell].copy()
        self._background = canvas.copy_from_bbox(self.figure.bbox)
        self._stale.clear()
        return True

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes."""
        self._draw()
        return png_bytes(np.asarray(self.figure.canvas.buffer_rgba()))

    def refresh(self) -> None:
        """Render the (already updated) artists into the image widget."""
        self.image.value = self.png()
