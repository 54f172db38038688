"""Keys never reach a log: `redact` on every line, and ``vla-server serve --log-level debug`` with
a `/v1/stream` session, an openpi connection (``Authorization: Api-Key``), HTTP calls with a
Bearer header and with ``?api_key=``, a failed key — the secret appears nowhere in its output.

Seen case (issue 17, 5): with ``--log-level debug`` each openpi connection logged its ``Api-Key``
header in full (the websocket library logs every handshake header at debug).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import httpx
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.vla_serve_process import droid_obs, openpi_connect, openpi_infer, serve_process, write_catalog
from tests.vla_service import auth_msg, frame_msg
from vla_server.logs import REDACTED, JsonFormatter, redact

SECRET_CHARS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=8,
                       max_size=60)


@given(secret=SECRET_CHARS, before=st.text(max_size=30), after=st.sampled_from(["", " ", "\n", "\"", "'", "&x=1"]))
def test_a_key_anywhere_in_a_line_is_redacted(secret: str, before: str, after: str) -> None:
    key = f"vla_0123456789ab_{secret}"
    out = redact(before + key + after)
    assert secret not in out.replace(before, "", 1) or secret in before
    assert "vla_0123456789ab_" + REDACTED in out


def test_credential_headers_and_query_parameters_are_redacted() -> None:
    lines = {
        "< Authorization: Api-Key lab-key-0123456789": "lab-key-0123456789",
        "authorization: Bearer abc.def.ghi": "abc.def.ghi",
        "X-API-Key: s3cr3t-value": "s3cr3t-value",
        "GET /v1/arena/episodes/x/video?api_key=s3cr3t&range=1 HTTP/1.1": "s3cr3t",
        "{'authorization': 'Api-Key zzz-top'}": "zzz-top",
        '{"type": "auth", "api_key": "plain-secret"}': "plain-secret",
    }
    for line, secret in lines.items():
        assert secret not in redact(line), line
        assert REDACTED in redact(line)
    assert redact("model warm pid=12 rss_mb=80") == "model warm pid=12 rss_mb=80"


def test_the_json_formatter_redacts_messages_extras_and_tracebacks() -> None:
    key = "vla_0123456789ab_SuperSecretValue"
    try:
        raise ValueError(f"bad {key}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "got %s", (key,), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    record.header = f"Bearer {key}"
    line = JsonFormatter().format(record)
    assert "SuperSecretValue" not in line and json.loads(line)["msg"] == "got vla_0123456789ab_" + REDACTED


def test_serve_at_debug_level_never_logs_a_key(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "models.yaml", "  - {id: arm, backend: scripted, params: {horizon: 2}}\n")
    with serve_process(tmp_path, catalog, "--no-web", "--no-arena", log_level="debug") as svc:
        key = svc.new_key("logged", "pro")
        secret = key.split("_", 2)[2]
        assert svc.openpi_port is not None
        pi, _ = openpi_connect(svc.openpi_port, key)
        with pi:
            openpi_infer(pi, droid_obs())
        with connect(svc.ws, open_timeout=10) as ws:
            ws.send(auth_msg(key, "arm", fps=10))
            ws.send(frame_msg())
            ws.recv(timeout=30)
            ws.recv(timeout=30)
        httpx.get(svc.http + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        httpx.get(svc.http + f"/v1/sessions?api_key={key}", timeout=30)
        httpx.get(svc.http + "/v1/models", headers={"X-API-Key": key + "x"}, timeout=30)  # a failed key
        with contextlib.suppress(Exception):
            openpi_connect(svc.openpi_port, key + "wrong")
        time.sleep(0.5)
        text = svc.log_text()
    assert "authorization" in text.lower(), "debug logging did not log the handshake: the test proves nothing"
    assert REDACTED in text
    assert secret not in text
