"""Checks on recordings, shared by the tests and the benchmarks: every JSON message validates
against its own schema (jsonschema); a file reads whole with the official reader; damaged copies."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from jsonschema import Draft202012Validator
from mcap.reader import NonSeekingReader, make_reader
from mcap.stream_reader import StreamReader


def validate_json_messages(path: Path) -> Counter[str]:
    """Validates every JSON message of `path` against the JSON schema stored in the file.

    Returns:
        Messages validated per topic.

    Raises:
        AssertionError: a message that breaks its schema (topic, sequence and the errors).
    """
    checked: Counter[str] = Counter()
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None, f"{path} has no summary"
        validators = {}
        for sid, schema in summary.schemas.items():
            if schema.encoding == "jsonschema":
                doc = json.loads(schema.data)
                Draft202012Validator.check_schema(doc)
                validators[sid] = Draft202012Validator(doc)
        for schema, channel, message in reader.iter_messages():
            if schema is None or schema.id not in validators:
                continue
            body = json.loads(message.data)
            errors = sorted(validators[schema.id].iter_errors(body), key=lambda e: list(e.path))
            assert not errors, (
                f"{channel.topic} seq {message.sequence} breaks {schema.name}: "
                + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
            )
            checked[channel.topic] += 1
    return checked


def read_whole(path: Path) -> int:
    """Reads `path` whole with the official reader, as every tool would, and returns its message count.

    Every record in file order (NonSeekingReader and StreamReader, CRCs checked), then through the
    summary: every message, metadata record and attachment; the counts must agree with the
    summary's statistics.

    Raises:
        AssertionError: no summary, or counts that disagree (and whatever the reader raises).
    """
    with open(path, "rb") as f:
        linear = sum(1 for _ in NonSeekingReader(f, validate_crcs=True).iter_messages())
    with open(path, "rb") as f:
        for _ in StreamReader(f, validate_crcs=True).records:
            pass
    with open(path, "rb") as f:
        r = make_reader(f)
        summary = r.get_summary()
        if summary is None:
            raise AssertionError(f"{path} has no summary")
        indexed = sum(1 for _ in r.iter_messages())
        metadata = sum(1 for _ in r.iter_metadata())
        attachments = sum(1 for _ in r.iter_attachments())
    stats = summary.statistics
    if not (linear == indexed == stats.message_count and metadata == stats.metadata_count
            and attachments == stats.attachment_count):
        raise AssertionError(f"counts disagree: linear {linear} messages, indexed {indexed}, metadata "
                             f"{metadata}, attachments {attachments}; statistics {stats}")
    return indexed


DAMAGE_SPAN = 4096  # bytes: "near the start" / "just before the cut"


def damaged(data: bytes, cut: int, flips: Iterable[tuple[str, int, int]] = ()) -> bytes:
    """`data` cut after `cut` bytes (a crash), with bytes flipped (damage).

    Args:
        data: a recording's bytes.
        cut: bytes kept, 0..len(data).
        flips: (where, offset, mask): the byte at `offset` (taken modulo the span) XORed with
            `mask`; where is "start" (within the first `DAMAGE_SPAN` bytes), "cut" (within the
            `DAMAGE_SPAN` bytes before the cut, counted back from it) or "any" (anywhere).
    """
    out = bytearray(data[:cut])
    for where, offset, mask in flips:
        if not out:
            break
        span = min(len(out), DAMAGE_SPAN)
        if where == "start":
            i = offset % span
        elif where == "cut":
            i = len(out) - 1 - offset % span
        elif where == "any":
            i = offset % len(out)
        else:
            raise ValueError(f"where: expected 'start', 'cut' or 'any', got {where!r}")
        out[i] ^= mask
    return bytes(out)
