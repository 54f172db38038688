"""Checks one section of the YAML config (``policy:``, ``safety:``, ...) before its dataclass is built.

Each section's dataclass validates its own values; what every section shares — it must be a
mapping, and every key must be one of the dataclass's fields — is checked here, with one wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oculus_server.errors import ConfigError


def section_values(
    d: Mapping[str, Any] | None, section: str, allowed: Sequence[str], hints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The section's keys and values as a new dict (None: empty).

    Args:
        d: the section as read from YAML (or given in code).
        section: its name in messages, e.g. "safety".
        allowed: the keys it accepts (its dataclass's fields).
        hints: unknown key -> where such keys belong instead, e.g. "belong in the 'safety:'
            section" (shown after the keys it applies to).

    Raises:
        ConfigError: `d` is not a mapping, or holds an unknown key (named, with the allowed ones).
    """
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ConfigError(f"{section} config: expected a mapping, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        by_hint: dict[str, list[str]] = {}
        for k in unknown:
            if hints and k in hints:
                by_hint.setdefault(hints[k], []).append(str(k))
        notes = [f"{', '.join(keys)} {hint}" for hint, keys in by_hint.items()]
        raise ConfigError(
            f"{section} config: unknown key {unknown[0]!r}"
            + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
            + f"; allowed keys: {', '.join(allowed)}"
            + (f"; {', '.join(notes)}" if notes else "")
        )
    return dict(d)
