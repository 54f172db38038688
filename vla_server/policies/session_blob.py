"""The bytes of a policy's exported session memory: compact JSON with a format version ``"v"``.

`export_session`/`import_session` of the policies that keep memory (and the arena's state blobs
that carry it) use these, so every policy's blob is read back with the same checks and errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

S = TypeVar("S")


def encode_session(version: int, fields: Mapping[str, Any]) -> bytes:
    """``{"v": version, **fields}`` as compact UTF-8 JSON."""
    return json.dumps({"v": version, **fields}, separators=(",", ":")).encode()


def decode_session(data: bytes, version: int, what: str, build: Callable[[dict[str, Any]], S]) -> S:
    """Parses what `encode_session` wrote and builds the session from its fields.

    Args:
        data: the exported bytes (non-empty).
        version: the format version expected in ``"v"``.
        what: the policy's name, for the error ("color-reach").
        build: makes the session from the decoded document; raises ValueError, KeyError,
            TypeError, IndexError or AttributeError on a bad field.

    Raises:
        ValueError: ``not an exported {what} session: ...`` (not JSON, another version, a bad field).
    """
    try:
        doc = json.loads(bytes(data).decode())
        if doc.get("v") != version:
            raise ValueError(f"format {doc.get('v')!r}, expected {version}")
        return build(doc)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an exported {what} session: {exc}") from exc
