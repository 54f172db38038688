"""`SessionMemory`: a policy's per-session memories, least recently used dropped beyond a bound."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")


class SessionMemory(Generic[S]):
    """Session key → memory, at most `max_sessions` kept (the least recently used goes first).

    Args:
        factory: makes the memory of a session seen for the first time.
        max_sessions: bound on the memories kept (>= 1).
    """

    def __init__(self, factory: Callable[[], S], max_sessions: int) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions: expected >= 1, got {max_sessions}")
        self._factory = factory
        self.max_sessions = max_sessions
        self._items: OrderedDict[str, S] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> S | None:
        """The memory of `key`, or None (does not count as a use)."""
        return self._items.get(key)

    def use(self, key: str) -> S:
        """The memory of `key`, made by the factory if there is none; marks it most recently used."""
        s = self._items.get(key)
        if s is None:
            s = self.put(key, self._factory())
        else:
            self._items.move_to_end(key)
        return s

    def put(self, key: str, memory: S) -> S:
        """Sets the memory of `key` (a new key counts as most recently used) and returns it."""
        self._items[key] = memory
        while len(self._items) > self.max_sessions:
            self._items.popitem(last=False)
        return memory

    def pop(self, key: str) -> None:
        """Forgets `key` (no-op if unknown)."""
        self._items.pop(key, None)
