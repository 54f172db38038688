"""Checks any recording against its own schemas: every JSON message validates (jsonschema)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from jsonschema import Draft202012Validator
from mcap.reader import make_reader


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
