"""The web UI of the inference service: a static single-page app (no build step) and the recordings API.

`mount_web(app, ...)` adds both to the service's FastAPI app; see `vla_server.web.mount`.
"""

from vla_server.web.mount import mount_web

__all__ = ["mount_web"]
