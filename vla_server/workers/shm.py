"""`ImageSlots`: shared memory between the service and one worker for decoded images, so a
request's pixels cross the process boundary with one copy in and one copy out instead of
travelling through msgpack and the socket (five copies of ~150 KB per 224² image).

An anonymous memory file (``memfd_create``) is cut into `slots` fixed slots; the service owns
the free list (one event loop: no locking), writes a request's images into a slot, sends their
place (``[offset, height, width]``) in the ``infer`` message and frees the slot when the reply
(or the failure) comes. The worker maps the same file (its descriptor is inherited) and copies
the images out before running the policy, so a slot is never read after its reply. Images that
do not fit a slot, or a request that finds every slot taken, travel inline as before.
"""

from __future__ import annotations

import mmap
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where images are (creating the slots needs none)
    import numpy as np

DEFAULT_SLOTS = 8
DEFAULT_SLOT_BYTES = 4 * 1024 * 1024  # two 640×480 RGB frames fit


class ShmError(ValueError):
    """A slot reference that does not lie inside the shared file."""


class ImageSlots:
    """The shared file, mapped. Create with `ImageSlots.create` (service) or `ImageSlots.attach` (worker)."""

    def __init__(self, fd: int, slots: int, slot_bytes: int) -> None:
        if slots < 1 or slot_bytes < 1:
            raise ValueError(f"image slots: expected >= 1 slot of >= 1 byte, got {slots} x {slot_bytes}")
        self.fd = fd
        self.slots = slots
        self.slot_bytes = slot_bytes
        self.size = slots * slot_bytes
        self._mm = mmap.mmap(fd, self.size)
        self._free = list(range(slots - 1, -1, -1))

    @classmethod
    def create(cls, slots: int = DEFAULT_SLOTS, slot_bytes: int = DEFAULT_SLOT_BYTES) -> ImageSlots | None:
        """A new shared file (inheritable descriptor), or None where memfd is unavailable."""
        memfd = getattr(os, "memfd_create", None)
        if memfd is None:
            return None
        try:
            fd = memfd("vla-worker-images", 0)
            os.ftruncate(fd, slots * slot_bytes)
        except OSError:
            return None
        os.set_inheritable(fd, True)
        return cls(fd, slots, slot_bytes)

    @classmethod
    def attach(cls, fd: int, slots: int, slot_bytes: int) -> ImageSlots:
        """The worker's view of the service's file."""
        return cls(fd, slots, slot_bytes)

    # ---- service side -----------------------------------------------------------------------------

    def put(self, images: list[np.ndarray]) -> tuple[int, list[list[int]]] | None:
        """Writes (H, W, 3) uint8 `images` into a free slot; returns (slot, ``[offset, h, w]`` per
        image), or None (no free slot, or they do not fit): send them inline then."""
        need = sum(int(img.nbytes) for img in images)
        if not self._free or need > self.slot_bytes:
            return None
        slot = self._free.pop()
        offset = slot * self.slot_bytes
        import numpy as np

        refs = []
        for img in images:
            arr = np.ascontiguousarray(img, dtype=np.uint8)
            self._mm[offset: offset + arr.nbytes] = arr.data.cast("B")
            refs.append([offset, int(arr.shape[0]), int(arr.shape[1])])
            offset += arr.nbytes
        return slot, refs

    def release(self, slot: int) -> None:
        if 0 <= slot < self.slots and slot not in self._free:
            self._free.append(slot)

    @property
    def free(self) -> int:
        return len(self._free)

    # ---- worker side ------------------------------------------------------------------------------

    def take(self, ref: object) -> np.ndarray:
        """A copy of the (H, W, 3) uint8 image at ``[offset, h, w]``; raises `ShmError`."""
        if not (isinstance(ref, list) and len(ref) == 3 and all(isinstance(v, int) and v >= 0 for v in ref)):
            raise ShmError(f"image slot reference: expected [offset, height, width], got {ref!r}")
        offset, h, w = ref
        n = h * w * 3
        if h < 1 or w < 1 or offset + n > self.size:
            raise ShmError(f"image slot reference {ref} lies outside the shared file of {self.size} bytes")
        import numpy as np

        return np.frombuffer(self._mm, dtype=np.uint8, count=n, offset=offset).reshape(h, w, 3).copy()

    def close(self) -> None:
        try:
            self._mm.close()
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass
