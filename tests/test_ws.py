"""The call WebSocket (signalling.ws) over a real socket, checked against docs/protocol.md."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

import signalling.ws
from bench.media import ToneAudioTrack
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, Integration
from signalling.keys import CALLS
from tests.live import LiveServer, running_server

CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
TEACHER = ("t-1", "Анна Петровна", "teacher")
_ids = itertools.count()


class Client:
    """A bare protocol client: every message is read explicitly, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, server: LiveServer) -> Client:
        url = server.base_url.replace("http", "ws", 1) + "/ws"
        return cls(await server.http.ws_connect(url, max_msg_size=0))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a message, got {msg}"
        message = json.loads(msg.data)
        assert isinstance(message, dict)
        return message

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def join(self, token: str, **extra: Any) -> dict[str, Any]:
        reply = await self.request({"type": "join", "token": token, **extra})
        assert reply["type"] == "joined", reply
        return reply

    async def refused(self, token: str, code: str, **extra: Any) -> dict[str, Any]:
        """Join with `token`: expect error `code` (carrying the join's id) and then close."""
        ref = f"join-{next(_ids)}"
        reply = await self.request({"type": "join", "token": token, "id": ref, **extra})
        assert reply["type"] == "error", reply
        assert reply["code"] == code, reply
        assert reply["ref"] == ref
        assert reply["message"]
        await self.expect_closed()
        return reply

    async def expect_error(self, message: dict[str, Any] | str, code: str) -> dict[str, Any]:
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.send(message)
        reply = await self.recv()
        assert reply["type"] == "error", reply
        assert reply["code"] == code, reply
        return reply

    async def expect_alive(self) -> None:
        """A ping is answered by the very next message: the connection works and is in step."""
        ref = f"ping-{next(_ids)}"
        assert await self.request({"type": "ping", "id": ref}) == {"type": "pong", "ref": ref}

    async def expect_closed(self, timeout: float = 5.0) -> None:
        msg = await self.ws.receive(timeout)
        assert msg.type in CLOSED, f"expected the server to close, got {msg}"
        assert self.ws.closed

    async def expect_call_ended(self, reason: str) -> None:
        assert await self.recv() == {"type": "call_ended", "reason": reason}
        # Anything the call broadcast while tearing down may still arrive, then the close.
        while True:
            msg = await self.ws.receive(5.0)
            if msg.type in CLOSED:
                break
            assert msg.type == aiohttp.WSMsgType.TEXT
            assert json.loads(msg.data)["type"] == "participant_left", msg.data

    async def close(self) -> None:
        await self.ws.close()


def student(i: int) -> tuple[str, str, str]:
    return (f"s-{i}", f"Ученик {i}", "student")


async def token(server: LiveServer, lesson: str, who: tuple[str, str, str]) -> str:
    return await server.token(lesson, *who)


async def joined_client(server: LiveServer, lesson: str, who: tuple[str, str, str]) -> Client:
    client = await Client.open(server)
    await client.join(await token(server, lesson, who))
    return client


def claims(lesson: str, user_id: str = "s-1", role: str = "student", **extra: Any) -> dict:
    now = int(datetime.now(UTC).timestamp())
    out = {
        "iss": "urok",
        "aud": "urok-call",
        "sub": user_id,
        "name": "Ученик",
        "role": role,
        "lesson": lesson,
        "iat": now,
        "nbf": now - 30,
        "exp": now + 3600,
        "jti": f"jti-{next(_ids)}",
    }
    out.update(extra)
    return out


def teacher_id(call: Any) -> str:
    return next(p.id for p in call.participants.values() if p.user_id == "t-1")


def sign(payload: dict[str, Any], secret: str = DEMO_SECRET, kid: str = DEMO_KEY_ID) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})


# --- joining


async def test_join_replies_joined_as_documented() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await Client.open(server)
        joined = await teacher.join(await token(server, lesson, TEACHER), id="j1")
        assert joined["ref"] == "j1"
        me = joined["self"]
        assert me == {
            "id": me["id"],
            "user_id": "t-1",
            "name": "Анна Петровна",
            "role": "teacher",
            "host": True,
            "cohost": False,
            "audio": True,
            "video": True,
            "screen": False,
        }
        assert isinstance(me["id"], str) and me["id"]
        call = joined["call"]
        assert call["id"] == lesson
        assert call["title"] == "Математика, 5А"
        assert call["subject"] == "Математика"
        assert call["group_title"] == "5А"
        assert datetime.fromisoformat(call["ends_at"]) - datetime.fromisoformat(
            call["starts_at"]
        ) == timedelta(minutes=45)
        assert joined["participants"] == []
        assert joined["ice_servers"] == []
        assert joined["language"] == "ru"
        assert set(joined) == {
            "type",
            "self",
            "call",
            "participants",
            "ice_servers",
            "language",
            "ref",
            "hands",
            "chat",
            "settings",
            "permissions",
            "waiting",
            "recording",
            "limits",
            "resume",
            "spotlight",
        }
        assert joined["spotlight"] is None
        resume = joined["resume"]
        assert set(resume) == {"session", "grace_s", "retry_s"}
        assert resume["session"].startswith("s_") and len(resume["session"]) >= 32
        assert joined["hands"] == [] and joined["chat"] == [] and joined["waiting"] == []
        assert joined["recording"] is None
        assert joined["limits"] == {"breakout_rooms": 50}
        assert joined["permissions"] == {
            "unmute": True,
            "video": True,
            "screen": True,
            "chat": True,
        }
        assert joined["settings"]["waiting_room"] is False
        assert joined["settings"]["permissions"]["student"]["screen"] is False

        pupil = await Client.open(server)
        joined2 = await pupil.join(await token(server, lesson, student(1)))
        assert "ref" not in joined2
        assert joined2["self"]["host"] is False
        assert joined2["self"]["role"] == "student"
        assert joined2["self"]["id"] != me["id"]
        assert joined2["participants"] == [me]
        assert await teacher.recv() == {
            "type": "participant_joined",
            "participant": joined2["self"],
        }
        await teacher.expect_alive()
        await pupil.expect_alive()


async def test_join_with_the_lesson_id_of_the_token() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        client = await Client.open(server)
        await client.join(await token(server, lesson, TEACHER), lesson_id=lesson)


async def test_token_for_another_lesson_is_refused() -> None:
    async with running_server() as server:
        lesson_a = await server.create_lesson("5a")
        lesson_b = await server.create_lesson("5b")
        token_b = await token(server, lesson_b, student(1))
        client = await Client.open(server)
        await client.refused(token_b, "token_invalid", lesson_id=lesson_a)
        # The same token is good for its own lesson.
        await (await Client.open(server)).join(token_b, lesson_id=lesson_b)


async def test_forged_lesson_claim_is_refused() -> None:
    async with running_server() as server:
        lesson_a = await server.create_lesson("5a")
        lesson_b = await server.create_lesson("5b")
        token_b = await token(server, lesson_b, student(1))
        payload = jwt.decode(token_b, options={"verify_signature": False})
        payload["lesson"] = lesson_a
        # Re-signed with a key that is not the integration's.
        wrong_key = sign(payload, secret="not-the-journal-secret-but-long-enough")
        await (await Client.open(server)).refused(wrong_key, "token_invalid")
        # Or the original signature kept on the edited payload.
        header, _, signature = token_b.split(".")
        edited = jwt.encode(payload, "x" * 32, algorithm="HS256", headers={"kid": DEMO_KEY_ID})
        spliced = ".".join([header, edited.split(".")[1], signature])
        await (await Client.open(server)).refused(spliced, "token_invalid")
        # The unforged token still works, and for lesson B only.
        joined = await (await Client.open(server)).join(token_b)
        assert joined["call"]["id"] == lesson_b


async def test_expired_token_is_refused() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        now = int(datetime.now(UTC).timestamp())
        old = sign(claims(lesson, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
        reply = await (await Client.open(server)).refused(old, "token_invalid")
        assert "expired" in reply["message"]
        # The same claims, not expired: joins (so the refusal was about exp).
        await (await Client.open(server)).join(sign(claims(lesson)))


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 4096, "ааа.bbb.ccc"],
)
async def test_garbage_token_is_refused(garbage: str) -> None:
    async with running_server() as server:
        await server.create_lesson()
        await (await Client.open(server)).refused(garbage, "token_invalid")


async def test_token_of_another_integration_is_refused() -> None:
    other = Integration(key_id="other", secret="the-other-journal-secret-32-bytes-or-more")
    demo = Integration(key_id=DEMO_KEY_ID, secret=DEMO_SECRET, name="Demo journal")
    async with running_server(integrations=(demo, other)) as server:
        lesson = await server.create_lesson()  # owned by the demo journal
        forged = sign(claims(lesson), secret=other.secret, kid=other.key_id)
        await (await Client.open(server)).refused(forged, "token_invalid")
        # The same claims signed by the owning journal join.
        await (await Client.open(server)).join(sign(claims(lesson)))
        # And the other journal's key is good for the other journal's own lesson.
        start = datetime.now(UTC) - timedelta(minutes=1)
        async with server.http.post(
            server.base_url + "/api/v1/lessons",
            headers={"Authorization": f"Bearer {other.secret}"},
            json={
                "group": {"id": "5a", "title": "5А"},
                "subject": "Физика",
                "teacher": {"id": "t-9", "name": "Олег"},
                "roster": [],
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
        ) as response:
            assert response.status == 201
            own_lesson = (await response.json())["id"]
        own = sign(claims(own_lesson, "t-9", "teacher"), secret=other.secret, kid=other.key_id)
        joined = await (await Client.open(server)).join(own)
        assert joined["call"]["id"] == own_lesson


async def test_lesson_that_does_not_exist() -> None:
    async with running_server() as server:
        await server.create_lesson()
        ghost = sign(claims("les_does_not_exist"))
        await (await Client.open(server)).refused(ghost, "lesson_not_found")


async def test_person_not_on_the_roster_is_refused() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        stranger = sign(claims(lesson, user_id="s-999"))
        await (await Client.open(server)).refused(stranger, "not_in_roster")
        fake_teacher = sign(claims(lesson, user_id="s-1", role="teacher"))
        await (await Client.open(server)).refused(fake_teacher, "not_in_roster")


async def test_students_wait_for_the_lesson_to_open_teacher_does_not() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson(open_=False)
        pupil_token = await token(server, lesson, student(1))
        await (await Client.open(server)).refused(pupil_token, "lesson_not_open")
        teacher = await joined_client(server, lesson, TEACHER)
        status, _ = await server.api("POST", f"/api/v1/lessons/{lesson}/open")
        assert status == 200
        pupil = await Client.open(server)
        joined = await pupil.join(pupil_token)
        assert [p["user_id"] for p in joined["participants"]] == ["t-1"]
        assert (await teacher.recv())["type"] == "participant_joined"


async def test_ended_lesson_is_refused() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher_token = await token(server, lesson, TEACHER)
        pupil_token = await token(server, lesson, student(1))
        status, body = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
        assert status == 200, body
        await (await Client.open(server)).refused(teacher_token, "lesson_ended")
        await (await Client.open(server)).refused(pupil_token, "lesson_ended")


async def test_ending_the_lesson_ends_the_call_for_everyone() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await joined_client(server, lesson, TEACHER)
        pupils = []
        for i in (1, 2):
            pupils.append(await joined_client(server, lesson, student(i)))
        for i, _ in enumerate(pupils):  # participant_joined for each later joiner
            for earlier in [teacher, *pupils[:i]]:
                assert (await earlier.recv())["type"] == "participant_joined"
        assert server.app[CALLS].get(lesson) is not None
        status, body = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
        assert status == 200, body
        for client in (teacher, *pupils):
            await client.expect_call_ended("ended")
        assert server.app[CALLS].get(lesson) is None


# --- before join


async def test_messages_before_join_get_not_joined_and_the_socket_stays_open() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        client = await Client.open(server)
        for message in (
            {"type": "publish", "sdp": "v=0", "tracks": []},
            {"type": "subscribe_answer", "sdp": "v=0"},
            {"type": "media_state", "audio": False, "video": False},
            {"type": "leave"},
        ):
            reply = await client.expect_error({**message, "id": "b1"}, "not_joined")
            assert reply["ref"] == "b1"
            await client.expect_alive()
        # Malformed frames get their own errors, not not_joined.
        await client.expect_error("{oops", "bad_json")
        await client.expect_error({"type": "hello"}, "unknown_type")
        await client.expect_error({"type": "join"}, "bad_message")
        await client.expect_error({"type": "ping", "x": 1}, "bad_message")
        await client.expect_error("x" * (server.settings.max_ws_message_bytes + 1), "too_large")
        await client.ws.send_bytes(b'{"type": "ping"}')
        assert (await client.recv())["code"] == "bad_json"
        await client.expect_alive()
        await client.join(await token(server, lesson, TEACHER))
        await client.expect_alive()


async def test_no_join_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signalling.ws, "JOIN_TIMEOUT", 0.5)
    async with running_server() as server:
        await server.create_lesson()
        client = await Client.open(server)
        started = time.monotonic()
        await client.expect_alive()  # pings are answered, but are no join
        reply = await client.recv(timeout=5)
        assert reply["type"] == "error"
        assert reply["code"] == "join_timeout"
        await client.expect_closed()
        assert time.monotonic() - started < 4


async def test_join_in_time_is_not_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signalling.ws, "JOIN_TIMEOUT", 1.0)
    async with running_server() as server:
        lesson = await server.create_lesson()
        pupil_token = await token(server, lesson, student(1))
        client = await Client.open(server)
        await client.join(pupil_token)
        # Well past the join timeout the joined connection still works.
        with pytest.raises(TimeoutError):
            await client.ws.receive(timeout=1.5)
        await client.expect_alive()


# --- after join


async def test_bad_frames_after_join_get_errors_and_the_connection_stays_usable() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        client = await joined_client(server, lesson, TEACHER)
        limit = server.settings.max_ws_message_bytes
        cases: list[tuple[str, str]] = [
            ("{oops", "bad_json"),
            ("", "bad_json"),
            ("NaN", "bad_json"),
            ("[" * 30_000 + "]" * 30_000, "bad_json"),
            ("[]", "unknown_type"),
            ("42", "unknown_type"),
            ('"ping"', "unknown_type"),
            ('{"id": "x"}', "unknown_type"),
            ('{"type": "dance", "id": "r1"}', "unknown_type"),
            ('{"type": 5}', "unknown_type"),
            ('{"type": "media_state", "audio": true}', "bad_message"),
            ('{"type": "media_state", "audio": "on", "video": true}', "bad_message"),
            ('{"type": "ping", "extra": true}', "bad_message"),
            (
                '{"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "tv"}]}',
                "bad_message",
            ),
            (json.dumps({"type": "ping", "pad": "x" * limit}), "too_large"),
            ("я" * (limit // 2 + 1), "too_large"),
        ]
        for text, code in cases:
            reply = await client.expect_error(text, code)
            if '"id": "r1"' in text:
                assert reply["ref"] == "r1"
            await client.expect_alive()
        reply = await client.expect_error('{"type": "media_state", "id": "r2"}', "bad_message")
        assert reply["ref"] == "r2"
        assert "audio" in reply["message"]
        for data in (b"", b"\x00\xff", b'{"type": "ping"}'):
            await client.ws.send_bytes(data)
            reply = await client.recv()
            assert (reply["type"], reply["code"]) == ("error", "bad_json")
            await client.expect_alive()


async def test_subscribe_answer_without_an_offer() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        client = await joined_client(server, lesson, TEACHER)
        reply = await client.expect_error(
            {"type": "subscribe_answer", "sdp": "v=0\r\n", "id": "a1"}, "no_offer"
        )
        assert reply["ref"] == "a1"
        await client.expect_alive()


async def test_publish_garbage_sdp_then_a_real_offer() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        client = await joined_client(server, lesson, TEACHER)
        for garbage in ("garbage", "v=0\r\nm=audio x\r\n", "\x00" * 100):
            reply = await client.expect_error(
                {"type": "publish", "sdp": garbage, "tracks": [], "id": "p1"}, "bad_sdp"
            )
            assert reply["ref"] == "p1"
            await client.expect_alive()
        # The publisher connection is not wedged by the bad offers.
        pc = RTCPeerConnection()
        try:
            pc.addTransceiver(ToneAudioTrack(440), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            mid = pc.getTransceivers()[0].mid
            reply = await client.request(
                {
                    "type": "publish",
                    "sdp": pc.localDescription.sdp,
                    "tracks": [{"mid": mid, "source": "microphone"}],
                    "id": "p2",
                }
            )
            assert reply["type"] == "publish_answer", reply
            assert reply["ref"] == "p2"
            await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        finally:
            await pc.close()
        await client.expect_alive()


async def test_second_join_on_a_joined_connection() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher_token = await token(server, lesson, TEACHER)
        client = await Client.open(server)
        joined = await client.join(teacher_token)
        reply = await client.expect_error(
            {"type": "join", "token": teacher_token, "id": "j2"}, "already_joined"
        )
        assert reply["ref"] == "j2"
        await client.expect_alive()
        # Still the same participant, alone in the call.
        call = server.app[CALLS].get(lesson)
        assert call is not None
        assert list(call.participants) == [joined["self"]["id"]]


# --- the call


async def test_same_person_joining_again_replaces_the_first_connection() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await joined_client(server, lesson, TEACHER)
        first = await Client.open(server)
        first_id = (await first.join(await token(server, lesson, student(1))))["self"]["id"]
        assert (await teacher.recv())["type"] == "participant_joined"

        second = await Client.open(server)
        joined = await second.join(await token(server, lesson, student(1)))
        await first.expect_call_ended("replaced")
        second_id = joined["self"]["id"]
        assert second_id != first_id
        assert [p["user_id"] for p in joined["participants"]] == ["t-1"]
        assert await teacher.recv() == {"type": "participant_left", "participant_id": first_id}
        assert await teacher.recv() == {"type": "participant_joined", "participant": joined["self"]}
        call = server.app[CALLS].get(lesson)
        assert call is not None
        assert sorted(call.participants) == sorted([second_id, teacher_id(call)])
        await second.expect_alive()
        await teacher.expect_alive()


async def test_replacing_a_connection_that_does_not_read_is_prompt() -> None:
    # A reconnect usually replaces a connection whose other end is gone.
    async with running_server() as server:
        lesson = await server.create_lesson()
        first = await joined_client(server, lesson, student(1))  # never reads again
        second = await Client.open(server)
        await second.send({"type": "join", "token": await token(server, lesson, student(1))})
        reply = await second.recv(timeout=3)
        assert reply["type"] == "joined", reply
        await second.expect_alive()
        await first.expect_call_ended("replaced")


async def test_participant_events_reach_the_others() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await joined_client(server, lesson, TEACHER)
        pupil = await Client.open(server)
        me = (await pupil.join(await token(server, lesson, student(1))))["self"]
        assert await teacher.recv() == {"type": "participant_joined", "participant": me}

        await pupil.send({"type": "media_state", "audio": False, "video": True, "id": "m1"})
        updated = {"type": "participant_updated", "participant": {**me, "audio": False}}
        # Everybody gets it, the sender included.
        assert await teacher.recv() == updated
        assert await pupil.recv() == updated
        await pupil.send({"type": "media_state", "audio": False, "video": False})
        updated = {
            "type": "participant_updated",
            "participant": {**me, "audio": False, "video": False},
        }
        assert await teacher.recv() == updated
        assert await pupil.recv() == updated

        # A later joiner sees the current state.
        third = await Client.open(server)
        joined = await third.join(await token(server, lesson, student(2)))
        assert {**me, "audio": False, "video": False} in joined["participants"]
        assert (await teacher.recv())["type"] == "participant_joined"
        assert (await pupil.recv())["type"] == "participant_joined"

        await third.close()  # gone without a leave
        left = {"type": "participant_left", "participant_id": joined["self"]["id"]}
        assert await teacher.recv() == left
        assert await pupil.recv() == left
        await teacher.expect_alive()
        await pupil.expect_alive()


async def test_leave_closes_the_socket_and_others_see_participant_left() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await joined_client(server, lesson, TEACHER)
        pupil = await Client.open(server)
        pupil_id = (await pupil.join(await token(server, lesson, student(1))))["self"]["id"]
        assert (await teacher.recv())["type"] == "participant_joined"

        await pupil.send({"type": "leave", "id": "l1"})
        await pupil.expect_closed()
        assert await teacher.recv() == {"type": "participant_left", "participant_id": pupil_id}
        call = server.app[CALLS].get(lesson)
        assert call is not None
        assert pupil_id not in call.participants
        await teacher.expect_alive()

        # The call goes on: the student can come back.
        again = await Client.open(server)
        joined = await again.join(await token(server, lesson, student(1)))
        assert joined["self"]["id"] != pupil_id
        assert (await teacher.recv())["type"] == "participant_joined"

        # When the last person leaves, the call is gone; the lesson is not.
        await again.send({"type": "leave"})
        await again.expect_closed()
        assert (await teacher.recv())["type"] == "participant_left"
        await teacher.send({"type": "leave"})
        await teacher.expect_closed()
        assert server.app[CALLS].get(lesson) is None
        await joined_client(server, lesson, TEACHER)
