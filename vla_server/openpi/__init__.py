"""openpi-compatible serving: Physical Intelligence's `openpi-client` wire format and a server for it.

The codec is `robot_formats.openpi_codec` (ndarrays and numpy scalars inside msgpack maps, as openpi packs
them; never pickle); `server` is the `websockets` app that answers the unmodified
``WebsocketClientPolicy(host, port, api_key)`` at the root path, `requests` the per-request steps
(decode, observation, reply, error) that the service and a model worker serving a handed-over
connection both run.
"""
