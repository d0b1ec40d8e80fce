"""A real nginx (Debian's) running docs/deploy/nginx.conf in front of a test server.

The site file is used as shipped, with only what a test must change: the ports, the
certificate (self-signed, made here) and no IPv6 listeners. It is included from a
minimal main config whose pid, logs and temp files are in a temporary directory, so
nothing needs root or touches /etc/nginx or /var.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "docs/deploy/nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for `host` (an IP address) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"docs/deploy/nginx.conf no longer has {old!r} once"
    return text.replace(old, new)


def render_site(https_port: int, http_port: int, upstream_port: int, cert: Path, key: Path) -> str:
    site = SITE.read_text()
    site = "\n".join(line for line in site.splitlines() if "listen [::]:" not in line)
    site = _replace_once(site, "server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    site = _replace_once(site, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = _replace_once(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    live = "/etc/letsencrypt/live/urok.school.example"
    site = _replace_once(site, f"{live}/fullchain.pem;", f"{cert};")
    return _replace_once(site, f"{live}/privkey.pem;", f"{key};")


def main_config(prefix: Path, site: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx runs its worker as "nobody", who cannot read the temp directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
{temp}
    include {site};
}}
"""


@dataclass
class Proxy:
    https_url: str
    prefix: Path


@contextlib.asynccontextmanager
async def nginx_in_front_of(
    upstream_port: int, prefix: Path, https_port: int | None = None
) -> AsyncIterator[Proxy]:
    """nginx serving https://127.0.0.1:<https_port, else a free one> for Urok on `upstream_port`."""
    https_port = https_port or free_port()
    args = _prepare(prefix, https_port, upstream_port)
    check = await asyncio.create_subprocess_exec(NGINX, *args, "-t", stderr=asyncio.subprocess.PIPE)
    _, errors = await check.communicate()
    assert check.returncode == 0, errors.decode()
    process = await asyncio.create_subprocess_exec(NGINX, *args, "-g", "daemon off;")
    proxy = Proxy(f"https://127.0.0.1:{https_port}", prefix)
    try:
        await _wait_listening(https_port, process)
        yield proxy
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def _prepare(prefix: Path, https_port: int, upstream_port: int) -> tuple[str, ...]:
    """The certificate and both config files in `prefix`; nginx's arguments."""
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(prefix)
    site = prefix / "urok.conf"
    site.write_text(render_site(https_port, free_port(), upstream_port, cert, key))
    config = prefix / "nginx.conf"
    config.write_text(main_config(prefix, site))
    return ("-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log"))


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(100):
        if process.returncode is not None:
            raise AssertionError(f"nginx exited with {process.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise AssertionError("nginx did not start listening")
