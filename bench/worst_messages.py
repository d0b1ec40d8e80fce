"""What the worst frame or body costs the server to read: a micro-measure (issue 9).

    python -m bench.worst_messages [--runs 30] [--only publish] [--json out.json]

Times `signalling.protocol.parse_message` on the worst WebSocket frames we
could construct within the limits (8 KiB before join, 320 KiB after), and
the journal API's body decode + validation (signalling.api: the same
`decode_json` with its value bound, then the handler's synchronous checks)
on the worst bodies within 256 KiB. Each input is parsed --runs times in
this process; the table gives the median and the maximum per call (the
maximum includes whatever the machine did meanwhile) and what the server
answers. Everything on the server's loop between two awaits is in the
figure: this is how long one frame or body can keep a lesson waiting.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.cli import run_main
from signalling import adhoc, api
from signalling.config import Settings
from signalling.protocol import (
    MAX_JSON_VALUES,
    MAX_UNJOINED_BYTES,
    ProtocolError,
    json_values_bound,
    parse_message,
)
from signalling.ws import UNJOINED_TYPES

JOINED_BYTES = Settings().max_ws_message_bytes  # 320 KiB
BODY_BYTES = 256 * 1024  # aiohttp's client_max_size (signalling/app.py)
SLOW_MS = 5.0  # an input above this is reported as a finding
# Room for the envelope around a list of values.
_ROOM = 200


@dataclass
class Case:
    name: str
    door: str  # "ws before join", "ws joined", or the API route
    data: str | bytes
    run: Callable[[], str]  # one parse; returns what the server answers


@dataclass
class Timing:
    name: str
    door: str
    size: int
    median_ms: float
    max_ms: float
    answer: str


# --------------------------------------------------------------------------- frames

# The exact halfway point between 0 and the smallest double: the slowest to round.
HALFWAY = (
    "2.4703282292062327208828439643411068618252990130716238221279284125033775363510437"
    "59326499181808179961898982823477228588654633283551779698981993873980053909390631"
    "50356595155702263922908583924491051844359318028499365361525003193704576782492193"
    "65623669863658480757001585769269903706311928279558551332927834338409351978015531"
    "2465972635795746227664652728272200563740064854999770965994704540208281662262378"
    "5739345073633900796776193057750674017632467360096895134053553745851666113422376"
    "6678604162159680461914467291840300530057530849048765391711386591646239524912623"
    "6538818796362393732804238910186723484976682350898633885879256283027559956575244"
    "5550725518931369083625477918694866799496832404970582102851318545139621383772282"
    "6145437693412532098591327667236328125e-324"
)


def _fill(prefix: str, item: str, suffix: str, limit: int) -> str:
    """prefix + as many `item`s, comma-separated, as fit in `limit` bytes and the value bound."""
    used = json_values_bound(prefix) + json_values_bound(suffix)
    by_values = (MAX_JSON_VALUES - used) // (json_values_bound(item) + 1)
    by_bytes = (limit - len(prefix.encode()) - len(suffix.encode())) // (len(item.encode()) + 1)
    return prefix + ",".join([item] * max(min(by_values, by_bytes), 1)) + suffix


def _items(prefix: str, items: list[str], suffix: str) -> str:
    return prefix + ",".join(items) + suffix


def _nested(depth: int, inner: str = "0") -> str:
    return "[" * depth + inner + "]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


def padded_ping(size: int) -> str:
    """A ping of exactly `size` bytes (spaces before its closing brace)."""
    ping = '{"type":"ping"}'
    return ping[:-1] + " " * (size - len(ping)) + "}"


def frames(limit: int) -> list[tuple[str, str]]:
    """(name, frame) for frames of at most `limit` bytes."""
    room = limit - _ROOM
    big_int = "9" * 4299  # just under Python's int_max_str_digits (4,300)
    out = [
        ("sdp of 320 KiB plain", json.dumps({"type": "subscribe_answer", "sdp": "v" * room})),
        (
            "sdp of \\u00e9 escapes",
            json.dumps({"type": "subscribe_answer", "sdp": "é" * (room // 6)}),
        ),
        (
            "sdp of surrogate-pair escapes",
            json.dumps({"type": "subscribe_answer", "sdp": "😀" * (room // 12)}),
        ),
        ('sdp of \\" escapes', json.dumps({"type": "subscribe_answer", "sdp": '"' * (room // 2)})),
        (
            "sdp of raw UTF-8 (3-byte)",
            json.dumps({"type": "subscribe_answer", "sdp": "ж" * (room // 2)}, ensure_ascii=False),
        ),
        ("4,094 zeros in an unknown field", _fill('{"type":"ping","x":[', "0", "]}", room)),
        ("4,094 empty objects", _fill('{"type":"ping","x":[', "{}", "]}", room)),
        ("4,094 long strings", _fill('{"type":"ping","x":[', '"' + "s" * 70 + '"', "]}", room)),
        (
            "4,094 tracks in publish",
            _fill(
                '{"type":"publish","sdp":"x","tracks":[',
                '{"mid":"0","source":"camera"}',
                "]}",
                room,
            ),
        ),
        (
            "publish, 8 tracks with huge mids",
            json.dumps(
                {
                    "type": "publish",
                    "sdp": "x",
                    "tracks": [{"mid": "m" * (room // 9), "source": "camera"}] * 8,
                }
            ),
        ),
        (
            "publish, 8 equal mids",
            json.dumps(
                {"type": "publish", "sdp": "x", "tracks": [{"mid": "0", "source": "camera"}] * 8}
            ),
        ),
        (
            "visibility of 4,094 equal strings",
            _fill('{"type":"recording_start","visibility":[', '"teacher"', "]}", room),
        ),
        (
            "visibility of 2,047 distinct objects",
            _items(
                '{"type":"recording_start","visibility":[',
                [f'{{"a":{i}}}' for i in range(2040)],
                "]}",
            ),
        ),
        (
            "visibility of 4 equal 80 KB strings",
            json.dumps(
                {"type": "recording_start", "visibility": ["t" * (room // 4 - 10)] * 3 + ["t" * 10]}
            ),
        ),
        (
            "breakout_assign of 4,094 entries",
            json.dumps(
                {"type": "breakout_assign", "assignments": {f"p{i}": "r" for i in range(4090)}}
            ),
        ),
        (
            "breakout_assign, 500 entries, 64-char keys, bad values",
            json.dumps(
                {
                    "type": "breakout_assign",
                    "assignments": {f"{i:064d}": ["x" * 500] for i in range(500)},
                }
            ),
        ),
        (
            "set_permissions of 4,094 keys",
            json.dumps(
                {
                    "type": "set_permissions",
                    "role": "student",
                    "permissions": {f"k{i}": True for i in range(4090)},
                }
            ),
        ),
        (
            "4,094 duplicate keys",
            _fill('{"type":"ping"', '"type":"ping"', "}", room).replace('"ping""', '"ping","', 1),
        ),
        (
            "4,094 duplicate 70-char keys",
            _fill('{"type":"ping"', '"' + "k" * 70 + '":0', "}", room).replace(
                '"ping""', '"ping","', 1
            ),
        ),
        ("chat_send of 4,000 commas", json.dumps({"type": "chat_send", "text": "," * 4000})),
        ("chat_send of 300 KB", json.dumps({"type": "chat_send", "text": "ы" * (room // 7)})),
        ("nested 4,000 deep (refused by the bound)", '{"type":"ping","x":' + _nested(4000) + "}"),
        ("nested 990 deep arrays", '{"type":"ping","x":' + _nested(990) + "}"),
        ("nested 990 deep objects", '{"type":"ping","x":' + _objects(990) + "}"),
        ("nested 990 deep as the type", '{"type":' + _nested(990) + "}"),
        ("nested 900 deep as the type", '{"type":' + _nested(900) + "}"),
        ("nested 250 deep in sdp", '{"type":"subscribe_answer","sdp":' + _nested(250) + "}"),
        ("integer of 300,000 digits", '{"type":"ping","x":' + "9" * min(300_000, room) + "}"),
        (
            "integers of 4,299 digits (as many as fit)",
            _fill('{"type":"ping","x":[', big_int, "]}", room),
        ),
        ("count of 4,299 digits", '{"type":"breakout_configure","count":' + big_int + "}"),
        (
            "names of 4,299-digit integers",
            _fill('{"type":"breakout_configure","count":1,"names":[', big_int, "]}", room),
        ),
        ("minutes of 4,299 digits", '{"type":"breakout_open","minutes":' + big_int + "}"),
        (
            "floats of 78 digits x 4,094",
            _fill('{"type":"ping","x":[', "2." + "4" * 76 + "e-308", "]}", room),
        ),
        (
            "floats halfway to the smallest double (760 digits)",
            _fill('{"type":"ping","x":[', HALFWAY, "]}", room),
        ),
        (
            "floats 2.4703282292062327e-324 x 4,094",
            _fill('{"type":"ping","x":[', "2.4703282292062327e-324", "]}", room),
        ),
        (
            "24-digit integers x 4,094 (the longest allowed)",
            _fill('{"type":"ping","x":[', "9" * 24, "]}", room),
        ),
        (
            "24-digit integers as breakout names",
            _fill('{"type":"breakout_configure","count":1,"names":[', "9" * 24, "]}", room),
        ),
        (
            "floats 3.6038705561092812e-13 x 4,094",
            _fill('{"type":"ping","x":[', "3.6038705561092812e-13", "]}", room),
        ),
        (
            "floats 2.4703282292062327e-40 x 4,094",
            _fill('{"type":"ping","x":[', "2.4703282292062327e-40", "]}", room),
        ),
        ("float 1e999999 (inf)", '{"type":"breakout_open","minutes":1e999999}'),
        ("float of 300,000 digits", '{"type":"ping","x":1.' + "3" * min(300_000, room) + "}"),
        ("NaN", '{"type":"breakout_open","minutes":NaN}'),
        (
            "mute with 300 lists as kind",
            json.dumps({"type": "mute", "participant_id": "p", "kind": [[0] * 3] * 300}),
        ),
        ("unknown type of 300 KB", json.dumps({"type": "t" * room})),
        ("id of 300 KB", json.dumps({"type": "ping", "id": "i" * room})),
        ("padded ping at the limit", padded_ping(limit)),
        ("padded ping 1 byte over the limit", padded_ping(limit + 1)),
    ]
    return [(name, frame) for name, frame in out if len(frame.encode()) <= limit + 1]


def _answer_frame(frame: str, limit: int, allowed: frozenset[str] | None) -> str:
    try:
        message = parse_message(frame, limit, allowed)
    except ProtocolError as exc:
        return exc.code
    except Exception as exc:
        return f"EXCEPTION {type(exc).__name__}"
    return f"ok ({message['type']})"


def frame_cases() -> list[Case]:
    cases = []
    for name, frame in frames(MAX_UNJOINED_BYTES):
        cases.append(
            Case(
                name,
                "ws before join",
                frame,
                functools.partial(_answer_frame, frame, MAX_UNJOINED_BYTES, UNJOINED_TYPES),
            )
        )
    for name, frame in frames(JOINED_BYTES):
        cases.append(
            Case(
                name,
                "ws joined",
                frame,
                functools.partial(_answer_frame, frame, JOINED_BYTES, None),
            )
        )
    return cases


# --------------------------------------------------------------------------- bodies


def _lesson_body(roster: list[dict[str, Any]], name: str = "Анна") -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(hours=1)
    return {
        "group": {"id": "5a", "title": "5А"},
        "subject": "Математика",
        "teacher": {"id": "t-1", "name": name},
        "roster": roster,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(minutes=45)).isoformat(),
    }


def bodies() -> list[tuple[str, str, bytes]]:
    """(route, name, body) for bodies of at most 256 KiB."""
    room = BODY_BYTES - _ROOM
    combining = "е" + "\u0301" * 60  # a letter and 60 combining accents: NFC work
    long_name = "Иванов-Петров " * 14  # 196 characters, the most a name may have
    roster_500 = [{"id": f"s{i}", "name": "Иван Петров", "role": "student"} for i in range(500)]
    roster_names = [{"id": f"s{i}", "name": combining, "role": "student"} for i in range(500)]
    roster_long = [{"id": f"s{i}", "name": long_name, "role": "student"} for i in range(500)]
    roster_dup = [{"id": "s", "name": "И", "role": "student"} for _ in range(500)]
    deep = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
    out: list[tuple[str, str, bytes]] = [
        (
            "lessons",
            "60,000 {} roster (refused by the bound)",
            json.dumps({"roster": [{}] * 60_000}).encode(),
        ),
        ("lessons", "JSON nested 10,000 deep (refused by the bound)", deep),
        ("lessons", "nested 990 deep", b'{"roster":' + _nested(990).encode() + b"}"),
        (
            "lessons",
            "roster of 1,364 {} (just under the bound)",
            json.dumps({"roster": [{}] * 1364}).encode(),
        ),
        ("lessons", "valid, 500 pupils", json.dumps(_lesson_body(roster_500)).encode()),
        (
            "lessons",
            "valid, 500 pupils with 60 combining marks each",
            json.dumps(_lesson_body(roster_names)).encode(),
        ),
        (
            "lessons",
            "valid, 500 pupils with 196-character names",
            json.dumps(_lesson_body(roster_long), ensure_ascii=False).encode(),
        ),
        (
            "lessons",
            "500 pupils, one id (duplicate_id)",
            json.dumps(_lesson_body(roster_dup)).encode(),
        ),
        (
            "lessons",
            "501 pupils (too many)",
            json.dumps(
                _lesson_body([*roster_500, {"id": "x", "name": "x", "role": "student"}])
            ).encode(),
        ),
        (
            "lessons",
            "integers of 4,299 digits",
            _fill('{"roster":[', "9" * 4299, "]}", room).encode(),
        ),
        (
            "lessons",
            "floats halfway to the smallest double",
            _fill('{"roster":[', HALFWAY, "]}", room).encode(),
        ),
        (
            "lessons",
            "string of 256 KiB of \\u escapes",
            json.dumps({"subject": "é" * (room // 6)}).encode(),
        ),
        (
            "calls",
            "valid call, 500 invited",
            json.dumps(
                {"title": "Собрание", "host": {"id": "t-1", "name": "Анна"}, "roster": roster_500}
            ).encode(),
        ),
        (
            "tokens",
            "user of 4,094 keys",
            json.dumps({"user": {f"k{i}": 0 for i in range(4090)}, "role": "student"}).encode(),
        ),
        ("invite", "JSON nested 10,000 deep", deep),
        (
            "invite",
            "name of 100 combining marks",
            json.dumps({"name": "е" + "\u0301" * 99}).encode(),
        ),
        ("invite", "name of 256 KiB", json.dumps({"name": "n" * room}).encode()),
    ]
    return [(route, name, body) for route, name, body in out if len(body) <= BODY_BYTES]


def _answer_body(route: str, body: bytes) -> str:
    settings = Settings()
    integration = settings.integrations[0]
    now = datetime.now(UTC)
    try:
        try:
            document = api.decode_json(body, api.MAX_BODY_VALUES)
        except (UnicodeDecodeError, ValueError):
            return "400 bad_json"
        if not isinstance(document, dict):
            return "400 invalid_body"
        if route == "lessons":
            api._lesson_from_body(document, integration, settings, now)
        elif route == "calls":
            adhoc._call_from_body(document, integration, settings, now)
        elif route == "tokens":
            api._validate(api.TOKEN_REQUEST, document)
        elif route == "invite":
            api._validate(adhoc.GUEST_JOIN, document)
            api.shown_name(document["name"], "$.name", 100)
    except api.ApiError as exc:
        return f"{exc.status} {exc.code}"
    except Exception as exc:
        return f"EXCEPTION {type(exc).__name__}"
    return "ok (valid)"


ROUTES = {
    "lessons": "POST /api/v1/lessons",
    "calls": "POST /api/v1/calls",
    "tokens": "POST /api/v1/lessons/{id}/tokens",
    "invite": "POST /invite/{code}",
}


def body_cases() -> list[Case]:
    return [
        Case(name, ROUTES[route], body, functools.partial(_answer_body, route, body))
        for route, name, body in bodies()
    ]


# --------------------------------------------------------------------------- measuring


def measure(case: Case, runs: int) -> Timing:
    answer = case.run()  # warm (and the answer)
    times = []
    gc_was = gc.isenabled()
    gc.disable()  # the server's collector runs too, but not because of one frame
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            case.run()
            times.append(time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    size = len(case.data.encode() if isinstance(case.data, str) else case.data)
    return Timing(
        case.name, case.door, size, 1000 * statistics.median(times), 1000 * max(times), answer
    )


def format_table(timings: list[Timing], runs: int) -> str:
    lines = [
        f"parse + validate per call, {runs} runs each (median / max, ms); "
        f"frames: {MAX_UNJOINED_BYTES // 1024} KiB before join, {JOINED_BYTES // 1024} KiB "
        f"joined; bodies: {BODY_BYTES // 1024} KiB; value bound {MAX_JSON_VALUES}",
        "",
        f"{'door':<34}{'input':<52}{'bytes':>8}{'median':>9}{'max':>9}  answer",
    ]
    for t in timings:
        flag = "  <-- over 5 ms" if t.median_ms > SLOW_MS else ""
        lines.append(
            f"{t.door:<34}{t.name[:51]:<52}{t.size:>8}{t.median_ms:>9.3f}{t.max_ms:>9.3f}"
            f"  {t.answer}{flag}"
        )
    worst = max(timings, key=lambda t: t.median_ms)
    lines += [
        "",
        f"worst: {worst.door}: {worst.name}: {worst.median_ms:.2f} ms median, "
        f"{worst.max_ms:.2f} ms max ({worst.size} bytes, answered {worst.answer})",
    ]
    slow = [t for t in timings if t.median_ms > SLOW_MS]
    lines.append(f"inputs over {SLOW_MS:g} ms: {len(slow)}")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worst_messages",
        description="Time parse + validation of the worst frames and API bodies.",
    )
    parser.add_argument("--runs", type=int, default=30, help="runs per input (default 30)")
    parser.add_argument("--only", help="only inputs whose name or door contains this")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not 1 <= args.runs <= 10_000:
        print("--runs must be 1..10000", file=sys.stderr)
        return 2
    cases = frame_cases() + body_cases()
    if args.only:
        cases = [c for c in cases if args.only in c.name or args.only in c.door]
    timings = [measure(case, args.runs) for case in cases]
    report = {"runs": args.runs, "timings": [asdict(t) for t in timings]}
    from bench.cli import publish_report

    await publish_report(format_table(timings, args.runs), report, args.json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
