"""``vla-server``: run the inference service and manage API keys.

    vla-server serve [--config configs/vla_server.yaml] [--port 8000] [--openpi-port 8001] ...
    vla-server serve --no-config --port 0 --pin MODEL --ephemeral-key pro --ready-fd 3 \
        --parent-pid PID    # as a child: a temporary key and the ports on fd 3 (vla_server.child_mode)
    vla-server keys create --tier pro --name lab-a [--admin]     # prints the key once
    vla-server keys list
    vla-server keys revoke lab-a                                  # by name or key id
    vla-server models                                             # the catalog

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from vla_server.auth.store import KeyStore, KeyStoreError
from vla_server.auth.tiers import TIERS
from vla_server.config import ConfigError, ServiceConfig, load_config
from vla_server.constants import DEFAULT_CONFIG, QUEUE_ENV_VAR
from vla_server.registry.eviction import EVICTION_POLICIES

# CLI flag -> dotted configuration key
_SERVE_OVERRIDES = {
    "host": "server.host",
    "port": "server.port",
    "openpi_port": "server.openpi_port",
    "openpi_model": "server.openpi_model",
    "data_dir": "server.data_dir",
    "catalog": "server.catalog",
    "log_level": "server.log_level",
    "log_format": "server.log_format",
    "recordings_dir": "server.recordings_dir",
    "arena_executor": "server.arena_executor",
    "arena_workers": "server.arena_workers",
    "arena_live_port": "server.arena_live_port",
    "eviction": "registry.eviction",
    "memory_budget_mb": "registry.memory_budget_mb",
    "max_models": "registry.max_models",
    "idle_ttl_s": "registry.idle_ttl_s",
    "queue_max_size": "stream.queue_max_size",
    "max_message_bytes": "stream.max_message_bytes",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-server", description="VLA policy inference service")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the service")
    s.add_argument("--config", help=f"YAML configuration (default: {DEFAULT_CONFIG} when it exists)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--openpi-port", type=int, help="openpi-compatible endpoint port")
    s.add_argument("--no-openpi", action="store_true", help="do not serve the openpi-compatible endpoint")
    s.add_argument("--openpi-model", help="model the openpi endpoint serves by default")
    s.add_argument("--no-openpi-handover", action="store_true",
                   help="answer openpi requests in the service (a round trip to the worker each) instead of "
                        "handing connections to the model's worker")
    s.add_argument("--data-dir", help="keys database, worker logs")
    s.add_argument("--catalog", help="model catalog YAML (default: the built-in catalog)")
    s.add_argument("--eviction", choices=EVICTION_POLICIES)
    s.add_argument("--memory-budget-mb", type=float)
    s.add_argument("--max-models", type=int)
    s.add_argument("--idle-ttl-s", type=float)
    s.add_argument("--pin", action="append", metavar="MODEL", help="load at start and never evict (repeatable)")
    s.add_argument("--queue-max-size", type=int, help=f"frames held per session (also env {QUEUE_ENV_VAR})")
    s.add_argument("--max-message-bytes", type=int)
    s.add_argument("--recordings-dir", help="teleop recordings shown by the web UI")
    s.add_argument("--no-web", action="store_true", help="do not mount the web UI")
    s.add_argument("--no-arena", action="store_true", help="do not mount the arena API")
    s.add_argument("--arena-executor", choices=("local", "inline", "ray"), help="how arena episodes run")
    s.add_argument("--arena-workers", type=int, help="arena process pool size (default: cores - 1)")
    s.add_argument("--arena-live-port", type=int,
                   help="first port of an arena episode watched live (127.0.0.1; default 8765, taken: the next free)")
    s.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    s.add_argument("--log-format", choices=("json", "text"))
    s.add_argument("--no-config", action="store_true", help=f"ignore {DEFAULT_CONFIG} (built-in defaults + flags)")
    s.add_argument("--ephemeral-key", metavar="TIER", choices=sorted(TIERS),
                   help="make a temporary key of this tier (in a temporary data folder unless --data-dir) "
                        "and print it on the ready line; revoked when the service stops")
    s.add_argument("--ready-fd", type=int, metavar="FD",
                   help="write the ready line (ports, the ephemeral key) to this inherited fd once listening")
    s.add_argument("--parent-pid", type=int, metavar="PID", help="stop when this process dies (lifeline)")
    s.add_argument("--parent-death-signal", type=int, default=15, metavar="SIG",
                   help="with --parent-pid: PR_SET_PDEATHSIG signal (0: watch the pid only)")

    k = sub.add_parser("keys", help="manage API keys")
    k.add_argument("--config", help="configuration (for server.data_dir)")
    k.add_argument("--data-dir", help="folder of the keys database")
    ks = k.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="create a key and print it (once)")
    c.add_argument("--tier", required=True, choices=sorted(TIERS))
    c.add_argument("--name", required=True, help="label, unique among active keys (e.g. lab-a)")
    c.add_argument("--admin", action="store_true", help="may load/unload models, run arena jobs, vote")
    ls = ks.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--active", action="store_true", help="only keys that are not revoked")
    r = ks.add_parser("revoke", help="revoke a key by name or key id")
    r.add_argument("ident")

    m = sub.add_parser("models", help="list the model catalog")
    m.add_argument("--config")
    m.add_argument("--catalog")
    return p


def _config(args: argparse.Namespace, overrides: dict[str, Any]) -> ServiceConfig:
    path = getattr(args, "config", None)
    if getattr(args, "no_config", False):
        if path is not None:
            raise ConfigError("--config and --no-config: expected at most one")
        return load_config(None, overrides, env={})
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path, overrides)


def _serve(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, flag) for flag, key in _SERVE_OVERRIDES.items() if getattr(args, flag) is not None}
    if args.no_openpi:
        overrides["server.openpi_port"] = None
    if args.no_openpi_handover:
        overrides["server.openpi_handover"] = False
    if args.no_web:
        overrides["server.web"] = False
    if args.no_arena:
        overrides["server.arena"] = False
    if args.pin:
        base = _config(args, {})
        overrides["registry.pinned"] = list(dict.fromkeys((*base.registry.pinned, *args.pin)))
    ephemeral = None
    if args.ephemeral_key is not None:
        from vla_server.child_mode import EphemeralKey

        ephemeral = EphemeralKey(args.ephemeral_key, Path(args.data_dir) if args.data_dir else None)
        overrides["server.data_dir"] = str(ephemeral.data_dir)
    try:
        config = _config(args, overrides)
        _check_pinned(config)
        from vla_server.logs import configure_logging
        from vla_server.serve import PortInUse

        configure_logging(config.server.log_level, config.server.log_format)
        key = ephemeral.create(config.keys_db) if ephemeral is not None else None
        try:
            return asyncio.run(_run(config, args, key))
        except PortInUse as exc:
            print(f"vla-server: {exc}", file=sys.stderr)
            return 1
    finally:
        if ephemeral is not None:
            ephemeral.close()


def _check_pinned(config: ServiceConfig) -> None:
    """A pinned model that is not in the catalog is a configuration error (exit 2), said at once."""
    if not config.registry.pinned:
        return
    from vla_server.catalog import load_catalog

    catalog = load_catalog(config.server.catalog)
    for model in config.registry.pinned:
        if model not in catalog:
            raise ConfigError(f"model {model!r} is not in the service's catalog; expected one of "
                              f"{', '.join(sorted(catalog))}")


async def _run(config: ServiceConfig, args: argparse.Namespace, key: str | None) -> int:
    from vla_server.serve import run_service

    stop = asyncio.Event()
    watch = ready = None
    if args.parent_pid is not None or args.ready_fd is not None or key is not None:  # run as a child
        from vla_server.child_mode import ready_writer, watch_parent

        watch = watch_parent(args.parent_pid, args.parent_death_signal, stop) if args.parent_pid is not None else None
        ready = ready_writer(args.ready_fd, key) if args.ready_fd is not None or key is not None else None
    try:
        return await run_service(config, ready=ready, stop=stop)
    finally:
        if watch is not None:
            watch.close()


def _keys(args: argparse.Namespace) -> int:
    overrides = {"server.data_dir": args.data_dir} if args.data_dir else {}
    config = _config(args, overrides)
    store = KeyStore(config.keys_db)
    if args.keys_command == "create":
        record, key = store.create(args.name, args.tier, admin=args.admin)
        print(key)
        t = record.tier
        print(f"created key {record.key_id} '{record.name}': tier {t.name} "
              f"({t.max_sessions if t.max_sessions is not None else 'unlimited'} sessions, {t.max_fps:g} Hz)"
              f"{', admin' if record.admin else ''}. Store it now: it is not shown again.", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        rows = store.list_keys(include_revoked=not args.active)
        print(f"{'KEY ID':<13} {'NAME':<24} {'TIER':<11} {'ADMIN':<6} {'CREATED (UTC)':<20} STATUS")
        for rec in rows:
            created = dt.datetime.fromtimestamp(rec.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            status = "active" if rec.active else "revoked " + dt.datetime.fromtimestamp(
                rec.revoked_at or 0, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{rec.key_id:<13} {rec.name:<24} {rec.tier.name:<11} {'yes' if rec.admin else 'no':<6} "
                f"{created:<20} {status}"
            )
        print(f"{len(rows)} key(s) in {store.path}", file=sys.stderr)
        return 0
    record = store.revoke(args.ident)
    print(f"revoked key {record.key_id} '{record.name}'")
    return 0


def _models(args: argparse.Namespace) -> int:
    from vla_server.catalog import load_catalog

    config = _config(args, {"server.catalog": args.catalog} if args.catalog else {})
    for spec in load_catalog(config.server.catalog).values():
        lat = f"{spec.latency_ms:g} ms" if spec.latency_ms else "-"
        print(f"{spec.id:<28} {spec.backend:<14} {spec.device:<4} latency {lat:<8} {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return _keys(args)
        return _models(args)
    except (ConfigError, KeyStoreError, ValueError) as exc:
        print(f"vla-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
