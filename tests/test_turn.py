"""TURN credentials that expire, against a real coturn (tests/turn_server.py).

Each join's `joined.ice_servers` carries a username "<expiry>:<person>" and the
HMAC of it under the shared secret; coturn (use-auth-secret) accepts them until
the expiry and refuses them after, and the secret never leaves the node.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioice import stun

from bench.bot import Bot
from bench.preencoded import PreEncodedTrack, prepare_media
from signalling.config import ConfigError, IceServer, IceSettings, Settings, load_settings
from signalling.config_turn import TurnSettings
from signalling.turn import (
    call_expiry,
    client_ice_servers,
    server_ice_servers,
    turn_username,
)
from tests import live
from tests.turn_server import TurnServer, allocation, turn_server

SECRET = "test-turn-secret-0123456789abcdef"


TURN_TOML = """
[turn]
secret = "test-turn-secret-0123456789abcdef"
urls = ["turn:turn.school.example:3478?transport=udp",
        "turn:turn.school.example:3478?transport=tcp",
        "turns:turn.school.example:443?transport=tcp"]
margin_seconds = 900
server_uses = false
"""


def test_turn_section_and_the_secret_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "urok.toml"
    path.write_text(TURN_TOML)
    turn = load_settings(path, env={}).turn
    assert turn == TurnSettings(
        secret=SECRET,
        urls=(
            "turn:turn.school.example:3478?transport=udp",
            "turn:turn.school.example:3478?transport=tcp",
            "turns:turn.school.example:443?transport=tcp",
        ),
        margin_seconds=900,
    )
    # The secret may stay out of the file: the URLs there, the secret in the environment.
    path.write_text(TURN_TOML.replace(f'secret = "{SECRET}"\n', ""))
    from_env = load_settings(path, env={"UROK_TURN_SECRET": "another-secret-of-32-characters!"})
    assert from_env.turn.secret == "another-secret-of-32-characters!"
    assert from_env.turn.urls == turn.urls
    assert Settings().turn == TurnSettings() and not TurnSettings().enabled


def test_the_readmes_turn_section_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    start = readme.index("[turn]")
    path = tmp_path / "urok.toml"
    path.write_text(readme[start : readme.index("```", start)])
    turn = load_settings(path, env={}).turn
    assert turn.enabled and len(turn.urls) == 3 and not turn.server_uses


@pytest.mark.parametrize(
    ("turn", "words"),
    [
        ('urls = ["turn:t.example:3478"]', "turn.urls are set but turn.secret is empty"),
        (f'secret = "{SECRET}"', "turn.secret is set but turn.urls is empty"),
        ('secret = "short"\nurls = ["turn:t.example"]', "turn.secret must be at least 16 bytes"),
        (f'secret = "{SECRET}"\nurls = ["stun:t.example:3478"]', "is not turn:HOST"),
        (f'secret = "{SECRET}"\nurls = ["turn:u:p@t.example"]', "is not turn:HOST"),
        (f'secret = "{SECRET}"\nurls = ["turns:t.example?transport=udp"]', "runs over TCP"),
        (f'secret = "{SECRET}"\nurls = ["turn:t.example:70000"]', "port out of 1-65535"),
        (f'secret = "{SECRET}"\nurls = [3478]', "turn.urls must be a list"),
        ("margin_seconds = -1", "turn.margin_seconds must be an integer from 0 to 86400"),
        ('server_uses = "yes"', "turn.server_uses must be true or false"),
        ("ttl = 5", "unknown turn setting(s): ttl"),
    ],
)
def test_bad_turn_settings_are_clear_errors(tmp_path: Path, turn: str, words: str) -> None:
    path = tmp_path / "urok.toml"
    path.write_text(f"[turn]\n{turn}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert words in str(error.value)


async def allocate(turn: TurnServer, username: str, password: str, transport: str = "udp") -> str:
    """A TURN allocation with these credentials: its relayed address (it is freed)."""
    async with allocation((turn.host, turn.port), username, password, transport) as (relay, _):
        address = relay.get_extra_info("sockname")
    return f"{address[0]}:{address[1]}"


async def refused_by(turn: TurnServer, username: str, password: str, until: float) -> int:
    """The error code of coturn's first refusal of these credentials, asked about once a
    second until the wall-clock time `until` (an AssertionError if it still accepts)."""
    while True:
        try:
            await allocate(turn, username, password)
        except stun.TransactionFailed as refused:
            return int(refused.response.error_code)
        assert time.time() < until, f"coturn still accepts {username} at {time.time():.1f}"
        await asyncio.sleep(1)


def test_credentials_are_coturns_rest_scheme_and_last_the_lesson_plus_the_margin() -> None:
    settings = Settings(
        turn=TurnSettings(secret=SECRET, urls=("turn:t.example:3478",), margin_seconds=600),
        end_grace_minutes=10,
    )
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    ends = now + timedelta(minutes=45)
    servers = client_ice_servers(settings, "s-1", ends, now)
    assert servers == [
        {
            "urls": ["turn:t.example:3478"],
            "username": servers[0]["username"],
            "credential": servers[0]["credential"],
        }
    ]
    expected_expiry = int((ends + timedelta(minutes=10, seconds=600)).timestamp())
    assert servers[0]["username"] == f"{expected_expiry}:s-1"
    digest = hmac.new(SECRET.encode(), servers[0]["username"].encode(), hashlib.sha1).digest()
    assert servers[0]["credential"] == base64.b64encode(digest).decode()
    # Joined after the end (within the sweep's grace): still the margin from now.
    late = ends + timedelta(minutes=30)
    assert call_expiry(settings, ends, late) == int((late + timedelta(seconds=600)).timestamp())
    # Unusual or long ids stand hashed in the username (it shows in the TURN logs).
    assert turn_username(5, "Иван:1").startswith("5:h") and len(turn_username(5, "x" * 99)) == 19


def test_static_servers_stay_and_the_server_uses_turn_only_when_told() -> None:
    static = IceServer(urls=("stun:stun.example:3478",))
    turn = TurnSettings(secret=SECRET, urls=("turn:t.example:3478",))
    settings = Settings(ice=IceSettings(servers=(static,)), turn=turn)
    now = datetime.now(UTC)
    clients = client_ice_servers(settings, "s-1", now + timedelta(minutes=45), now)
    assert clients[0] == static.to_json() and clients[1]["urls"] == ["turn:t.example:3478"]
    assert server_ice_servers(settings, lambda: now)() == [static.to_json()]
    uses = replace(settings, turn=replace(turn, server_uses=True))
    own = server_ice_servers(uses, lambda: now)()
    assert own[0] == static.to_json() and own[1]["username"].endswith(":urok-node")
    # A whole call of the longest lesson, at least.
    assert int(own[1]["username"].split(":")[0]) > now.timestamp() + 12 * 3600


async def test_joined_credentials_relay_until_the_lesson_ends_then_coturn_refuses_them() -> None:
    async with turn_server(SECRET) as turn:
        settings = TurnSettings(
            secret=SECRET,
            urls=(turn.url("udp"), turn.url("tcp")),
            margin_seconds=0,
            server_uses=True,
        )
        async with live.running_server(
            turn=settings, end_grace_minutes=0, resume_grace_seconds=20
        ) as server:
            now = datetime.now(UTC)
            # A lesson that ends in a few seconds: its credentials end with it.
            status, lesson = await server.api(
                "POST",
                "/api/v1/lessons",
                {
                    "group": {"id": "5a", "title": "5А"},
                    "subject": "Математика",
                    "teacher": {"id": "t-1", "name": "Анна Петровна"},
                    "roster": [{"id": "s-1", "name": "Иван", "role": "student"}],
                    "starts_at": (now - timedelta(minutes=1)).isoformat(),
                    "ends_at": (now + timedelta(seconds=6)).isoformat(),
                },
            )
            assert status == 201, lesson
            status, _ = await server.api("POST", f"/api/v1/lessons/{lesson['id']}/open")
            assert status == 200
            bot = Bot(server.base_url, await server.token(lesson["id"], "s-1", "Иван", "student"))
            try:
                joined = await bot.connect()
                (entry,) = joined["ice_servers"]
                assert entry["urls"] == [turn.url("udp"), turn.url("tcp")]
                expiry = int(entry["username"].split(":")[0])
                assert entry["username"] == f"{expiry}:s-1"
                assert expiry == int(datetime.fromisoformat(lesson["ends_at"]).timestamp())
                username, password = entry["username"], entry["credential"]
                # Valid now (first: the lesson ends soon), over UDP and TCP; a wrong
                # password is not.
                assert await allocate(turn, username, password, "udp")
                assert await allocate(turn, username, password, "tcp")
                with pytest.raises(stun.TransactionFailed) as wrong:
                    await allocate(turn, username, password[::-1])
                assert wrong.value.response.error_code == 401
                # A resume on a new socket hands them out again (made afresh: the same
                # person and lesson end give the same ones).
                await bot.drop_signalling()
                resumed = await bot.resume()
                assert resumed["type"] == "resumed" and resumed["ice_servers"] == [entry]

                # turn.server_uses: the server's own connection gathered a relay
                # candidate on coturn (with credentials of its own, not the page's).
                media = prepare_media(audio_seconds=2, video_seconds=1, width=160, height=120)
                await bot.publish([(PreEncodedTrack(media.audio), "microphone")])
                assert bot.publisher is not None
                answer = bot.publisher.remoteDescription.sdp
                assert " typ relay" in answer, answer

                # The lesson's end passes (coturn counts whole seconds: valid through
                # `expiry`). A starved coturn may look at a clock a little behind: it
                # gets a few seconds to refuse them, never more.
                while time.time() < expiry + 1:
                    await asyncio.sleep(0.2)
                assert await refused_by(turn, username, password, expiry + 6) == 401
            finally:
                await bot.close()
