"""`ModelRegistry` with real worker processes: load on first use, LRU and LFU eviction, the
measured memory budget, pinning, idle TTL, explicit load/unload, crash restart, hung workers,
load failures, and GPU assignment from a configured inventory."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.registry import (
    CapacityError,
    DeviceSpec,
    InferenceTimeout,
    ModelEvent,
    ModelLoadError,
    ModelRegistry,
    ModelState,
    RegistryConfig,
    UnknownModel,
)
from vla_server.workers.memory import rss_mb

OBS = Observation(image=np.zeros((8, 8, 3), np.uint8), instruction="x")


def scripted(mid: str, **params: Any) -> ModelSpec:
    device = params.pop("device", "cpu")
    gpu_mb = params.pop("gpu_memory_mb", 0.0)
    return ModelSpec(id=mid, backend="scripted", params={"action": [0.1, 0, 0, 0, 0, 0, 1], **params},
                     device=device, gpu_memory_mb=gpu_mb)


def run(catalog: dict[str, ModelSpec], config: RegistryConfig,
        body: Callable[[ModelRegistry], Awaitable[None]]) -> None:
    async def main() -> None:
        reg = ModelRegistry(catalog, config)
        await reg.start()
        try:
            await body(reg)
        finally:
            await reg.aclose()
        assert all(reg.state(m) is ModelState.COLD for m in catalog)

    asyncio.run(main())


def cat(*ids: str, **params: Any) -> dict[str, ModelSpec]:
    return {m: scripted(m, **params) for m in ids}


@pytest.mark.parametrize(("policy", "victim"), [("lru", "a"), ("lfu", "b")])
@pytest.mark.slow
def test_eviction_policy_picks_its_victim(policy: str, victim: str) -> None:
    async def body(reg: ModelRegistry) -> None:
        await reg.infer("a", OBS)  # a: 3 uses, least recently used
        await reg.infer("a", OBS)
        await reg.infer("a", OBS)
        await reg.infer("b", OBS)  # b: 1 use, most recently used
        await reg.infer("c", OBS)  # max_models 2: one must go
        states = {m: reg.state(m) for m in "abc"}
        assert states[victim] is ModelState.COLD and states["c"] is ModelState.WARM
        assert sum(s is ModelState.WARM for s in states.values()) == 2
        assert reg.stats(victim)["evictions"] == 1 and reg.stats(victim)["eviction_ms"] is not None
        r = await reg.infer(victim, OBS)  # comes back on use
        assert r.wait_ms > 0 and reg.stats(victim)["loads"] == 2

    run(cat("a", "b", "c"), RegistryConfig(max_models=2, eviction=policy), body)


@pytest.mark.slow
def test_memory_budget_uses_measured_worker_memory() -> None:
    async def body(reg: ModelRegistry) -> None:
        await reg.infer("a", OBS)
        await reg.infer("b", OBS)
        a = reg.status("a")
        measured = rss_mb(a["pid"])
        assert measured is not None and a["memory_mb"] == pytest.approx(measured, rel=0.1)
        assert a["memory_mb"] > 60  # 40 MiB ballast + interpreter: really measured, not the estimate
        budget = reg.config.memory_budget_mb
        assert reg.used_mb() <= budget
        await reg.infer("c", OBS)  # a + b + the estimate for c exceed the budget: a (LRU) goes
        assert reg.state("a") is ModelState.COLD and reg.state("b") is ModelState.WARM
        assert reg.used_mb() <= budget
        summary = reg.summary()
        assert summary["loaded"] == 2 and summary["next_eviction"] == "b"

    # The budget is set from what one such worker really measures on this machine (it varies
    # with the interpreter and libraries): two fit with 40 MiB to spare, a third's estimate does not.
    probe: list[float] = []

    async def measure(reg: ModelRegistry) -> None:
        await reg.infer("a", OBS)
        probe.append(float(reg.status("a")["memory_mb"]))

    run(cat("a", memory_mb=40), RegistryConfig(max_models=10), measure)
    budget_mb = 2 * probe[0] + 40.0
    run(cat("a", "b", "c", memory_mb=40), RegistryConfig(max_models=10, memory_budget_mb=budget_mb,
                                                           new_model_estimate_mb=80), body)


def test_a_model_bigger_than_the_budget_is_refused_with_its_measured_size() -> None:
    async def body(reg: ModelRegistry) -> None:
        with pytest.raises(CapacityError, match="above the memory budget 150 MiB"):
            await reg.infer("big", OBS)
        assert reg.state("big") is ModelState.FAILED
        with pytest.raises(CapacityError, match=r"measured \d+ MiB, above the memory budget"):
            await reg.load("big")  # refused before spawning: its size is known now
        assert reg.stats("big")["loads"] == 1

    run(cat("big", memory_mb=200), RegistryConfig(memory_budget_mb=150, new_model_estimate_mb=50), body)


@pytest.mark.slow
def test_pinned_models_stay_and_explicit_load_unload() -> None:
    async def body(reg: ModelRegistry) -> None:
        assert reg.state("a") is ModelState.WARM  # pinned at start
        await reg.load("b")
        await reg.infer("b", OBS)
        await reg.load("c")  # a is LRU but pinned: b goes
        assert reg.state("a") is ModelState.WARM and reg.state("b") is ModelState.COLD
        await reg.pin("c")
        with pytest.raises(CapacityError, match="nothing can be evicted"):
            await reg.load("b")
        await reg.unpin("c")
        st = await reg.unload("c")
        assert st["state"] == "cold" and st["pid"] is None and reg.stats("c")["unloads"] == 1
        with pytest.raises(CapacityError, match="2 models are pinned and max_models is 2"):
            await reg.pin("c") if False else await _pin_third(reg)

    async def _pin_third(reg: ModelRegistry) -> None:
        await reg.pin("b")
        await reg.pin("c")

    run(cat("a", "b", "c"), RegistryConfig(max_models=2, pinned=("a",)), body)


def test_idle_models_unload_after_the_ttl_unless_a_session_holds_them() -> None:
    async def body(reg: ModelRegistry) -> None:
        await reg.infer("a", OBS)
        await reg.infer("b", OBS)
        reg.acquire_session("b")
        for _ in range(60):
            if reg.state("a") is ModelState.COLD:
                break
            await asyncio.sleep(0.1)
        assert reg.state("a") is ModelState.COLD and reg.stats("a")["idle_unloads"] == 1
        assert reg.state("b") is ModelState.WARM
        reg.release_session("b")

    run(cat("a", "b"), RegistryConfig(idle_ttl_s=0.5), body)


def test_crashed_worker_restarts_and_other_models_are_unaffected() -> None:
    events: list[ModelEvent] = []

    async def body(reg: ModelRegistry) -> None:
        reg.add_listener(events.append)
        await reg.infer("a", OBS)
        await reg.infer("b", OBS)
        pid_a, pid_b = reg.worker_pid("a"), reg.worker_pid("b")
        os.kill(pid_a, signal.SIGKILL)  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert reg.state("a") is ModelState.RESTARTING
        r_b = await reg.infer("b", OBS)  # unaffected meanwhile
        assert r_b.worker_pid == pid_b
        r_a = await reg.infer("a", OBS)  # waits for the restart
        assert r_a.worker_pid != pid_a and reg.state("a") is ModelState.WARM
        s = reg.stats("a")
        assert (s["crashes"], s["restarts"]) == (1, 1)
        kinds = [(e.model_id, e.kind) for e in events if e.kind in ("crashed", "restarted")]
        assert kinds == [("a", "crashed"), ("a", "restarted")]
        assert "killed by SIGKILL" in next(e.message for e in events if e.kind == "crashed")

    run(cat("a", "b"), RegistryConfig(restart_backoff_s=0.3), body)


def test_hung_worker_is_found_by_the_health_check_and_restarted() -> None:
    async def body(reg: ModelRegistry) -> None:
        await reg.infer("a", OBS)
        pid = reg.worker_pid("a")
        os.kill(pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            for _ in range(80):
                if reg.worker_pid("a") not in (None, pid) and reg.state("a") is ModelState.WARM:
                    break
                await asyncio.sleep(0.1)
        finally:
            try:
                os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
        assert reg.stats("a")["health_failures"] >= 1 and reg.worker_pid("a") != pid
        assert (await reg.infer("a", OBS)).actions.shape == (1, 7)

    run(cat("a"), RegistryConfig(health_interval_s=0.2, ping_timeout_s=0.3, restart_backoff_s=0.1), body)


def test_inference_timeout_kills_and_restarts_the_worker() -> None:
    async def body(reg: ModelRegistry) -> None:
        await reg.load("slow")
        pid = reg.worker_pid("slow")
        with pytest.raises(InferenceTimeout, match="no reply to 'infer' within 0.5 s"):
            await reg.infer("slow", OBS)
        for _ in range(50):
            if reg.state("slow") is ModelState.WARM and reg.worker_pid("slow") != pid:
                break
            await asyncio.sleep(0.1)
        assert reg.worker_pid("slow") != pid and reg.stats("slow")["timeouts"] == 1

    run(cat("slow", infer_ms=3000), RegistryConfig(infer_timeout_s=0.5, restart_backoff_s=0.1), body)


def test_load_failure_and_unknown_model() -> None:
    async def body(reg: ModelRegistry) -> None:
        with pytest.raises(ModelLoadError, match="RuntimeError: no weights"):
            await reg.infer("broken", OBS)
        st = reg.status("broken")
        assert st["state"] == "failed" and "no weights" in st["last_error"] and st["stats"]["load_failures"] == 1
        with pytest.raises(ModelLoadError, match=r"no weights \(next load attempt in"):
            await reg.infer("broken", OBS)  # no respawn per request within load_retry_s
        assert reg.stats("broken")["load_failures"] == 1
        with pytest.raises(ModelLoadError, match="no weights"):
            await reg.load("broken")  # an explicit load retries at once
        assert reg.stats("broken")["load_failures"] == 2
        with pytest.raises(UnknownModel, match="unknown model 'nope'"):
            await reg.infer("nope", OBS)

    run(cat("broken", load_error="no weights"), RegistryConfig(), body)


@pytest.mark.slow
def test_gpu_models_are_assigned_from_the_configured_inventory(tmp_path: Path) -> None:
    async def body(reg: ModelRegistry) -> None:
        for m in ("g1", "g2"):
            await reg.infer(m, OBS)
        assert [reg.status(m)["device"] for m in ("g1", "g2")] == ["cuda:0", "cuda:1"]
        env = _environ(reg.worker_pid("g2"))  # type: ignore[arg-type]
        assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["VLA_DEVICE"] == "cuda:1"
        await reg.infer("cpu", OBS)
        assert reg.status("cpu")["device"] == "cpu" and _environ(reg.worker_pid("cpu"))["CUDA_VISIBLE_DEVICES"] == ""
        await reg.infer("g3", OBS)  # no GPU has 600 MiB free: the LRU GPU model (g1) is evicted
        assert reg.state("g1") is ModelState.COLD and reg.status("g3")["device"] == "cuda:0"
        devs = {d["id"]: d for d in reg.summary()["devices"]}
        assert devs["cuda:0"]["used_mb"] == 600 and devs["cuda:1"]["models"] == ["g2"]

    catalog = {m: scripted(m, device="gpu", gpu_memory_mb=600) for m in ("g1", "g2", "g3")}
    catalog["cpu"] = scripted("cpu")
    config = RegistryConfig(devices=(DeviceSpec("cpu"), DeviceSpec("cuda:0", 1000), DeviceSpec("cuda:1", 1000)),
                            assignment="round_robin", max_models=8)
    run(catalog, config, body)


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = [kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv]
    return {k.decode(): v.decode() for k, v in items}
