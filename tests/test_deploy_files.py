"""docs/deploy/: the example config is read by the real loader and mentions every setting;
the systemd unit passes `systemd-analyze verify`, and its ExecStart with the example
config starts a server that answers and stops on the unit's KillSignal."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import aiohttp

from signalling.config import KNOWN_KEYS, load_settings
from tests.live import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs/deploy"
EXAMPLE = DEPLOY / "urok.example.toml"
UNIT = DEPLOY / "urok.service"


def unit_settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_example_config_loads_and_names_every_setting() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert settings.public_url.startswith("https://")
    assert settings.demo_journal is False
    assert settings.media.udp_ports == (40000, 40999)
    assert settings.limits.trusted_proxies == ("127.0.0.1",)
    assert settings.log.format == "json"
    assert str(settings.data_dir) == "/var/lib/urok"  # the unit's StateDirectory
    assert [i.key_id for i in settings.integrations] == ["district-journal"]
    # Every top-level setting and section is there, set or as a commented example.
    text = EXAMPLE.read_text()
    missing = [
        key
        for key in sorted(KNOWN_KEYS)
        if not re.search(rf"^#? ?(\[\[?{key}\]\]?$|{key} = )", text, re.MULTILINE)
    ]
    assert missing == []


def test_the_unit_verifies(tmp_path: Path) -> None:
    path = tmp_path / "urok.service"
    path.write_text(UNIT.read_text().replace("/opt/urok", str(ROOT)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    values = unit_settings()
    assert values["Restart"] == ["on-failure"]
    assert values["KillSignal"] == ["SIGTERM"] and values["KillMode"] == ["mixed"]
    # Longer than aiohttp's own 60 s wait for open requests at shutdown.
    assert int(values["TimeoutStopSec"][0].removesuffix("s")) > 60
    # Two UDP sockets per participant of the example's 1,000-port range, and more.
    assert int(values["LimitNOFILE"][0]) >= 4 * 1000
    assert "AF_INET AF_INET6" in values["RestrictAddressFamilies"][0]


async def test_the_units_command_serves_the_example_config(tmp_path: Path) -> None:
    command = shlex.split(unit_settings()["ExecStart"][0])
    command = [
        arg.replace("/opt/urok", str(ROOT)).replace("/etc/urok/urok.toml", str(EXAMPLE))
        for arg in command
    ]
    assert command[-1] == "serve" and os.access(command[0], os.X_OK)
    port = free_port()
    env = {
        **os.environ,
        # Only what this machine differs in: a free port, loopback, a temporary directory.
        "UROK_PORT": str(port),
        "UROK_DATA_DIR": str(tmp_path),
        "UROK_ICE_ADDRESSES": "127.0.0.1",
        "UROK_METRICS_PORT": "0",
        # This checkout's code, not the one the shared virtualenv was installed from.
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "urok.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            try:
                await wait_healthy(http, base, 60.0)  # a loaded machine starts it slowly
            except AssertionError:
                raise AssertionError(log.read_text()) from None
            async with http.get(base + "/readyz") as response:
                assert response.status == 200, await response.text()
            async with http.get(base + "/") as response:
                assert response.status == 404  # no demo journal in production
    finally:
        process.send_signal(signal.SIGTERM)  # the unit's KillSignal
        code = await asyncio.wait_for(process.wait(), 60)
    assert code == 0  # a clean stop, not a failure systemd would restart
