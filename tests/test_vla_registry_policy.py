"""Pure registry logic: eviction choice (LRU / LFU) and the device inventory (round robin,
least loaded, GPU memory accounting) on a configured inventory."""

from __future__ import annotations

import pytest

from vla_server.models import ModelSpec
from vla_server.registry.devices import DeviceInventory, DeviceSpec, NoDeviceError
from vla_server.registry.eviction import Candidate, pick_victim


def c(mid: str, last: float, uses: int, sessions: int = 0, pinned: bool = False, inflight: int = 0) -> Candidate:
    return Candidate(mid, last, uses, sessions, pinned, inflight)


def test_lru_and_lfu_choose_differently() -> None:
    pool = [c("old-popular", 1.0, 50), c("new-rare", 5.0, 1), c("mid", 3.0, 10)]
    assert pick_victim(pool, "lru") == "old-popular"
    assert pick_victim(pool, "lfu") == "new-rare"


def test_lfu_ties_fall_back_to_lru() -> None:
    assert pick_victim([c("a", 2.0, 3), c("b", 1.0, 3)], "lfu") == "b"


def test_pinned_and_busy_models_are_never_chosen_and_session_models_go_last() -> None:
    pool = [c("pinned", 0.0, 0, pinned=True), c("busy", 0.5, 0, inflight=1), c("streamed", 1.0, 0, sessions=2),
            c("idle", 9.0, 100)]
    assert pick_victim(pool, "lru") == "idle"
    assert pick_victim(pool[:3], "lfu") == "streamed"
    assert pick_victim(pool[:2], "lru") is None
    with pytest.raises(ValueError, match="eviction policy"):
        pick_victim(pool, "fifo")


def gpu(mid: str, mb: float) -> ModelSpec:
    return ModelSpec(id=mid, backend="scripted", device="gpu", gpu_memory_mb=mb)


INVENTORY = [DeviceSpec("cpu"), DeviceSpec("cuda:0", 8000), DeviceSpec("cuda:1", 8000), DeviceSpec("cuda:2", 4000)]


def test_round_robin_walks_the_gpus_and_skips_full_ones() -> None:
    inv = DeviceInventory(INVENTORY, "round_robin")
    got = []
    for i in range(4):
        dev = inv.choose(gpu(f"m{i}", 3000))
        assert dev is not None
        inv.allocate(f"m{i}", dev, 3000)
        got.append(dev)
    assert got == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    assert inv.choose(gpu("big", 5500)) is None  # free: 2000, 5000, 1000
    assert inv.choose(gpu("fits", 5000)) == "cuda:1"
    inv.release("m1")
    assert inv.used_mb("cuda:1") == 0 and inv.device_of("m0") == "cuda:0"
    assert inv.choose(ModelSpec(id="c", backend="scripted")) == "cpu"


def test_least_loaded_takes_the_gpu_with_most_free_memory() -> None:
    inv = DeviceInventory(INVENTORY, "least_loaded")
    inv.allocate("a", "cuda:0", 6000)
    assert inv.choose(gpu("x", 1000)) == "cuda:1"
    inv.allocate("x", "cuda:1", 1000)
    assert inv.choose(gpu("y", 1000)) == "cuda:1"  # 7000 free beats cuda:2's 4000 and cuda:0's 2000
    snap = {d["id"]: d for d in inv.snapshot()}
    assert snap["cuda:0"]["used_mb"] == 6000 and snap["cuda:1"]["models"] == ["x"]


def test_impossible_requests_and_bad_inventories_are_refused() -> None:
    with pytest.raises(NoDeviceError, match="needs a GPU"):
        DeviceInventory([DeviceSpec("cpu")]).choose(gpu("g", 10))
    with pytest.raises(NoDeviceError, match="largest GPU has 8000"):
        DeviceInventory(INVENTORY).choose(gpu("g", 9000))
    with pytest.raises(ValueError, match="'cpu' or 'cuda:N'"):
        DeviceSpec("tpu:0", 10)
    with pytest.raises(ValueError, match="memory_mb must be > 0"):
        DeviceSpec("cuda:0")
    with pytest.raises(ValueError, match="duplicate"):
        DeviceInventory([DeviceSpec("cuda:0", 1), DeviceSpec("cuda:0", 2)])
