"""The model catalog: built-in entries, configs/models.yaml, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_server.catalog import CatalogError, default_catalog, load_catalog
from vla_server.policies.factory import build_policy
from vla_server.policies.latency import LatencyPolicy

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_file_is_the_built_in_catalog() -> None:
    assert load_catalog(ROOT / "configs" / "models.yaml", include_disabled=True) == default_catalog(True)
    assert load_catalog(ROOT / "configs" / "models.yaml") == load_catalog()


def test_default_entries() -> None:
    cat = load_catalog()
    assert list(cat) == ["color-reach", "color-reach@openvla-7b", "color-reach@rt-2", "color-reach@octo-base",
                         "onnx-tiny"]
    assert [cat[k].latency_ms for k in list(cat)[:4]] == [0.0, 283.0, 100.0, 50.0]
    assert cat["onnx-tiny"].backend == "onnx"
    everything = load_catalog(include_disabled=True)
    assert everything["openpi-droid"].backend == "openpi-remote"
    assert everything["openpi-droid"].params["url"].startswith("ws://")


def test_every_entry_builds_and_latency_is_wrapped_only_when_asked() -> None:
    for spec in load_catalog(include_disabled=True).values():
        wrapped = build_policy(spec)
        bare = build_policy(spec, emulate_latency=False)
        assert isinstance(wrapped, LatencyPolicy) == (spec.latency_ms > 0)
        assert not isinstance(bare, LatencyPolicy)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "models.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [", "not valid YAML"),
        ("- id: x", "single key 'models'"),
        ("models: {}\nextra: 1", "single key 'models'"),
        ("models: 3", "'models' must be a list"),
        ("models: [3]", r"models\[0\]: expected a mapping"),
        ("models:\n  - backend: scripted", "'id' and 'backend' are required"),
        ("models:\n  - {id: a, backend: magic}", r"models\[0\] \(id 'a'\).*backend.*'magic'"),
        ("models:\n  - {id: a, backend: scripted, colour: red}", "unknown keys.*colour"),
        (
            "models:\n  - {id: a, backend: scripted}\n  - {id: a, backend: scripted}",
            r"models\[1\].*duplicate model id 'a'",
        ),
        ("models:\n  - {id: a, backend: color-reach, latency_ms: -5}", "latency_ms"),
        (
            "models:\n  - {id: a, backend: color-reach, params: {hover_z: high}}",
            r"params.hover_z: expected a number.*'high'",
        ),
        ("models:\n  - {id: a, backend: color-reach, params: {speed: 3}}", r"unknown keys \['speed'\]"),
        ("models:\n  - {id: a, backend: onnx, params: {image_scale: 3}}", "image_scale"),
        ("models:\n  - {id: a, backend: openpi-remote}", "url"),
        ("models:\n  - {id: a, backend: scripted, enabled: maybe}", "'enabled' must be true or false"),
        ("models:\n  - {id: 'has space', backend: scripted}", "model id"),
        ("models:\n  - {id: off, backend: scripted}", "'id' must be a string, got False.*quote the id"),
    ],
)
def test_bad_catalogs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError, match=message) as info:
        load_catalog(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the model catalog"):
        load_catalog(tmp_path / "nope.yaml")


def test_disabled_entries_and_relative_onnx_paths(tmp_path: Path) -> None:
    (tmp_path / "nets").mkdir()
    path = _write(tmp_path, """
models:
  - {id: mine, backend: onnx, params: {path: nets/p.onnx}}
  - {id: spare, backend: scripted, enabled: false}
  - {id: slow, backend: scripted, latency_ms: 200, params: {horizon: 2}}
""")
    cat = load_catalog(path)
    assert list(cat) == ["mine", "slow"]
    assert cat["mine"].params["path"] == str(tmp_path / "nets" / "p.onnx")
    assert set(load_catalog(path, include_disabled=True)) == {"mine", "spare", "slow"}
    assert cat["slow"].latency_ms == 200 and cat["slow"].params == {"horizon": 2}
