"""The shared contract: every type, unit convention and wire format that crosses a package boundary.

Layer: above `frankateach`, below the daemon (`oculus_server`), the inference service
(`vla_server`) and the client library (`vla_client`), which may all import it; it imports only
`frankateach`, numpy, msgpack, Pillow (JPEG), the standard library and (for `recording`) the MCAP
and Foxglove-schema libraries — never a package above it, never MuJoCo or scipy (a robot PC with
only the client needs none of them). A format is
defined here once, its encoder beside its decoder, so both ends of a link always agree.

Modules (one concept each; see docs/ARCHITECTURE.md, "Layers"):

* `rotations` — quaternions (xyzw), matrices, Euler xyz, rotation vectors: the one rotations module.
* `kinematics` — the Panda's forward kinematics (TCP and link poses from the 7 joints), numpy only.
* `action_space` — the 7-value policy action and the one action ↔ pose-target pair of functions.
* `robot_state` — the robot state a client sends with a frame.
* `image` — JPEG data URLs (encode, probe, decode).
* `stream` — the `/v1/stream` messages, their parsing and encoding, limits and close codes.
* `openpi_codec` — openpi's msgpack-numpy wire codec (no pickle).
* `openpi_request` — openpi request keys (ours and DROID's) and the reply.
* `droid` — a DROID policy server's observation keys and joint-velocity chunks ↔ our actions.
* `lerobot_keys` — LeRobot dataset names the exporter writes and the `lerobot` backend fills.
* `stats` — the one percentile the client, the service and the arena report with.
* `service_ready` — the line `vla-server serve` writes to the parent that started it.
* `recording` — the teleop recording format: topics and schemas, records, writer, reader, recovery.
"""
