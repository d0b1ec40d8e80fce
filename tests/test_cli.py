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
from tests.live import free_port, serve_process, wait_healthy

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
    process = await serve_process(port, output=True)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            async with http.get(base + "/") as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            async with http.get(base + "/api/v1/openapi.yaml") as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)


GOOD_CONFIG = """
host = "0.0.0.0"
port = 8443
public_url = "https://urok.school.example"
demo_journal = false
redis_url = "redis://:redis-password-1@10.0.0.9:6379/0"

[ice]
addresses = ["10.0.0.5"]
announced_address = "203.0.113.7"
servers = [{ urls = ["stun:stun.school.example:3478"] }]

[media]
udp_ports = "40000-40999"

[turn]
urls = [
    "turn:turn.school.example:3478?transport=udp",
    "turns:turn.school.example:443?transport=tcp",
]

[limits]
trusted_proxies = ["127.0.0.1"]

[[integrations]]
key_id = "school-journal"
secret = "integration-secret-0123456789abcdef"
origins = ["https://journal.school.example"]

[[integrations]]
key_id = "diary"
secret = "integration-secret-fedcba9876543210"
"""


def test_check_config_says_what_serve_would_do_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "urok.toml"
    config.write_text(GOOD_CONFIG)
    # The TURN secret from the environment, as a systemd EnvironmentFile gives it.
    monkeypatch.setenv("UROK_TURN_SECRET", "turn-secret-0123456789abcdef")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "listen: 0.0.0.0:8443 (public URL https://urok.school.example)",
        "media addresses: 10.0.0.5 (announced as 203.0.113.7)",
        "media UDP ports: 40000-40999",
        "ICE server: stun:stun.school.example:3478",
        "TURN: turn:turn.school.example:3478?transport=udp, turns:turn.school.example:443?"
        "transport=tcp (credentials per join, valid to the lesson's end + 10 min + 1800 s; "
        "the server's own connections do not use it)",
        "store: redis://:***@10.0.0.9:6379/0",
        "origins allowed to embed the call page: https://journal.school.example",
        "integrations: 2 (school-journal, diary)",
        "trusted proxies: 127.0.0.1",
        "demo journal: off",
    ):
        assert expected in out, (expected, out)
    for secret in ("turn-secret", "redis-password", "integration-secret"):
        assert secret not in out
    assert "warning" not in out


def test_check_config_passes_the_deployment_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "docs" / "deploy" / "urok.example.toml"
    assert main(["check-config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "listen: 127.0.0.1:8080 (public URL https://urok.school.example)" in out
    assert "media UDP ports: 40000-40999" in out and "warning" not in out
    assert "CHANGE-ME" not in out  # the integration's secret


def test_check_config_warns_of_a_demo_setup_served_to_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "urok.toml"
    config.write_text('host = "0.0.0.0"\n')
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "TURN: none" in out and "store: in memory (one node)" in out
    assert "warning: the demo journal is on while serving on 0.0.0.0" in out
    assert "warning: media is gathered on 127.0.0.1 only" in out


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("port = 'eighty'\n", "port must be an integer from 0 to 65535"),
        ("[turn]\nurls = ['turn:t.example']\n", "turn.urls are set but turn.secret is empty"),
        ("[ice]\naddresses = ['media.school.example']\n", "is not an IP address"),
        ("porst = 8080\n", "unknown setting(s): porst"),
        ("port = \n", "cannot read config"),
    ],
)
def test_check_config_refuses_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, error: str
) -> None:
    config = tmp_path / "urok.toml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("urok: configuration error: ") and error in captured.err
    assert captured.err.count("\n") == 1


def test_check_config_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


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
