"""One colour-blind-safe look for every widget: Okabe-Ito colours, each paired with a marker and a line style.

Okabe & Ito's eight colours stay distinct under the common colour-vision deficiencies; on top of that a
series never depends on colour alone: :func:`series_style` gives series ``i`` its own colour, marker
*and* line style, so a plot still reads in grey-scale print. Marks (a critical value drawn as a vertical
line) use :data:`MARK_STYLES`: black/grey with distinct dash patterns and a text label, never a hue that
a series also uses.

Reference: M. Okabe, K. Ito (2008), "Color Universal Design (CUD): how to make figures and
presentations that are friendly to colorblind people", https://jfly.uni-koeln.de/color/.

Example:
    >>> series_style(0)
    {'color': '#0072B2', 'marker': 'o', 'linestyle': '-'}
"""

from __future__ import annotations

#: Okabe-Ito by name (yellow is left out of the series: it is too light on white)
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7",
}
#: the colours series take in turn
SERIES_COLORS = tuple(OKABE_ITO[n] for n in ["blue", "vermillion", "bluish green", "reddish purple", "orange",
                                             "sky blue"])
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # one more than the colours: (colour, marker) pairs repeat after 42
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)))
#: how the marks (vertical or horizontal reference lines) look: black or grey, a dash pattern each
MARK_STYLES = (
    {"color": "#000000", "linestyle": (0, (4, 2))},
    {"color": "#555555", "linestyle": (0, (1, 1.5))},
    {"color": "#000000", "linestyle": (0, (6, 2, 1, 2))},
    {"color": "#555555", "linestyle": (0, (8, 3))},
)
#: the current setting (the point or line that moves with the controls)
CURRENT = {"color": OKABE_ITO["orange"], "linewidth": 3.0}


def series_style(i: int) -> dict:
    """Colour, marker and line style of series ``i`` (cycles after :data:`SERIES_COLORS`'s length)."""
    return {"color": SERIES_COLORS[i % len(SERIES_COLORS)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def mark_style(i: int) -> dict:
    """Colour and dash pattern of reference mark ``i``."""
    return dict(MARK_STYLES[i % len(MARK_STYLES)])
