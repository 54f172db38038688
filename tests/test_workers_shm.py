"""`ImageSlots`: decoded images cross to the worker through shared memory — exact pixels, slots
freed by the reply, inline fallback when full or too big, references outside the file refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.workers import wire
from vla_server.workers.process import WorkerProcess
from vla_server.workers.shm import ImageSlots, ShmError


def _slots(slots: int = 2, slot_bytes: int = 64 * 1024) -> ImageSlots:
    s = ImageSlots.create(slots, slot_bytes)
    assert s is not None, "memfd_create is available on Linux"
    return s


def test_images_round_trip_exactly_through_a_slot() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    wrist = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    obs = Observation(image=image, instruction="pick", wrist_image=wrist, session="s", step=3)
    service = _slots()
    worker = ImageSlots.attach(service.fd, service.slots, service.slot_bytes)  # the same file, mapped again
    placed = service.put([image, wrist])
    assert placed is not None and service.free == 1
    framed = wire.pack({"op": "infer", "id": 1, "obs": wire.observation_to_wire(obs, placed[1])})
    assert len(framed) < 1024  # the pixels did not travel in the message
    back = wire.observation_from_wire(wire.unpack(framed[4:])["obs"], worker)
    np.testing.assert_array_equal(back.image, image)
    np.testing.assert_array_equal(back.wrist_image, wrist)
    service.release(placed[0])
    assert service.free == 2
    worker._mm.close()
    service.close()


def test_full_or_too_small_slots_mean_inline() -> None:
    s = _slots(slots=1, slot_bytes=1000)
    small, big = np.zeros((10, 10, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)
    assert s.put([big]) is None  # 1200 bytes > 1000
    first = s.put([small])
    assert first is not None and s.put([small]) is None  # every slot taken
    s.release(first[0])
    s.release(first[0])  # twice is harmless
    assert s.free == 1
    s.close()


@pytest.mark.parametrize("ref", [[10**9, 2, 2], [0, 0, 5], [0, 2], "x", [-1, 2, 2], [0, 1000, 1000]])
def test_references_outside_the_file_are_refused(ref: object) -> None:
    s = _slots()
    with pytest.raises(ShmError):
        s.take(ref)
    with pytest.raises(wire.WireError):
        wire.observation_from_wire({"image_shm": ref, "instruction": ""}, s)
    s.close()
    with pytest.raises(wire.WireError, match="no shared memory"):
        wire.observation_from_wire({"image_shm": [0, 1, 1], "instruction": ""}, None)


def test_a_real_worker_takes_images_from_shared_memory_and_frees_the_slot() -> None:
    async def main() -> None:
        w = await WorkerProcess.start(ModelSpec(id="w", backend="scripted", params={"horizon": 2}))
        try:
            slots = w._slots
            assert slots is not None and slots.free == slots.slots
            img = np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8)
            obs = Observation(image=img, instruction="pick", wrist_image=img, session="s")
            results = await asyncio.gather(*(w.infer(obs, 10) for _ in range(12)))  # more than the slots
            assert all(a.shape == (2, 7) for a, _ in results)
            assert slots.free == slots.slots  # every slot came back with its reply
            huge = np.zeros((1500, 1500, 3), np.uint8)  # 6.75 MB > a slot: inline
            assert (await w.infer(Observation(image=huge, instruction="pick"), 30))[0].shape == (2, 7)
        finally:
            await w.stop()

    asyncio.run(main())
