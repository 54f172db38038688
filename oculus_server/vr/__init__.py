"""VR input: the `VRSource` interface, the Quest app reader, and simulated sources.

Use `make_source(spec)` to build one from a text spec ("quest", "scripted:circle", "keyboard",
"fake_headset", "replay:FILE"); see `oculus_server.vr.factory`.
"""

from oculus_server.vr.factory import make_source, parse_spec

__all__ = ["make_source", "parse_spec"]
