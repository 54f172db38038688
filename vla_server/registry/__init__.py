"""The model registry: load on first use, keep warm, evict (LRU/LFU) within a measured memory
budget, restart crashed workers, assign devices."""

from vla_server.registry.config import RegistryConfig
from vla_server.registry.devices import DeviceInventory, DeviceSpec
from vla_server.registry.errors import (
    CapacityError,
    InferenceFailed,
    InferenceTimeout,
    InvalidInput,
    ModelCrashed,
    ModelLoadError,
    RegistryClosed,
    RegistryError,
    UnknownModel,
)
from vla_server.registry.registry import ModelRegistry
from vla_server.registry.types import InferResult, ModelEvent, ModelState

__all__ = [
    "CapacityError",
    "DeviceInventory",
    "DeviceSpec",
    "InferResult",
    "InferenceFailed",
    "InferenceTimeout",
    "InvalidInput",
    "ModelCrashed",
    "ModelEvent",
    "ModelLoadError",
    "ModelRegistry",
    "ModelState",
    "RegistryClosed",
    "RegistryConfig",
    "RegistryError",
    "UnknownModel",
]
