"""The self-signed certificate the WebXR page is served with on the LAN (HTTPS), made on first use.

Browsers expose WebXR only in a secure context: ``https://`` or ``http://localhost``. Over
``adb reverse`` the headset reaches the daemon as localhost and no certificate is needed; on the
LAN the daemon serves HTTPS with a certificate it makes once with the ``openssl`` command line
(an EC P-256 key, valid 825 days, subjectAltName = the addresses it is served on), stored as
``cert.pem`` / ``key.pem`` (mode 0600) in `cert_dir`. The Quest browser shows "Your connection is
not private"; the operator compares the SHA-256 fingerprint the daemon prints, then chooses
Advanced → Proceed. A certificate that does not cover the current addresses is made again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from oculus_server.errors import VRSourceError

CERT_DAYS = 825
OPENSSL_TIMEOUT_S = 30.0


def default_cert_dir() -> Path:
    """``$XDG_CONFIG_HOME/oculus-server/webxr`` (``~/.config/...`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "oculus-server" / "webxr"


def lan_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects the route
        addr = str(s.getsockname()[0])
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("0.") else addr


@dataclass(frozen=True)
class Certificate:
    """A certificate/key pair on disk and its fingerprint (SHA-256 of the DER, hex with colons)."""

    cert: Path
    key: Path
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        """The page server's TLS context: this certificate, and no TLS 1.3 session tickets.

        Tickets arrive after the handshake, while a threaded client (websockets' sync client,
        openpi-client) already has one thread reading and another writing its upgrade request on
        the same TLS connection; OpenSSL forbids that, and under load 11 of 650 such connections
        hung without an answer. One page at a time has no use for session resumption.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.num_tickets = 0
        return ctx


def _fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _names(hosts: list[str]) -> list[str]:
    out = ["DNS:localhost", "IP:127.0.0.1"]
    for h in hosts:
        try:
            entry = f"IP:{ipaddress.ip_address(h)}"
        except ValueError:
            entry = f"DNS:{h}"
        if entry not in out:
            out.append(entry)
    return out


def _covers(cert: Path, names: list[str]) -> bool:
    try:
        text = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
            capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    have = {n.strip().replace("IP Address:", "IP:") for n in text.replace("\n", ",").split(",")}
    return all(n in have for n in names)


def ensure_certificate(cert_dir: Path, hosts: list[str]) -> Certificate:
    """Returns the certificate in `cert_dir`, making it (with openssl) if missing or not covering `hosts`.

    Raises:
        VRSourceError: openssl is missing or fails.
    """
    cert, key = cert_dir / "cert.pem", cert_dir / "key.pem"
    names = _names(hosts)
    if shutil.which("openssl") is None:
        raise VRSourceError("the WebXR source's HTTPS mode makes its certificate with the openssl command; "
                            "install it (apt-get install openssl) or use adb reverse (no certificate)")
    if cert.is_file() and key.is_file() and _covers(cert, names):
        return Certificate(cert, key, _fingerprint(cert))
    cert_dir.mkdir(parents=True, exist_ok=True)
    tmp_cert, tmp_key = cert.with_suffix(".tmp"), key.with_suffix(".tmp")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(tmp_key), "-out", str(tmp_cert), "-days", str(CERT_DAYS),
            "-subj", "/CN=oculus-server WebXR", "-addext", "subjectAltName=" + ",".join(names)]
    old_umask = os.umask(0o077)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise VRSourceError(f"could not run openssl to make the WebXR certificate: {exc}") from None
    finally:
        os.umask(old_umask)
    if done.returncode != 0:
        raise VRSourceError(f"openssl failed to make the WebXR certificate (exit {done.returncode}): "
                            f"{done.stderr.strip()[-300:]}")
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
    return Certificate(cert, key, _fingerprint(cert))


__all__ = ["Certificate", "default_cert_dir", "ensure_certificate", "lan_address"]
