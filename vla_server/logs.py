"""Structured logs: one JSON object per line on stderr.

Modules log with the standard library and put their fields in ``extra`` (``event`` names what
happened)::

    log.info("model warm", extra={"event": "model_warm", "model": "color-reach", "pid": 123})

→ ``{"ts": 1764412345.123, "level": "info", "logger": "vla_server.registry", "msg": "model warm",
"event": "model_warm", "model": "color-reach", "pid": 123}``.

API keys are never logged, at any level and from any library: every line passes `redact` before
it is written (a key's secret, the value of an ``Authorization`` / ``X-API-Key`` header, an
``api_key=`` query parameter become ``[redacted]``). This matters at ``--log-level debug``, where
the websocket library logs every handshake header.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

REDACTED = "[redacted]"
_SECRETS = (
    # vla_<12 hex key id>_<secret>: the id is public (it names the key in `keys list`), the secret not
    (re.compile(r"(vla_[0-9a-fA-F]{12}_)[A-Za-z0-9_\-]+"), r"\1" + REDACTED),
    (re.compile(r"((?:authorization|x-api-key)['\"]?\s*[:=,]\s*['\"]?(?:(?:bearer|api-key|basic)\s+)?)[^\s'\",}\]]+",
                re.IGNORECASE), r"\1" + REDACTED),
    (re.compile(r"((?:api_key|api-key|apikey)=)[^&\s'\"]+", re.IGNORECASE), r"\1" + REDACTED),
    (re.compile(r"(['\"]api_key['\"]\s*:\s*['\"])[^'\"]*", re.IGNORECASE), r"\1" + REDACTED),
)


def redact(text: str) -> str:
    """`text` with API keys and credential headers replaced by ``[redacted]``."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A plain-text formatter whose output passes `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_STANDARD = set(vars(logging.LogRecord("x", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, default=str, separators=(",", ":")))


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Sends `vla_server`, uvicorn and websockets logs to stderr as JSON lines (``fmt="json"``) or
    plain text, every line redacted (`redact`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for name in ("vla_server", "uvicorn", "uvicorn.error", "websockets"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # it would log ?api_key= query strings
