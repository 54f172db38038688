"""Errors of the worker layer (parent side)."""

from __future__ import annotations


class WorkerError(RuntimeError):
    """Base of worker failures."""


class WorkerStartError(WorkerError):
    """The worker did not become ready: its policy failed to load, it exited, or it timed out."""


class WorkerCrashed(WorkerError):
    """The worker process died (or broke the wire protocol) while requests were pending."""


class WorkerRequestError(WorkerError):
    """The worker is fine but the request failed (the policy raised, a bad reply shape)."""


class WorkerTimeout(WorkerError):
    """A request got no reply within its timeout."""


class WorkerBadInput(WorkerRequestError):
    """The request was unusable (a JPEG that does not decode, an instruction the policy does not
    know: `vla_server.policies.base.BadInput`); the model is fine."""
