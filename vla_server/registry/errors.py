"""Errors the registry raises to its callers (stream sessions, the openpi endpoint, HTTP routes);
each message is shown to a client as is."""

from __future__ import annotations


class RegistryError(RuntimeError):
    """Base of registry errors."""


class UnknownModel(RegistryError, KeyError):
    """The model id is not in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown model"


class CapacityError(RegistryError):
    """The model cannot be loaded within the memory budget / max_models / device memory."""


class ModelLoadError(RegistryError):
    """The model's worker failed to start or its policy failed to load."""


class ModelCrashed(RegistryError):
    """The model's worker died while the request was pending (it is being restarted)."""


class InvalidInput(RegistryError):
    """The observation itself was unusable (e.g. its JPEG does not decode); not a model failure."""


class InferenceFailed(RegistryError):
    """The policy raised or returned a malformed result (the worker is fine)."""


class InferenceTimeout(RegistryError):
    """No reply within the inference timeout (the worker is treated as hung and restarted)."""


class RegistryClosed(RegistryError):
    """The service is shutting down."""
