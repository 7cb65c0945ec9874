"""A bounded memory for a widget's expensive settings: the last few results, least recently used dropped first.

A widget whose model trains a network keeps each setting's result in an :class:`LRUCache`, so moving a
control back to a setting seen before re-renders at slider speed, while the memory stays bounded by
``maxsize`` results (a few MB each here, far from Binder's 1-2 GB).

Example:
    >>> cache = LRUCache(2)
    >>> cache["a"], cache["b"] = 1, 2
    >>> cache["a"]          # "a" is now the most recently used
    1
    >>> cache["c"] = 3      # drops "b"
    >>> sorted(cache), cache.hits, cache.misses
    (['a', 'c'], 1, 0)
"""

from __future__ import annotations

from collections import OrderedDict

from ..errors import positive_int


class LRUCache:
    """A mapping that keeps at most ``maxsize`` items, forgetting the least recently used one first.

    ``key in cache`` does not count as a use; ``cache[key]`` does (and counts a hit); :meth:`get_or_compute`
    counts a miss when it has to compute.
    """

    def __init__(self, maxsize: int = 8):
        positive_int("LRUCache", "maxsize", maxsize)
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __contains__(self, key) -> bool:
        return key in self._items

    def __getitem__(self, key):
        value = self._items[key]
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def __setitem__(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    def get_or_compute(self, key, compute):
        """``cache[key]``, computing it as ``compute()`` (and keeping it) the first time."""
        if key in self._items:
            return self[key]
        self.misses += 1
        value = compute()
        self[key] = value
        return value
