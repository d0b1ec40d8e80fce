"""Random frames at the call WebSocket: one reply each, the connection and the call survive.

Hypothesis and asyncio: the server (and the WebSocket clients) live on the test's
event loop for the whole run, started once. The property itself is a plain
synchronous @given function, run in a worker thread; each example hands its
frames to the loop with asyncio.run_coroutine_threadsafe and waits for the
result. So hypothesis keeps shrinking and its example database semantics (here
off), and no example pays for starting a server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import signalling.ws
from signalling.config import LimitSettings, Settings
from signalling.protocol import MAX_UNJOINED_BYTES, SCHEMAS, ProtocolError, parse_message
from signalling.ws import UNJOINED_TYPES
from tests.live import LiveServer, running_server
from tests.loop_lag import probing

MAX = Settings().max_ws_message_bytes  # what the server runs with
KNOWN = sorted(SCHEMAS)
STUDENT = ("s-1", "Ученик 1", "student")
CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
# What a frame may legitimately cause besides the error it is expected to get.
EXPECTED_ERRORS = {
    "too_large",
    "bad_json",
    "unknown_type",
    "bad_message",
    "not_joined",
    "already_joined",
    "no_offer",
    "bad_sdp",
    "not_host",
    "not_permitted",
    "chat_empty",
    "chat_too_long",
    "chat_rate_limited",
    "breakout_closed",
    "unknown_poll",
    "unknown_participant",
    "no_connection",
    "rate_limited",
}
# Classroom control that only hosts may use: the fuzzed student gets not_host.
HOST_ONLY = {
    "lower_hand",
    "lower_all_hands",
    "admit",
    "admit_all",
    "deny",
    "deny_all",
    "nudge",
    "mute",
    "mute_all",
    "remove",
    "set_cohost",
    "give_floor",
    "set_permissions",
    "set_call_settings",
    "end_call",
    "breakout_configure",
    "breakout_assign",
    "breakout_assign_random",
    "breakout_open",
    "breakout_move",
    "breakout_visit",
    "breakout_broadcast",
    "breakout_close",
    "recording_start",
    "recording_stop",
    "poll_create",
    "poll_share",
    "poll_close",
    "spotlight",
}

# A real aiortc offer (one audio m-section), candidates left out, to mutate.
OFFER_LINES = [
    "v=0",
    "o=- 4004512256 4004512256 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic:WMS *",
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0",
    "c=IN IP4 0.0.0.0",
    "a=sendonly",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=mid:0",
    "a=msid:19ea9510-e125-40b3 66b02158-cf96-47f6",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=rtcp-mux",
    "a=ssrc:3396685168 cname:ead812fa-a51b-45e7",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:0 PCMU/8000",
    "a=end-of-candidates",
    "a=ice-ufrag:mMcL",
    "a=ice-pwd:yKeVch2kpLOefzqNDBR7ZE",
    "a=fingerprint:sha-256 24:8F:7B:CA:D8:73:76:6F:E6:14:5E:25:CD:02:0E:5F:06:95:76:0E:"
    "E4:8C:74:3A:6A:0F:64:CA:95:B3:A8:38",
    "a=setup:actpass",
]

# --- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    lines = list(OFFER_LINES)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "garble"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "replace":
            lines[i] = draw(st.sampled_from(OFFER_LINES))
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            cut = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:cut] + draw(st.text(max_size=8))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    return newline.join(lines) + newline


GOOD: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(max_size=64),
    "token": st.text(min_size=1, max_size=60),
    "lesson_id": st.text(min_size=1, max_size=20),
    "session": st.text(min_size=1, max_size=40),
    "last_chat_seq": st.integers(0, 10**6),
    "connection": st.sampled_from(["publisher", "subscriber"]),
    "source": st.sampled_from(["camera", "screen"]),
    "quality": st.sampled_from(["low", "medium", "high"]),
    "views": st.lists(
        st.fixed_dictionaries(
            {
                "participant_id": st.text(min_size=1, max_size=12),
                "source": st.sampled_from(["camera", "screen"]),
                "visible": st.booleans(),
            },
            optional={"width": st.integers(-1, 4000), "height": st.integers(0, 20000)},
        ),
        max_size=3,
    ),
    "mode": st.sampled_from(["off", "audio_screen", "one_video", "max"]),
    "sdp": st.text(min_size=1, max_size=80) | st.just("v=0\r\n") | mutated_offers(),
    "tracks": st.lists(
        st.fixed_dictionaries(
            {
                "mid": st.sampled_from(["0", "1", "x"]),
                "source": st.sampled_from(["microphone", "camera", "screen"]),
            }
        ),
        max_size=3,
    ),
    "audio": st.booleans(),
    "video": st.booleans(),
    "screen": st.booleans(),
    "participant_id": st.text(min_size=1, max_size=12) | st.none(),
    "raised": st.booleans(),
    "enabled": st.booleans(),
    "kind": st.sampled_from(["audio", "video", "screen"]),
    "cohost": st.booleans(),
    "floor": st.booleans(),
    "role": st.sampled_from(["student", "parent", "guest"]),
    "permissions": st.dictionaries(
        st.sampled_from(["unmute", "video", "screen", "chat"]), st.booleans(), min_size=1
    ),
    "waiting_room": st.booleans(),
    "guests_allowed": st.booleans(),
    "privacy_mode": st.booleans(),
    "join_muted": st.booleans(),
    "join_camera_off": st.booleans(),
    "question": st.text(max_size=40),
    "options": st.lists(st.text(max_size=10), min_size=1, max_size=11),
    "multiple": st.booleans(),
    "anonymous": st.booleans(),
    "poll_id": st.text(min_size=1, max_size=12),
    "choices": st.lists(st.integers(-1, 11), max_size=11),
    "shared": st.booleans(),
    "text": st.text(max_size=60),
    "count": st.integers(0, 60),
    "names": st.lists(st.text(max_size=10), max_size=3),
    "assignments": st.dictionaries(
        st.text(min_size=1, max_size=6), st.none() | st.sampled_from(["r1", "r2"]), max_size=3
    ),
    "include_hosts": st.booleans(),
    "minutes": st.integers(0, 300),
    "allow_return": st.booleans(),
    "room_id": st.none() | st.sampled_from(["r1", "r9"]),
    "countdown_seconds": st.integers(-5, 400),
    "title": st.text(max_size=30),
    "visibility": st.lists(st.sampled_from(["teacher", "student", "parent", "guest"]), max_size=3),
}
ANY_FIELD = st.sampled_from(sorted(GOOD)) | st.text(max_size=8)


@st.composite
def typed_messages(draw: st.DrawFn) -> str:
    """A dict with a known `type`: valid half the time, else broken in a few random ways."""
    kind = draw(st.sampled_from(KNOWN))
    schema = SCHEMAS[kind]
    names = [n for n in schema["properties"] if n != "type"]
    message: dict[str, Any] = {"type": kind}
    for name in names:
        if name in schema["required"] or draw(st.booleans()):
            message[name] = draw(GOOD[name])
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            how = draw(st.sampled_from(["retype", "drop", "extra", "type"]))
            if how == "retype" and names:
                message[draw(st.sampled_from(names))] = draw(json_values)
            elif how == "drop" and names:
                message.pop(draw(st.sampled_from(names)), None)
            elif how == "extra":
                message[draw(ANY_FIELD)] = draw(json_values)
            elif how == "type":
                message["type"] = draw(json_values | st.text(max_size=12))
    return json.dumps(message)


def _big(kind: str, field: str, count: int, item: str) -> str:
    """A message whose `field` is a list of `count` items (objects, numbers or lists)."""
    value = {"object": {"a": 0}, "number": 7, "list": [0], "string": "s"}[item]
    return json.dumps({"type": kind, field: [value] * count})


# Large flat structures, the kind that once cost the square of their length to check.
big_messages = st.builds(
    _big,
    st.sampled_from(KNOWN),
    st.sampled_from(["visibility", "tracks", "names", "assignments", "sdp", "extra"]),
    st.integers(1, 60_000),
    st.sampled_from(["object", "number", "list", "string"]),
)


def _padded(delta: int) -> str:
    """A valid ping `delta` bytes away from the size limit."""
    base = json.dumps({"type": "ping", "id": "big", "pad": ""})
    text = json.dumps({"type": "ping", "id": "big", "pad": "x" * (MAX - len(base) + delta)})
    assert len(text.encode()) == MAX + delta
    return text


@dataclass(frozen=True)
class Frame:
    target: str  # "joined" or "fresh" (not joined yet)
    data: str | bytes


frames = st.builds(
    Frame,
    st.sampled_from(["joined", "fresh"]),
    st.one_of(
        json_values.map(json.dumps),
        typed_messages(),
        typed_messages(),
        typed_messages(),
        typed_messages(),
        st.text(max_size=200),
        st.binary(max_size=200),
        st.integers(-4, 4).map(_padded),
        st.integers(1, 40_000).map(lambda n: "[" * n + "]" * n),
        big_messages,
        st.integers(1, 10_000).map(lambda n: '{"type":"ping","x":' + '{"a":' * n + "1" + "}" * n),
    ),
)


OFFER = "\r\n".join(OFFER_LINES) + "\r\n"
# Run first: one frame for each kind of reply, so every run covers them all.
EVERY_REPLY = [
    Frame("joined", json.dumps({"type": "ping", "id": "p"})),
    Frame("fresh", json.dumps({"type": "ping"})),
    Frame("joined", json.dumps({"type": "media_state", "audio": False, "video": True})),
    Frame("joined", json.dumps({"type": "join", "token": "t", "id": "j"})),
    Frame("fresh", json.dumps({"type": "leave", "id": "l"})),
    Frame("fresh", json.dumps({"type": "publish", "sdp": OFFER, "tracks": []})),
    Frame("joined", json.dumps({"type": "publish", "sdp": "garbage", "tracks": []})),
    Frame("joined", json.dumps({"type": "publish", "sdp": OFFER, "tracks": [], "id": "o"})),
    Frame("joined", json.dumps({"type": "subscribe_answer", "sdp": OFFER})),
    Frame("joined", json.dumps({"type": "ping", "id": 5})),
    Frame("fresh", json.dumps({"type": "hello"})),
    Frame("joined", "{"),
    Frame("fresh", b"\x00"),
    Frame("joined", "x" * (MAX + 1)),
    Frame("joined", json.dumps({"type": "poll_answer", "poll_id": "poll_x", "choices": [0]})),
    Frame("joined", json.dumps({"type": "poll_create", "question": "?", "options": ["а", "б"]})),
    Frame("joined", json.dumps({"type": "spotlight", "participant_id": None})),
]


# --- the oracle: what the protocol says each frame gets


@dataclass
class Expected:
    replies: set[str]  # "pong", "publish_answer", ... or "error:<code>"
    ref: str | None


def parsed(frame: Frame) -> dict[str, Any] | None:
    if isinstance(frame.data, bytes):
        return None
    try:
        return parse_message(frame.data, MAX)
    except ProtocolError:
        return None


def route(frame: Frame) -> Frame:
    """Keep the frames that would legitimately end a connection away from it.

    A valid join on the fresh connection would (fail and) close it, and a valid
    resume fail and count towards the refused joins' limit, so they go to the
    joined one (already_joined); a valid leave on the joined connection
    would end it, so it goes to the fresh one (not_joined).
    """
    message = parsed(frame)
    if message is not None and message["type"] in ("join", "resume"):
        return Frame("joined", frame.data)
    if message is not None and message["type"] == "leave":
        return Frame("fresh", frame.data)
    return frame


def expect(frame: Frame) -> Expected:
    if isinstance(frame.data, bytes):
        return Expected({"error:bad_json"}, None)
    # Before join a connection reads only small join and ping frames.
    fresh = frame.target == "fresh"
    try:
        message = parse_message(
            frame.data,
            min(MAX, MAX_UNJOINED_BYTES) if fresh else MAX,
            UNJOINED_TYPES if fresh else None,
        )
    except ProtocolError as exc:
        return Expected({f"error:{exc.code}"}, exc.ref)
    kind, ref = message["type"], message.get("id")
    if kind == "ping":
        return Expected({"pong"}, ref)
    if frame.target == "fresh":
        return Expected({"error:not_joined"}, ref)
    if kind in ("join", "resume"):
        return Expected({"error:already_joined"}, ref)
    if kind in HOST_ONLY:
        return Expected({"error:not_host"}, ref)
    if kind == "publish":
        if any(t["source"] == "screen" for t in message["tracks"]):
            return Expected({"error:not_permitted"}, ref)  # students may not share by default
        return Expected({"publish_answer", "error:bad_sdp"}, ref)
    if kind == "subscribe_answer":
        return Expected({"error:no_offer"}, ref)  # alone in the call: never an offer
    if kind == "hand":
        return Expected({"hands"}, None)
    if kind in ("audio_only", "save_data"):
        return Expected({"connection_quality"}, None)  # the answer: the state, always
    if kind in ("breakout_help", "breakout_return"):
        return Expected({"error:breakout_closed"}, ref)  # the student is in the main room
    if kind == "poll_answer":
        return Expected({"error:unknown_poll"}, ref)  # no poll is ever asked: hosts only
    if kind in ("video_quality", "track_view"):
        return Expected({"error:unknown_participant"}, ref)  # alone: nobody else to ask of
    if kind == "ice_restart":
        # A new connection (the subscriber's always exists, the publisher's once a
        # publish went through), one per 2 s.
        replies = {"ice_restarted", "error:rate_limited"}
        if message["connection"] == "publisher":
            replies |= {"error:no_connection", "error:bad_sdp", "error:not_permitted"}
        return Expected(replies, ref)
    if kind == "chat_send":
        return Expected(
            {"chat_message", "error:chat_empty", "error:chat_too_long", "error:chat_rate_limited"},
            ref,
        )
    assert kind == "media_state"
    if message.get("screen") is True:
        return Expected({"error:not_permitted"}, ref)
    return Expected({"participant_updated"}, None)


def describe(reply: dict[str, Any]) -> str:
    return f"error:{reply.get('code')}" if reply["type"] == "error" else str(reply["type"])


# --- the run


@dataclass
class Fuzz:
    server: LiveServer
    lesson: str
    tokens: list[str]  # minted ahead; more are minted if a failure forces a rejoin
    ws: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    probes: Iterator[int] = field(default_factory=itertools.count)
    frames_sent: int = 0
    seen: set[str] = field(default_factory=set)
    # Set while an example runs: an example that failed half-way leaves replies
    # unread, so the next one starts on new connections (and shrinking works).
    dirty: bool = False

    @property
    def url(self) -> str:
        return self.server.base_url.replace("http", "ws", 1) + "/ws"

    async def recv(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"connection lost: {msg}"
        reply = json.loads(msg.data)
        assert isinstance(reply, dict)
        return reply

    async def connect(self) -> None:
        """(Re)open whichever connection is missing, so every example starts alike."""
        if self.dirty:
            for ws in self.ws.values():
                await ws.close()
            self.ws.clear()
        if "fresh" not in self.ws or self.ws["fresh"].closed:
            self.ws["fresh"] = await self.server.http.ws_connect(self.url)
        if "joined" not in self.ws or self.ws["joined"].closed:
            if not self.tokens:
                self.tokens.append(await self.server.token(self.lesson, *STUDENT))
            ws = await self.server.http.ws_connect(self.url)
            await ws.send_str(json.dumps({"type": "join", "token": self.tokens.pop()}))
            assert (await self.recv(ws))["type"] == "joined"
            self.ws["joined"] = ws

    async def ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        ref = f"probe-{next(self.probes)}"
        await ws.send_str(json.dumps({"type": "ping", "id": ref}))
        assert await self.recv(ws) == {"type": "pong", "ref": ref}

    async def exchange(self, frames: list[Frame]) -> None:
        await self.connect()
        self.dirty = True
        for original in frames:
            frame = route(original)
            expected = expect(frame)
            ws = self.ws[frame.target]
            if isinstance(frame.data, bytes):
                await ws.send_bytes(frame.data)
            else:
                await ws.send_str(frame.data)
            self.frames_sent += 1
            # The probe's pong must come right after exactly one reply to the frame.
            probe = f"probe-{next(self.probes)}"
            await ws.send_str(json.dumps({"type": "ping", "id": probe}))
            reply = await self.recv(ws)
            got = describe(reply)
            self.seen.add(got)
            assert got in expected.replies, (frame, reply)
            if got.startswith("error:"):
                assert got[len("error:") :] in EXPECTED_ERRORS, reply
                assert isinstance(reply["message"], str) and reply["message"]
            # Replies to the sender carry its id; broadcasts carry none.
            direct = got.startswith("error:") or got in ("pong", "publish_answer", "ice_restarted")
            assert reply.get("ref") == (expected.ref if direct else None), (frame, reply)
            assert await self.recv(ws) == {"type": "pong", "ref": probe}, frame
        self.dirty = False


async def wait_for_tasks(baseline: set[asyncio.Task[Any]], timeout: float = 5.0) -> set[Any]:
    """Tasks beyond `baseline` still alive after `timeout` (none, if nothing leaked)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        extra = {t for t in asyncio.all_tasks() if t not in baseline and not t.done()}
        extra.discard(asyncio.current_task())
        if not extra or loop.time() > deadline:
            return extra
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_random_frames_get_one_reply_each(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fresh connection must outlive the whole run without joining.
    monkeypatch.setattr(signalling.ws, "JOIN_TIMEOUT", 3600.0)
    loop = asyncio.get_running_loop()
    # Thousands of frames on two connections: the frame budget (tested in
    # tests/test_frame_budget.py) would only make the run slow.
    async with running_server(limits=LimitSettings(ws_frames_per_second=0)) as server:
        lesson = await server.create_lesson()
        # Everything that needs the HTTP API up front: its keep-alive
        # connections are part of the baseline, not leaks.
        tokens = [await server.token(lesson, *STUDENT)]
        newcomer = await server.token(lesson, "s-2", "Ученик 2", "student")
        baseline = set(asyncio.all_tasks())
        fuzz = Fuzz(server, lesson, tokens)
        await fuzz.connect()

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.lists(frames, min_size=1, max_size=8))
        @example(EVERY_REPLY)
        def property_(batch: list[Frame]) -> None:
            asyncio.run_coroutine_threadsafe(fuzz.exchange(batch), loop).result(60)

        async with probing() as lag:
            await loop.run_in_executor(None, property_)
        assert fuzz.frames_sent >= 150
        # No frame kept the loop (the server's) busy: once 1,500 objects blocked it 2 s.
        assert lag.worst_cpu < 0.02, lag.describe()
        # The run reached the interesting replies, not only parse errors.
        assert fuzz.seen >= {
            "pong",
            "participant_updated",
            "publish_answer",
            "error:bad_sdp",
            "error:no_offer",
            "error:already_joined",
            "error:not_joined",
            "error:bad_message",
            "error:unknown_type",
            "error:bad_json",
            "error:too_large",
            "error:unknown_poll",
            "error:not_host",
        }, fuzz.seen

        # Both connections are still open and in step.
        for ws in fuzz.ws.values():
            assert not ws.closed
            await fuzz.ping(ws)

        # The call still works: someone else joins it and is seen.
        fresh, joined = fuzz.ws["fresh"], fuzz.ws["joined"]
        await fresh.send_str(json.dumps({"type": "join", "token": newcomer}))
        welcome = await fuzz.recv(fresh)
        assert welcome["type"] == "joined", welcome
        assert [p["user_id"] for p in welcome["participants"]] == ["s-1"]
        announced = await fuzz.recv(joined)
        assert announced == {"type": "participant_joined", "participant": welcome["self"]}

        for ws in (joined, fresh):
            await ws.send_str(json.dumps({"type": "leave"}))
        for ws in (joined, fresh):
            # participant_left, subscribe_offer: whatever came before the close
            while (await ws.receive(timeout=10)).type not in CLOSED:
                pass
        leaked = await wait_for_tasks(baseline)
        assert not leaked, leaked
