"""The inference service as the daemon's child (``python -m oculus_server.assist.service_child``).

`vla_server.serve.run_service` with only what assist needs (``/v1/stream`` on one loopback port;
no openpi port, web UI or arena), the model pinned (loaded at start), data (the key database,
worker logs) in the folder the parent made. It never outlives the daemon: `ParentWatch` stops it
when the parent dies (PR_SET_PDEATHSIG + getppid polling + a forced exit), and its model workers
follow it (their own death signal). Prints ``vla-service ready port=N`` once listening.

Exit codes: 0 stopped, 1 failed, 2 bad arguments (e.g. a model not in the catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from frankateach.lifeline import ParentWatch

READY_LINE = "vla-service ready port="


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oculus-assist-service", description=__doc__)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--parent-death-signal", type=int, default=15, help="0: none (watch only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0: any free port")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--catalog", default=None, help="model catalog YAML (default: the built-in one)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    return p


async def _serve(args: argparse.Namespace) -> int:
    from vla_server.config import load_config
    from vla_server.serve import run_service

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    def on_parent_exit() -> None:
        loop.call_soon_threadsafe(stop.set)

    watch = ParentWatch(args.parent_pid, on_parent_exit, death_signal=args.parent_death_signal)
    watch.start()
    config = load_config(None, {
        "server.host": args.host,
        "server.port": args.port,
        "server.openpi_port": None,
        "server.data_dir": args.data_dir,
        "server.web": False,
        "server.arena": False,
        "server.log_level": args.log_level,
        "server.log_format": "text",
        "registry.pinned": [args.model],
        **({"server.catalog": args.catalog} if args.catalog else {}),
    }, env={})

    def ready(ports: dict[str, int]) -> None:
        print(f"{READY_LINE}{ports['port']}", flush=True)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the parent stops reading stdout now

    try:
        return await run_service(config, ready=ready, stop=stop)
    finally:
        watch.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from vla_server.catalog import load_catalog
    from vla_server.logs import configure_logging

    configure_logging(args.log_level, "text")  # also silences uvicorn's access log (it would log keys)

    try:
        catalog = load_catalog(args.catalog)
    except ValueError as exc:  # CatalogError: unreadable or invalid file
        print(f"oculus-assist-service: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.model not in catalog:
        print(f"oculus-assist-service: model {args.model!r} is not in the service's catalog; "
              f"expected one of {', '.join(sorted(catalog))}", file=sys.stderr, flush=True)
        return 2
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:  # the port is taken (PortInUse), ...
        print(f"oculus-assist-service: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
