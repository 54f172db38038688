"""The model catalog: which models the service and the arena offer, as `ModelSpec`s.

``load_catalog()`` returns the built-in catalog (`default_catalog`); ``load_catalog(PATH)`` reads
a YAML file of the same shape as ``configs/models.yaml`` (which holds exactly the built-in
catalog, checked by a test)::

    models:
      - id: color-reach@rt-2          # what clients call it
        backend: color-reach          # one of vla_server.models.BACKENDS
        latency_ms: 100               # emulated inference latency (wall time in the service,
                                      # sim time in the arena)
        params: {}                    # backend parameters (checked when the catalog loads)
        description: ...
      - id: openpi-droid
        backend: openpi-remote
        enabled: false                # listed in the file, offered only when enabled
        params: {url: "ws://gpu-box:8000"}

Every entry is validated when the catalog loads (keys, types, backend parameters, unique ids); an
error names the file, the entry and the key. A relative ``params.path`` of an ``onnx`` entry is
taken relative to the catalog file's folder; so are a ``lerobot`` entry's ``params.path`` and
any entry's ``python`` interpreter path (``~`` expanded).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vla_server.models import ModelSpec, ModelSpecError

ENTRY_ONLY_KEYS = ("enabled",)  # catalog-level keys that are not part of a ModelSpec

# Emulated latencies (ms): OpenVLA-7B as measured on a GPU, RT-2 and Octo-base as commonly
# reported; the color-reach variants let users feel those models with a policy that works here.
LATENCY_EMULATIONS: dict[str, tuple[float, str]] = {
    "openvla-7b": (283.0, "OpenVLA-7B"),
    "rt-2": (100.0, "RT-2"),
    "octo-base": (50.0, "Octo-base"),
}


class CatalogError(ValueError):
    """A catalog file that cannot be read or does not validate."""


def default_catalog(include_disabled: bool = False) -> dict[str, ModelSpec]:
    """The built-in catalog (the content of ``configs/models.yaml``)."""
    return _parse(_default_entries(), "<built-in catalog>", None, include_disabled)


def _default_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [
        {
            "id": "color-reach",
            "backend": "color-reach",
            "description": "Classical vision policy: finds the named cube in the front camera, reaches, "
            "grasps and lifts it (0 ms emulated latency).",
        }
    ]
    for suffix, (ms, name) in LATENCY_EMULATIONS.items():
        entries.append({
            "id": f"color-reach@{suffix}",
            "backend": "color-reach",
            "latency_ms": ms,
            "description": f"color-reach with {name}'s inference latency ({ms:g} ms).",
        })
    entries += [
        {
            "id": "onnx-tiny",
            "backend": "onnx",
            "description": "Untrained seeded conv net (2.5 MB, tools/make_onnx_policy.py) on onnxruntime: "
            "a real runtime for loading, memory and eviction, not a skilled policy.",
        },
        {
            "id": "openpi-droid",
            "backend": "openpi-remote",
            "enabled": False,
            "params": {"url": "ws://127.0.0.1:8000"},
            "description": "A remote openpi DROID policy server (e.g. pi05_droid); set params.url and "
            "enable it.",
        },
    ]
    return entries


def _parse(
    entries: object, source: str, base_dir: Path | None, include_disabled: bool
) -> dict[str, ModelSpec]:
    from vla_server.policies.factory import check_spec

    if not isinstance(entries, list):
        raise CatalogError(f"{source}: 'models' must be a list of model entries, got {type(entries).__name__}")
    out: dict[str, ModelSpec] = {}
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, Mapping):
            raise CatalogError(f"{where}: expected a mapping with 'id' and 'backend', got {entry!r}")
        d = dict(entry)
        enabled = d.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise CatalogError(f"{where}: 'enabled' must be true or false, got {enabled!r}")
        where = f"{where} (id {d.get('id')!r})"
        if not isinstance(d.get("id", ""), str):
            raise CatalogError(f"{where}: 'id' must be a string, got {d['id']!r} (YAML reads unquoted "
                               "yes/no/on/off/true/false and numbers as such: quote the id)")
        if isinstance(d.get("params"), Mapping):
            d["params"] = _resolve_paths(d, base_dir)
        if isinstance(d.get("python"), str) and d["python"]:
            d["python"] = _resolve(d["python"], base_dir) if "/" in d["python"] else d["python"]
        try:
            spec = ModelSpec.from_dict(d)
        except (ModelSpecError, TypeError) as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        if spec.id in seen:
            raise CatalogError(f"{where}: duplicate model id {spec.id!r}")
        seen.add(spec.id)
        try:
            check_spec(spec)
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        if enabled or include_disabled:
            out[spec.id] = spec
    return out


def _resolve_paths(entry: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    params = dict(entry["params"])
    path = params.get("path")
    if entry.get("backend") in ("onnx", "lerobot") and isinstance(path, str):
        params["path"] = _resolve(path, base_dir)
    return params


def _resolve(path: str, base_dir: Path | None) -> str:
    """`path` with ``~`` expanded, relative to the catalog file's folder."""
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or base_dir is None else (base_dir / p).resolve())


def load_catalog(path: str | Path | None = None, include_disabled: bool = False) -> dict[str, ModelSpec]:
    """Reads and validates a catalog.

    Args:
        path: a YAML catalog; None gives the built-in catalog.
        include_disabled: also return entries marked ``enabled: false``.

    Returns:
        model id → spec, in file order.

    Raises:
        CatalogError: unreadable file, bad YAML, or an entry that does not validate.
    """
    if path is None:
        return default_catalog(include_disabled)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read the model catalog {p}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping) or set(doc) != {"models"}:
        got = sorted(doc) if isinstance(doc, Mapping) else type(doc).__name__
        raise CatalogError(f"{p}: expected a mapping with the single key 'models', got {got}")
    return _parse(doc["models"], str(p), p.parent, include_disabled)
