"""What every widget view shares: controls -> model -> readouts and figure, ``state``, ``set``, coalesced renders.

A view subclass builds its controls, readouts and figure once, then calls :meth:`WidgetView._connect`.
From then on every change of a control -- dragged, typed, pressed on the keyboard, or made by
:meth:`WidgetView.set` -- runs the same path, :meth:`WidgetView._update`:

1. ``state = self._compute(values)``: the widget's pure model on the controls' values (cheap, a few ms);
   ``view.state`` is this dataclass, always the newest setting;
2. ``self._show(state)``: the readouts (HTML text generated from the state) -- cheap, done at once;
3. the figure: ``self._draw(state)`` updates the existing artists and the figure is rendered into its
   image, through a :class:`LatestOnly` queue: while one render runs, newer states replace each other and
   only the newest is rendered next. In a Jupyter kernel renders run on a background thread so that
   the kernel keeps reading slider events meanwhile; elsewhere (tests, benchmarks, doctests) they run
   inline, so after ``view.set(...)`` the image is already the new one.

A saved notebook shows a widget's output as a reference to a live model plus a plain-text fallback.
Until the cell runs (a notebook just opened, a static viewer such as GitHub's), only that fallback can
be shown, so it says what to do instead of ipywidgets' ``VBox(children=(FloatSlider(value=0.125, ...``.

Readout helpers: :func:`number` (``"diverged"`` for a non-finite value) and :func:`html_table` (the
styled table every widget uses: spaced cells, ruled header, right-aligned tabular numerals).
"""

from __future__ import annotations

import html
import math
import sys
import threading
import traceback

from ..errors import check, is_integer, is_number, value_error
from ._state import DIVERGED

RUN_HINT = "Run this cell to use the widget (it needs a running kernel)."
#: how the sliders answer the keyboard (noUiSlider inside ipywidgets), for the widgets' descriptions
KEYS_HELP = ("Keyboard: click a slider's handle or Tab to it, then Left/Right moves one step, "
             "PageUp/PageDown five steps, Home/End to the ends.")

_RENDER_LOCK = threading.Lock()  # matplotlib's caches (fonts, mathtext) are shared: one render at a time
_NOTHING = object()


def in_kernel() -> bool:
    """Whether this runs inside a Jupyter kernel (where renders go to a background thread)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LatestOnly:
    """Call ``render(item)`` for submitted items, skipping any that a newer one replaced meanwhile.

    ``submit(item)`` while a render runs only stores ``item`` as the next one (replacing an older
    waiting item); when the render ends, the newest waiting item is rendered. With
    ``background=True`` the renders run on a daemon thread and ``submit`` returns at once; otherwise
    ``submit`` renders before it returns (an item submitted from inside ``render`` is rendered right
    after it, not nested in it). An exception in ``render`` is printed and re-raised by :meth:`wait`.

    Example:
        >>> seen = []
        >>> queue = LatestOnly(seen.append, background=False)
        >>> queue.submit(1); queue.submit(2)
        >>> seen
        [1, 2]
    """

    def __init__(self, render, *, background: bool):
        self._render, self.background = render, background
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = _NOTHING
        self._busy = False
        self.error: BaseException | None = None
        self.rendered = 0  #: how many renders ran

    def submit(self, item) -> None:
        with self._lock:
            self._pending = item
            if self._busy:
                return
            self._busy = True
            self._idle.clear()
        if self.background:
            threading.Thread(target=self._drain, name="optlab-widget-render", daemon=True).start()
        else:
            self._drain()

    def _drain(self) -> None:
        while True:
            with self._lock:
                item, self._pending = self._pending, _NOTHING
                if item is _NOTHING:
                    self._busy = False
                    self._idle.set()
                    return
            try:
                with _RENDER_LOCK:
                    self._render(item)
                self.rendered += 1
            except BaseException as error:  # shown, kept for wait(); the next item still renders
                self.error = error
                if self.background:
                    traceback.print_exc()
                else:
                    with self._lock:
                        self._busy = False
                        self._idle.set()
                    raise

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is rendering or waiting; re-raise a render's exception. False on timeout."""
        done = self._idle.wait(timeout)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return done


def number(x, spec: str = ".4g") -> str:
    """``x`` formatted with ``spec``, or ``"diverged"`` when it is not finite (a readout never shows nan)."""
    return format(x, spec) if x is not None and math.isfinite(x) else DIVERGED


_CELL = "padding:1px 0.8em;text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap"
_HEAD = "padding:1px 0.8em;text-align:right;border-bottom:1px solid #888;font-weight:600;white-space:nowrap"


def html_table(headers, rows, *, css_class: str, caption: str = "") -> str:
    """A styled HTML table: ``headers`` (HTML, e.g. ``"&alpha;&lambda;<sub>i</sub>"``), ``rows`` of cell
    text (escaped here), an optional ``caption`` (HTML) above it, all in ``<div class=css_class>``.

    Example:
        >>> print(html_table(["i"], [["0"]], css_class="demo"))  # doctest: +ELLIPSIS
        <div class='demo'><table ...><tr><th style=...>i</th></tr><tr><td style=...>0</td></tr></table></div>
    """
    head = "".join(f"<th style='{_HEAD}'>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='{_CELL}'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<div style='margin:0.2em 0 0.3em 0'>{caption}</div>" if caption else ""
    return (f"<div class='{css_class}'>{cap}<table style='border-collapse:collapse;margin:0.2em 0'>"
            f"<tr>{head}</tr>{body}</table></div>")


def check_control_value(owner: str, name: str, control, value) -> None:
    """Raise ``ValueError`` unless ``control`` (a slider, a choice, a checkbox) can take ``value`` as it is:
    ipywidgets would silently clip a slider value beyond its ends, which a student would not see."""
    if hasattr(control, "base"):  # FloatLogSlider: min/max are exponents
        low, high = control.base ** control.min, control.base ** control.max
    else:
        low, high = getattr(control, "min", None), getattr(control, "max", None)
    options = getattr(control, "_options_values", None)
    if options is not None and isinstance(control.value, tuple):  # a multiple choice (SelectMultiple)
        ok = isinstance(value, (list, tuple)) and len(set(value)) == len(value) and all(
            any(v == o and type(v) is type(o) for o in options) for v in value)
        check(owner, name, value, ok, "distinct choices among " + ", ".join(repr(o) for o in options))
    elif options is not None:
        ok = any(value == o and type(value) is type(o) for o in options)
        check(owner, name, value, ok, "one of " + ", ".join(repr(o) for o in options))
    elif isinstance(control.value, bool):
        check(owner, name, value, isinstance(value, bool), "True or False")
    elif low is not None:
        integral = is_integer(control.value)
        ok = (is_integer(value) if integral else is_number(value) and math.isfinite(value)) and low <= value <= high
        kind = "an integer" if integral else "a number"
        check(owner, name, value, ok, f"{kind} in [{low:g}, {high:g}] (the control's range)")


class WidgetView:
    """A view shows ``self.widget`` (an ipywidgets box) and keeps ``self.state`` = its model on the controls.

    Subclasses define ``_compute(values) -> state``, ``_show(state)`` (readouts) and ``_draw(state)``
    (artists; the base renders the figure ``self._fig`` afterwards), build their controls into
    ``self.controls`` (name -> widget, the names being the model's parameters) and call
    :meth:`_connect` once everything exists.
    """

    widget = None  #: the ipywidgets box the view shows (set by the subclass)
    controls: dict = {}  #: name -> the ipywidgets control that sets that model parameter
    background_render: bool | None = None  #: renders on a thread: None = only inside a Jupyter kernel

    # ----- what a subclass provides -------------------------------------------------------------------

    def _compute(self, values: dict):
        raise NotImplementedError

    def _show(self, state) -> None:
        """Update the readouts from ``state`` (default: none)."""

    def _draw(self, state) -> None:
        raise NotImplementedError

    # ----- the shared path ----------------------------------------------------------------------------

    def _connect(self) -> None:
        """Compute and show the first state, render it, and route every control's changes to :meth:`_update`."""
        background = in_kernel() if self.background_render is None else self.background_render
        self._renders = LatestOnly(self._render, background=background)
        self._holding = False
        self._state = self._compute(self.values())
        self._show(self._state)
        with _RENDER_LOCK:
            self._render(self._state)  # the first picture is there when the constructor returns
        for control in self.controls.values():
            control.observe(self._on_control, names="value")

    def _render(self, state) -> None:
        self._draw(state)
        self._fig.refresh()

    def _on_control(self, change) -> None:
        if not self._holding:
            self._update()

    def _update(self) -> None:
        values = self.values()
        checked, self._checked = getattr(self, "_checked", None), None
        self._state = state = checked[1] if checked is not None and checked[0] == values else self._compute(values)
        self._show(state)
        self._renders.submit(state)

    @property
    def state(self):
        """The model's dataclass for the controls' current values (``state.to_dict()``: plain numbers)."""
        return self._state

    def values(self) -> dict:
        """The controls' current values by parameter name."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **params) -> None:
        """Set controls by parameter name, as a student moving them would (same path: one update).

        Every value is checked first (the control's range or choices, then the model's own checks), so
        a bad value raises ``ValueError`` and changes nothing.
        """
        owner = f"{type(self).__name__}.set"
        for name, value in params.items():
            if name not in self.controls:
                raise value_error(owner, "parameter", name, "one of " + ", ".join(map(repr, self.controls)))
            check_control_value(owner, name, self.controls[name], value)
        values = {**self.values(), **params}
        self._checked = (values, self._compute(values))  # the model's checks, before any control moves
        self._holding = True
        try:
            for name, value in params.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        self._update()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the figure shows the newest state (renders run on a thread inside a kernel)."""
        return self._renders.wait(timeout)

    # ----- how it shows itself ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"[{type(self).__name__}] {RUN_HINT}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The box's own output (its model's id, which the page renders), with the hint as the text."""
        return {**self.widget._repr_mimebundle_(), "text/plain": repr(self)}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
