"""VLA assist: a policy served by the inference service helps the operator.

* `config` — `AssistConfig` (the YAML ``assist:`` section and its flags), `resolve`.
* `blend` — the pure arithmetic: the policy's target, re-expressed from the tick's reference,
  averaged with the operator's action on the six motion values.
* `blender` — `AssistBlender`, used by the control thread before the command gate (α, ramp,
  freshness, score, deadman, gripper, toggle button).
* `channel` — `AssistChannel` in `SharedState.assist`: newest action, link status, records.
* `local_service` — the service as the daemon's child for ``--debug`` (through `vla-server serve`).

The assist thread itself is `oculus_server.threads.assist.AssistThread`.
"""
