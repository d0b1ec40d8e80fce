"""Throttling (signalling.ratelimit): the limiter, the [limits] settings, and every limit on a
real server: refused joins, wrong API credentials, forged invite codes, guest tokens per link."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signalling.config import (
    DEMO_SECRET,
    ConfigError,
    LimitSettings,
    load_settings,
    settings_from_mapping,
)
from signalling.ratelimit import SlidingWindow, client_key
from tests.live import LiveServer, running_server
from tests.test_ws import Client, claims, sign

# Small windows keep the tests short; the limits are reached well within one.
WINDOW = 2.0


def limits(**changes: Any) -> LimitSettings:
    return LimitSettings(window_seconds=WINDOW, **changes)


async def wait_for_window() -> None:
    await asyncio.sleep(WINDOW + 0.2)


# ---------------------------------------------------------------- the limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts_refuses_and_recovers() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 60, clock=clock)
    for _ in range(3):
        assert window.check("a") is None
        clock.now += 10
    # Three in the last 60 s: the next waits until the first is 60 s old.
    assert window.check("a") == pytest.approx(30)
    assert window.check("b") is None  # keys are separate
    clock.now += 30
    assert window.check("a") is None
    assert window.retry_after("a") == pytest.approx(10)


def test_sliding_window_record_and_forget_one() -> None:
    clock = FakeClock()
    window = SlidingWindow(2, 10, clock=clock)
    window.record("k")
    window.record("k")
    assert window.retry_after("k") == pytest.approx(10)
    window.forget_one("k")
    assert window.retry_after("k") is None
    # Recording past the limit keeps only the latest `limit` events.
    for _ in range(5):
        window.record("k")
    assert len(window._events["k"]) == 2


def test_sliding_window_memory_is_bounded() -> None:
    clock = FakeClock()
    window = SlidingWindow(1, 60, max_keys=100, clock=clock)
    for i in range(1000):
        window.record(f"ip-{i}")
    assert len(window) == 100
    assert window.retry_after("ip-999") is not None  # the newest are kept
    assert window.retry_after("ip-0") is None  # the least recently used went first
    clock.now += 61
    assert window.retry_after("ip-999") is None
    assert len(window) == 99  # expired keys go when looked at


def test_limit_zero_is_off() -> None:
    window = SlidingWindow(0, 1)
    for _ in range(100):
        assert window.check("a") is None
    assert len(window) == 0


def test_client_key() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "-"


# ---------------------------------------------------------------- settings


def test_limit_defaults() -> None:
    settings = load_settings(env={})
    assert settings.limits == LimitSettings()
    assert settings.limits.window_seconds == 60
    assert settings.limits.join_failures_per_ip == 20
    assert settings.limits.guest_tokens_per_invite == 30
    assert settings.limits.header_timeout_seconds == 10
    assert settings.limits.max_connections_per_ip == 500
    assert settings.limits.trusted_proxies == ()


def test_limits_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "urok.toml"
    path.write_text(
        "[limits]\n"
        "window_seconds = 30\n"
        "join_failures_per_ip = 5\n"
        "header_timeout_seconds = 2.5\n"
        "max_connections_per_ip = 0\n"
        'trusted_proxies = ["10.0.0.1", "fd00::/8"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, env={"UROK_LIMITS_GUEST_TOKENS_PER_INVITE": "7"})
    assert settings.limits == LimitSettings(
        window_seconds=30,
        join_failures_per_ip=5,
        header_timeout_seconds=2.5,
        max_connections_per_ip=0,
        trusted_proxies=("10.0.0.1", "fd00::/8"),
        guest_tokens_per_invite=7,
    )
    env = {
        "UROK_LIMITS_TRUSTED_PROXIES": "127.0.0.1, 10.1.0.0/16",
        "UROK_LIMITS_BODY_TIMEOUT_SECONDS": "5",
        "UROK_LIMITS_JOIN_FAILURES_PER_IP": "0",
    }
    settings = load_settings(path, env=env)
    assert settings.limits.trusted_proxies == ("127.0.0.1", "10.1.0.0/16")
    assert settings.limits.body_timeout_seconds == 5
    assert settings.limits.join_failures_per_ip == 0
    assert settings.limits.window_seconds == 30  # the file's, under the environment's


@pytest.mark.parametrize(
    ("limits_table", "message"),
    [
        ({"join_failures_per_ip": -1}, "join_failures_per_ip must be an integer"),
        ({"join_failures_per_ip": True}, "join_failures_per_ip must be an integer"),
        ({"guest_tokens_per_invite": 2.5}, "guest_tokens_per_invite must be an integer"),
        ({"window_seconds": 0}, "window_seconds must be from"),
        ({"header_timeout_seconds": "soon"}, "header_timeout_seconds must be a number"),
        ({"body_timeout_seconds": 10**6}, "body_timeout_seconds must be from"),
        ({"trusted_proxies": ["proxy.local"]}, "is not an IP address or network"),
        ({"join_failure_per_ip": 3}, "unknown limits setting(s): join_failure_per_ip"),
    ],
)
def test_bad_limits_are_refused(limits_table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        settings_from_mapping({"limits": limits_table})
    assert message in str(exc.value)
    with pytest.raises(ConfigError, match="limits must be a table"):
        settings_from_mapping({"limits": 3})


# ---------------------------------------------------------------- the WebSocket


async def test_refused_joins_per_address_are_rate_limited_then_recover() -> None:
    async with running_server(limits=limits(join_failures_per_ip=3)) as server:
        for _ in range(3):
            client = await Client.open(server)
            await client.refused("not-a-token", "token_invalid")
        # Over the limit: not even looked at, whatever the token.
        lesson = await server.create_lesson()
        good = await server.token(lesson, "s-1", "Ученик 1", "student")
        client = await Client.open(server)
        reply = await client.refused(good, "rate_limited")
        assert isinstance(reply["retry_after"], int) and 1 <= reply["retry_after"] <= WINDOW
        await wait_for_window()
        client = await Client.open(server)
        await client.join(good)
        await client.close()


async def test_refused_joins_per_person_are_rate_limited() -> None:
    # The lesson is not open yet: its people are refused, but each counts only for
    # themselves, so a class behind one address is not locked out.
    async with running_server(limits=limits(join_failures_per_user=2)) as server:
        lesson = await server.create_lesson(open_=False)
        early = [await server.token(lesson, f"s-{i}", f"Ученик {i}", "student") for i in (1, 2)]
        for _ in range(2):
            await (await Client.open(server)).refused(early[0], "lesson_not_open")
        reply = await (await Client.open(server)).refused(early[0], "rate_limited")
        assert reply["retry_after"] >= 1
        await (await Client.open(server)).refused(early[1], "lesson_not_open")
        # Not in the roster: a valid token of this journal's, counted for that person.
        stranger = sign(claims(lesson, user_id="x-9"))
        for code in ("not_in_roster", "not_in_roster", "rate_limited"):
            await (await Client.open(server)).refused(stranger, code)


async def test_refused_joins_count_the_client_behind_a_trusted_proxy() -> None:
    proxied = limits(join_failures_per_ip=2, trusted_proxies=("127.0.0.0/8",))
    async with running_server(limits=proxied) as server:
        url = server.base_url.replace("http", "ws", 1) + "/ws"

        async def behind_proxy(client_address: str) -> Client:
            headers = {"X-Forwarded-For": client_address}
            return Client(await server.http.ws_connect(url, headers=headers))

        for _ in range(2):
            await (await behind_proxy("203.0.113.1")).refused("bad", "token_invalid")
        await (await behind_proxy("203.0.113.1")).refused("bad", "rate_limited")
        await (await behind_proxy("203.0.113.2")).refused("bad", "token_invalid")
        lesson = await server.create_lesson()
        client = await behind_proxy("203.0.113.2")
        await client.join(await server.token(lesson, "s-1", "Ученик 1", "student"))
        await client.expect_alive()
        await client.close()


# ---------------------------------------------------------------- the journal API


async def api_status(
    server: LiveServer, secret: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with server.http.get(
        server.base_url + "/api/v1/lessons",
        headers={"Authorization": f"Bearer {secret}", **(headers or {})},
    ) as response:
        return response.status, await response.json(), response


async def test_wrong_api_credentials_are_rate_limited_per_address() -> None:
    async with running_server(limits=limits(api_auth_failures_per_ip=3)) as server:
        for _ in range(3):
            status, body, _ = await api_status(server, "wrong-secret")
            assert status == 401 and body["error"]["code"] == "unauthorized"
        # Refused before it is checked, even with the right secret.
        status, body, response = await api_status(server, DEMO_SECRET)
        assert status == 429, body
        assert body["error"]["code"] == "rate_limited" and body["error"]["message"]
        assert 1 <= int(response.headers["Retry-After"]) <= WINDOW
        await wait_for_window()
        status, body, _ = await api_status(server, DEMO_SECRET)
        assert status == 200, body
        # Successes do not count.
        for _ in range(5):
            assert (await api_status(server, DEMO_SECRET))[0] == 200


async def test_invalid_bodies_are_rate_limited_per_address() -> None:
    # Each costs the server a few ms to read and check: a flood of them is refused.
    async with running_server(limits=limits(bad_requests_per_ip=3)) as server:
        headers = {"Authorization": f"Bearer {DEMO_SECRET}", "Content-Type": "application/json"}
        url = server.base_url + "/api/v1/lessons"
        for _ in range(3):
            async with server.http.post(url, data=b"[" * 5000, headers=headers) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "bad_json"
        async with server.http.post(url, data=b"{}", headers=headers) as resp:
            assert resp.status == 429
            assert (await resp.json())["error"]["code"] == "rate_limited"
            assert 1 <= int(resp.headers["Retry-After"]) <= WINDOW
        await wait_for_window()
        status, body = await server.api("GET", "/api/v1/lessons")
        assert status == 200, body
        # Valid requests do not count.
        for _ in range(5):
            assert (await server.api("GET", "/api/v1/lessons"))[0] == 200


async def test_forwarded_for_is_believed_from_trusted_proxies_only() -> None:
    proxied = limits(api_auth_failures_per_ip=2, trusted_proxies=("127.0.0.1",))
    async with running_server(limits=proxied) as server:
        alice = {"X-Forwarded-For": "198.51.100.1, 203.0.113.1"}
        bob = {"X-Forwarded-For": "203.0.113.2"}
        for _ in range(2):
            assert (await api_status(server, "wrong-secret", alice))[0] == 401
        assert (await api_status(server, DEMO_SECRET, alice))[0] == 429
        # Another client behind the same proxy is not affected.
        assert (await api_status(server, DEMO_SECRET, bob))[0] == 200
    async with running_server(limits=limits(api_auth_failures_per_ip=2)) as server:
        # No trusted proxy: the header is the client's own word, and ignored.
        for _ in range(2):
            assert (await api_status(server, "wrong-secret", alice))[0] == 401
        assert (await api_status(server, DEMO_SECRET, bob))[0] == 429


# ---------------------------------------------------------------- the invite link


async def create_call(server: LiveServer) -> dict[str, Any]:
    status, call = await server.api(
        "POST", "/api/v1/calls", {"title": "Собрание", "host": {"id": "t-1", "name": "Анна"}}
    )
    assert status == 201, call
    return call


async def test_forged_invite_codes_are_rate_limited_per_address() -> None:
    async with running_server(limits=limits(invite_failures_per_ip=3)) as server:
        call = await create_call(server)
        forged = f"{server.base_url}/invite/les_guess.{'A' * 22}"
        async with server.http.get(forged) as response:
            assert response.status == 404
        for _ in range(2):
            async with server.http.post(forged, json={"name": "Гость"}) as response:
                assert response.status == 404
        # Now the address is refused, genuine link or not, page or token.
        async with server.http.get(call["invite_url"]) as response:
            assert response.status == 429
            assert 1 <= int(response.headers["Retry-After"]) <= WINDOW
            assert "Too many attempts" in await response.text()
        async with server.http.post(call["invite_url"], json={"name": "Гость"}) as response:
            assert response.status == 429
            assert (await response.json())["error"]["code"] == "rate_limited"
            assert response.headers["Retry-After"]
        await wait_for_window()
        async with server.http.post(call["invite_url"], json={"name": "Гость"}) as response:
            assert response.status == 201
        # Genuine links do not count.
        for _ in range(4):
            async with server.http.get(call["invite_url"]) as response:
                assert response.status == 200


async def test_guest_tokens_per_invite_link_are_limited() -> None:
    async with running_server(limits=limits(guest_tokens_per_invite=3)) as server:
        call, other = await create_call(server), await create_call(server)

        async def join(url: str, name: str = "Гость") -> aiohttp.ClientResponse:
            async with server.http.post(url, json={"name": name}) as response:
                await response.read()
                return response

        # A refused request (no name) does not use up the link's allowance.
        assert (await join(call["invite_url"], " ")).status == 400
        statuses = await asyncio.gather(*(join(call["invite_url"]) for _ in range(5)))
        assert sorted(r.status for r in statuses) == [201, 201, 201, 429, 429]
        refused = next(r for r in statuses if r.status == 429)
        assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
        assert (await join(other["invite_url"])).status == 201  # per link
        await wait_for_window()
        response = await join(call["invite_url"])
        assert response.status == 201


def test_rate_limited_body_is_the_api_error_shape() -> None:
    from signalling.ratelimit import RateLimited, rate_limited_response

    response = rate_limited_response(2.2, "Slow down.")
    assert response.status == 429 and response.headers["Retry-After"] == "3"
    assert json.loads(response.text or "") == {
        "error": {"code": "rate_limited", "message": "Slow down. Try again in 3 s."}
    }
    exc = RateLimited(0.01, "Slow down.")
    assert exc.status == 429 and exc.headers["Retry-After"] == "1"
    assert json.loads(exc.text or "")["error"]["code"] == "rate_limited"
