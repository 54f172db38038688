"""`ServiceConfig`: the shipped YAML equals the defaults, and every source (file, environment,
command line) is validated with an error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_server.config import ConfigError, ServiceConfig, load_config
from vla_server.registry.devices import DeviceSpec

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_exactly_the_defaults() -> None:
    assert load_config(ROOT / "configs" / "vla_server.yaml", env={}) == ServiceConfig()


def test_sources_in_order(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "stream: {queue_max_size: 4}\n"
        "registry: {eviction: lfu, devices: [{id: cpu}, {id: 'cuda:0', memory_mb: 8000}]}\n"
    )
    c = load_config(f, env={})
    assert c.stream.queue_max_size == 4 and c.registry.eviction == "lfu"
    assert c.registry.devices == (DeviceSpec("cpu"), DeviceSpec("cuda:0", 8000.0))
    assert load_config(f, env={"INFERENCE_QUEUE_MAX_SIZE": "7"}).stream.queue_max_size == 7
    c = load_config(f, {"stream.queue_max_size": 1, "server.openpi_port": None}, env={"INFERENCE_QUEUE_MAX_SIZE": "7"})
    assert c.stream.queue_max_size == 1 and c.server.openpi_port is None
    assert c.transport_max_bytes == 4 * c.stream.max_message_bytes and c.keys_db.name == "keys.sqlite3"


@pytest.mark.parametrize(
    ("text", "env", "overrides", "message"),
    [
        ("registry: {max_models: two}", {}, {}, "registry.max_models: expected an integer, got str 'two'"),
        ("registry: {evict: lru}", {}, {}, "registry: unknown key(s) ['evict']"),
        ("streams: {}", {}, {}, "top level: unknown key(s) ['streams']"),
        ("registry: {eviction: fifo}", {}, {}, "registry.eviction: expected one of ('lru', 'lfu')"),
        ("stream: {safety: {max_jump: -1}}", {}, {}, "safety.max_jump: expected a positive number"),
        ("stream: {safety: {workspace_min: [0, 0]}}", {}, {}, "workspace_min: expected 3 values, got 2"),
        ("server: {port: 70000}", {}, {}, "server.port: expected 0..65535"),
        ("server: {web: 'yes'}", {}, {}, "server.web: expected true or false"),
        ("registry: {devices: [{id: 'tpu:0'}]}", {}, {}, "expected 'cpu' or 'cuda:N'"),
        (
            "",
            {"INFERENCE_QUEUE_MAX_SIZE": "many"},
            {},
            "INFERENCE_QUEUE_MAX_SIZE: expected an integer >= 1, got 'many'",
        ),
        ("", {"INFERENCE_QUEUE_MAX_SIZE": "0"}, {}, "stream.queue_max_size: expected an integer >= 1, got 0"),
        ("", {}, {"registry.idle_ttl_s": -1.0}, "registry.idle_ttl_s: expected >= 0"),
        ("- a\n- b", {}, {}, "expected a mapping of sections, got list"),
        ("registry: [", {}, {}, "cannot read configuration"),
        ("registry: {max_models: 1, pinned: [a, b]}", {}, {}, "2 pinned models exceed max_models 1"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, env: dict, overrides: dict, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f, overrides, env=env)
    assert message in str(info.value)
    if "INFERENCE" not in message:
        assert str(f) in str(info.value)
