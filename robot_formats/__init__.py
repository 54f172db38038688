"""The shared contract: formats that cross a package boundary, each defined once.

Imports only `frankateach` (below it); `oculus_server`, `vla_server` and `vla_client` import it.
"""
