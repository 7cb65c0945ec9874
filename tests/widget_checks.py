"""Checks the widget tests share."""

import re


def assert_no_nan_shown(html: str) -> None:
    """No readout shows nan or inf (the words, in the text a reader sees once the tags are gone)."""
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\b(nan|inf|-inf)\b", text, re.IGNORECASE), text
