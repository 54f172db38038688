"""Where episode jobs run: `inline` (a thread of this process), `local` (a pool of worker
processes, default), `ray` (tasks on a Ray cluster). All run `vla_server.arena.work.execute`, so
results are the same bit for bit; `make_executor` builds one by name."""

from __future__ import annotations

from vla_server.arena.executors.base import Executor, OnDone, OnEvent

EXECUTORS = ("local", "inline", "ray")


def make_executor(
    kind: str = "local",
    workers: int | None = None,
    runtime_env: dict | None = None,
    ray_address: str | None = None,
) -> Executor:
    """Builds an executor by name ("local", "inline" or "ray").

    Args:
        kind: which executor.
        workers: local pool size (default: cores − 1); for Ray, the most tasks in flight.
        runtime_env: Ray runtime environment (e.g. ``{"env_vars": {"PYTHONPATH": ...}}``).
        ray_address: Ray cluster address ("auto", "ray://head:10001", None: start a local one).
    """
    if kind == "local":
        from vla_server.arena.executors.local import LocalPoolExecutor

        return LocalPoolExecutor(workers=workers)
    if kind == "inline":
        from vla_server.arena.executors.inline import InlineExecutor

        return InlineExecutor()
    if kind == "ray":
        from vla_server.arena.executors.ray_exec import RayExecutor

        return RayExecutor(address=ray_address, max_in_flight=workers, runtime_env=runtime_env)
    raise ValueError(f"executor: expected one of {EXECUTORS}, got {kind!r}")


__all__ = ["EXECUTORS", "Executor", "OnDone", "OnEvent", "make_executor"]
