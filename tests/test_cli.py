"""The `urok` command: `serve` starts a working server, `token` mints a valid token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from signalling.cli import main
from signalling.config import Settings
from signalling.tokens import TokenService
from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_token_command_mints_a_token_the_server_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "token",
            "--lesson",
            "les_x",
            "--user",
            "s-1",
            "--name",
            "Иван",
            "--role",
            "student",
            "--minutes",
            "5",
        ]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    claims = TokenService(Settings()).verify(token, "les_x")
    assert (claims.user_id, claims.name, claims.role.value) == ("s-1", "Иван", "student")


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "urok.toml"
    config.write_text("port = 'eighty'\n")
    assert (
        main(["--config", str(config), "token", "--lesson", "l", "--user", "u", "--name", "n"]) == 2
    )
    assert "port must be an integer" in capsys.readouterr().err


async def test_serve_runs_with_embedded_defaults_and_the_demo_journal() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "serve",
        "--port",
        str(port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(base + "/healthz") as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not come up")
            async with http.get(base + "/") as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            async with http.get(base + "/api/v1/openapi.yaml") as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)


def test_busy_port_is_one_clean_line_and_a_failure() -> None:
    import socket
    import subprocess

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "signalling.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == [lines[0]] and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"urok: cannot listen on 127.0.0.1:{port}:")
    assert "in use" in lines[0]


def test_config_is_accepted_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "urok.toml"
    config.write_text("port = 'eighty'\n")
    # scripts/serve.sh passes its arguments after `serve`: --config must work there too.
    assert main(["serve", "--config", str(config)]) == 2
    assert "port must be an integer" in capsys.readouterr().err
    token = ["token", "--lesson", "l", "--user", "u", "--name", "n", "--config", str(config)]
    assert main(token) == 2
    capsys.readouterr()


def test_serve_help_gives_every_option_a_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    options = [word for word in text.split("options:")[1].split() if word.startswith("--")]
    described = text.split("options:")[1].split(" --")[1:]
    assert {"--config", "--host", "--port", "--public-url", "--redis-url"} <= set(options)
    for entry in described:
        if not entry.startswith("help"):
            assert "default:" in entry, entry
