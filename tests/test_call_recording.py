"""Recording a call end to end: aiortc bots publish known content through the SFU, the
host records, the file lands in the chat, the journal hears of it, and the link serves it
only to the call's people with a school profile."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from rooms.model import RecordingStatus
from signalling.config import DEMO_SECRET
from signalling.keys import CALLS, RECORDINGS
from tests.live import LiveServer, running_server
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)
from tests.test_journal_webhooks import journal_endpoint

RED = (220, 30, 30)
BLUE = (30, 40, 220)
TEACHER_TONE, STUDENT_TONE = 440.0, 1000.0


def is_recording_ready(message: dict[str, Any]) -> bool:
    return (
        message["type"] == "chat_message"
        and message["message"]["data"].get("event") == "recording_ready"
    )


def colour_mask(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 45) -> np.ndarray:
    return (np.abs(image.astype(np.int16) - colour) <= tolerance).all(axis=2)


def spectrum_peak(
    samples: np.ndarray, rate: int, frequency: float, around: float | None = None
) -> tuple[float, float]:
    """(peak near `frequency`, median of the spectrum) of a stretch of audio; with
    `around`, the median of the spectrum within `around` Hz of `frequency` only."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    near = spectrum if around is None else spectrum[np.abs(freqs - frequency) < around]
    return float(spectrum[np.abs(freqs - frequency) < 4].max()), float(np.median(near))


async def fetch(
    server: LiveServer,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = server.base_url + path
    if token is not None:
        url += "?token=" + token
    async with server.http.get(url, headers=headers or {}) as response:
        return response.status, dict(response.headers), await response.read()


async def test_host_records_the_call_and_everyone_gets_the_file(tmp_path: Path) -> None:
    async with journal_endpoint() as (journal, integration), AsyncExitStack() as bots:
        async with running_server(data_dir=tmp_path, integrations=(integration,)) as server:
            lesson = await server.create_lesson()
            other_lesson = await server.create_lesson(group_id="6b")

            async def bot(user: str, name: str, role: str, lesson_id: str = lesson) -> Bot:
                made = Bot(server.base_url, await server.token(lesson_id, user, name, role))
                bots.push_async_callback(made.close)
                return made

            teacher = await bot("t-1", "Анна Петровна", "teacher")
            student = await bot("s-1", "Ученик 1", "student")
            # Small cameras: the bots encode in this process, beside the server; bots that
            # fall behind send holes, which the spectrum checks below would rightly see.
            teacher_camera = PatternVideoTrack(RED, 160, 120, 15)
            student_camera = PatternVideoTrack(BLUE, 160, 120, 15)
            await teacher.connect()
            await teacher.publish(
                [(ToneAudioTrack(TEACHER_TONE), "microphone"), (teacher_camera, "camera")]
            )
            await student.connect()
            await student.publish(
                [(ToneAudioTrack(STUDENT_TONE), "microphone"), (student_camera, "camera")]
            )
            await student.wait_track(teacher.id, "video")
            await teacher.wait_track(student.id, "video")

            # Only a host may record.
            refused = await student.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording"
            )
            assert refused["type"] == "error" and refused["code"] == "not_host"

            student_sees = student.wait_for(lambda m: m["type"] == "recording", 10)
            started = await teacher.request(
                {"type": "recording_start", "title": "  Дроби,\n повторение "},
                lambda m: m["type"] == "recording",
            )
            start_wall = time.monotonic()
            state = started["recording"]
            assert state["title"] == "Дроби, повторение"
            assert state["author"] == {"id": teacher.id, "user_id": "t-1", "name": "Анна Петровна"}
            assert 0 <= state["elapsed_s"] < 1
            assert (await student_sees)["recording"]["id"] == state["id"]

            again = await teacher.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording"
            )
            assert again["type"] == "error" and again["code"] == "recording_active"

            await asyncio.sleep(2)
            # Who joins later sees the indicator with the time recorded so far.
            late = await bot("s-2", "Ученик 2", "student")
            joined = await late.connect()
            assert joined["recording"]["id"] == state["id"]
            assert joined["recording"]["elapsed_s"] >= 1.9
            await asyncio.sleep(2.5)

            ready = student.wait_for(is_recording_ready, 60)
            late_sees = late.wait_for(lambda m: m["type"] == "recording", 10)
            stopped = await teacher.request(
                {"type": "recording_stop"}, lambda m: m["type"] == "recording"
            )
            stop_wall = time.monotonic()
            assert stopped["recording"] is None
            assert (await late_sees)["recording"] is None
            wall = stop_wall - start_wall

            message = (await ready)["message"]
            data = message["data"]
            assert message["kind"] == "system" and "Дроби, повторение" in message["text"]
            assert data["recording_id"] == state["id"]
            assert data["title"] == "Дроби, повторение"
            assert data["author_name"] == "Анна Петровна"
            assert data["complete"] is True
            assert abs(data["duration_s"] - wall) < 0.5, (data["duration_s"], wall)
            url, thumbnail_url = data["url"], data["thumbnail_url"]
            assert url == f"/recordings/{state['id']}/file"
            assert thumbnail_url == f"/recordings/{state['id']}/thumbnail"

            path = tmp_path / "recordings" / f"{state['id']}.mp4"
            content = path.read_bytes()
            assert data["size_bytes"] == len(content) > 20_000

            # The journal hears of it, with the same metadata.
            hook = (await journal.wait("recording.ready"))[0]["data"]
            assert hook["lesson_id"] == lesson
            assert hook["recording"]["id"] == state["id"]
            assert hook["recording"]["title"] == "Дроби, повторение"
            assert hook["recording"]["author"] == {"user_id": "t-1", "name": "Анна Петровна"}
            assert hook["recording"]["size_bytes"] == len(content)
            assert hook["recording"]["duration_s"] == data["duration_s"]
            assert hook["recording"]["url"] == server.base_url + url
            api_download = hook["recording"]["download_url"]

            # The link: the call's people with a school profile, nobody else.
            status, headers, body = await fetch(server, url, token=student.token)
            assert status == 200 and body == content
            assert headers["Content-Type"] == "video/mp4"
            assert headers["Accept-Ranges"] == "bytes"
            status, headers, body = await fetch(
                server,
                url,
                headers={"Authorization": f"Bearer {late.token}", "Range": "bytes=1000-1999"},
            )
            assert status == 206 and body == content[1000:2000]
            assert headers["Content-Range"] == f"bytes 1000-1999/{len(content)}"
            status, _, body = await fetch(
                server, url, token=teacher.token, headers={"Range": f"bytes=-{500}"}
            )
            assert status == 206 and body == content[-500:]
            status, headers, body = await fetch(server, thumbnail_url, token=student.token)
            assert status == 200 and headers["Content-Type"] == "image/jpeg"
            assert body[:2] == b"\xff\xd8"

            guest_token = await server.token(lesson, "g-1", "Гость", "guest")
            stranger_token = await server.token(other_lesson, "s-1", "Ученик 1", "student")
            for token, expected in (
                (None, 401),
                (guest_token, 403),
                (stranger_token, 401),
                (student.token[:-3] + "abc", 401),
            ):
                status, _, body = await fetch(server, url, token=token)
                assert status == expected, (token, status, body)
                assert len(body) < 500 and json.loads(body)["error"]["code"]
                status, _, _ = await fetch(server, thumbnail_url, token=token)
                assert status == expected
            status, _, _ = await fetch(server, "/recordings/rec_0000000000000000/file")
            assert status == 404

            # The journal downloads with its own key; the call page lists it.
            async with server.http.get(
                api_download, headers={"Authorization": f"Bearer {DEMO_SECRET}"}
            ) as response:
                assert response.status == 200 and await response.read() == content
            async with server.http.get(api_download) as response:
                assert response.status == 401
            status, _, body = await fetch(server, f"/call/{lesson}/recordings", token=late.token)
            assert status == 200
            assert [r["id"] for r in json.loads(body)["recordings"]] == [state["id"]]
            status, _, _ = await fetch(server, f"/call/{lesson}/recordings", token=guest_token)
            assert status == 403

            # Someone removed from the call loses the recording with it.
            await teacher.request(
                {"type": "remove", "participant_id": late.id},
                lambda m: m["type"] == "participant_left",
            )
            status, _, body = await fetch(server, url, token=late.token)
            assert status == 403 and json.loads(body)["error"]["code"] == "token_revoked"

            # The file: video and audio, both tones, and both people's tiles.
            with av.open(str(path)) as container:
                assert [s.type for s in container.streams] == ["video", "audio"]
                video = container.streams.video[0]
                assert (video.codec_context.name, video.codec_context.width) == ("h264", 1280)
                frames = [
                    (float(f.pts * video.time_base), f.to_ndarray(format="rgb24"))
                    for f in container.decode(video)
                ]
            with av.open(str(path)) as container:
                rate = container.streams.audio[0].sample_rate
                samples = np.concatenate(
                    [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
                )
            late_frame = min(frames, key=lambda f: abs(f[0] - (wall - 1.0)))[1]
            total = late_frame.shape[0] * late_frame.shape[1]
            red, blue = colour_mask(late_frame, RED), colour_mask(late_frame, BLUE)
            assert red.sum() > 0.03 * total and blue.sum() > 0.03 * total
            centres = [np.argwhere(mask).mean(axis=0) for mask in (red, blue)]
            assert np.hypot(*(centres[0] - centres[1])) > 200  # two tiles, side by side
            middle = samples[int(1.0 * rate) : int((wall - 0.5) * rate)]
            for tone in (TEACHER_TONE, STUDENT_TONE):
                peak, floor = spectrum_peak(middle, rate, tone)
                assert peak > 100 * floor, tone
            # Nothing where no tone was sent: no peak over the spectrum around it (a
            # hole from a bot that fell behind, beside the server on a loaded machine,
            # spreads some of the tones' energy there, peak and neighbours alike).
            peak, floor = spectrum_peak(middle, rate, 1700, around=300)
            assert peak < 20 * floor

            # Nothing was decoded on the forwarding path; the recording is not running now.
            call = server.app[CALLS].get(lesson)
            assert call is not None and call.recording_state() is None
            assert len(call.router.producers) == 4
            for producer in call.router.producers:
                assert not producer.taps
                assert producer._receiver._RTCRtpReceiver__decoder_thread is None
            record = await server.app[RECORDINGS].library.get(state["id"])
            assert record is not None and record.status == RecordingStatus.READY


async def test_recordings_follow_one_another_and_stop_with_the_call(tmp_path: Path) -> None:
    async with running_server(data_dir=tmp_path) as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        try:
            joined = await teacher.connect()
            assert joined["recording"] is None
            nothing = await teacher.request(
                {"type": "recording_stop"}, lambda m: m["type"] == "recording"
            )
            assert nothing["type"] == "error" and nothing["code"] == "no_recording"
            bad = await teacher.request(
                {"type": "recording_start", "visibility": ["guest"]},
                lambda m: m["type"] == "recording",
            )
            assert bad["type"] == "error" and bad["code"] == "bad_message"

            first = await teacher.request(
                {"type": "recording_start", "visibility": ["student"]},
                lambda m: m["type"] == "recording",
            )
            # Default title: subject, class, date of the lesson.
            assert first["recording"]["title"].startswith("Математика, 5А, ")
            await asyncio.sleep(1)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            second = await teacher.request(
                {"type": "recording_start", "title": "Вторая"}, lambda m: m["type"] == "recording"
            )
            assert second["recording"]["id"] != first["recording"]["id"]
            await asyncio.sleep(1)
            # The lesson ends while recording: the recording is finished and posted anyway.
            status, _ = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
            assert status == 200
            await teacher.closed_by_server.wait()
            library = server.app[RECORDINGS].library
            for _ in range(200):
                records = await library.store.recordings(lesson)
                if [r.status for r in records] == [RecordingStatus.READY] * 2:
                    break
                await asyncio.sleep(0.1)
            first_record, second_record = records
            assert [first_record.id, second_record.id] == [
                first["recording"]["id"],
                second["recording"]["id"],
            ]
            assert [r.value for r in first_record.visibility] == ["teacher", "student"]
            assert [r.value for r in second_record.visibility] == ["teacher", "student", "parent"]
            # Never overlapping: the second starts after the first ended.
            assert first_record.ended_at is not None
            assert second_record.started_at >= first_record.ended_at
            history = await server.app[RECORDINGS].library.store.chat_history(lesson)
            posted = [m.data["recording_id"] for m in history if m.data.get("event")]
            assert posted[-2:] == [first_record.id, second_record.id]
        finally:
            await teacher.close()


async def test_a_crashed_recorder_still_leaves_a_playable_file(tmp_path: Path) -> None:
    async with running_server(data_dir=tmp_path) as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        try:
            await teacher.connect()
            await teacher.publish([(PatternVideoTrack(RED), "camera")])
            started = await teacher.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording"
            )
            await asyncio.sleep(3)
            call = server.app[CALLS].get(lesson)
            assert call is not None and call._recorder is not None
            pid = call._recorder.process.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
            ready = teacher.wait_for(is_recording_ready, 60)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            data = (await ready)["message"]["data"]
            assert data["recording_id"] == started["recording"]["id"]
            assert data["complete"] is False
            assert 1.0 < data["duration_s"] < 3.6
            status, _, body = await fetch(server, data["url"], token=teacher.token)
            assert status == 200 and len(body) == data["size_bytes"]
            path = tmp_path / "recordings" / f"{data['recording_id']}.mp4"
            with av.open(str(path)) as container:
                assert len(list(container.decode(video=0))) > 10
        finally:
            await teacher.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_recordings_survive_a_restart(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    if redis_url is not None:
        from redis.asyncio import Redis

        async with Redis.from_url(redis_url) as client:
            await client.flushall()
    async with running_server(data_dir=tmp_path, redis_url=redis_url) as server:
        lesson = await server.create_lesson()
        token = await server.token(lesson, "s-1", "Ученик 1", "student")
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        try:
            await teacher.connect()
            ready = teacher.wait_for(is_recording_ready, 60)
            await teacher.request({"type": "recording_start"}, lambda m: m["type"] == "recording")
            await asyncio.sleep(1.5)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            data = (await ready)["message"]["data"]
        finally:
            await teacher.close()
        status, _, first_body = await fetch(server, data["url"], token=token)
        assert status == 200

    # A new process: the same data directory (and, with Redis, the same store).
    async with running_server(data_dir=tmp_path, redis_url=redis_url) as server:
        status, listing = await server.api("GET", f"/api/v1/lessons/{lesson}/recordings")
        assert status == 200, listing
        assert [r["id"] for r in listing["recordings"]] == [data["recording_id"]]
        assert listing["recordings"][0]["size_bytes"] == data["size_bytes"]
        status, _, body = await fetch(server, data["url"], token=token)
        assert status == 200 and body == first_body
        status, _, body = await fetch(
            server, data["url"], token=token, headers={"Range": "bytes=0-99"}
        )
        assert status == 206 and body == first_body[:100]

    # A node that died while recording: at the next start its record says what is left.
    sidecar = tmp_path / "recordings" / f"{data['recording_id']}.json"
    record = json.loads(sidecar.read_text())
    record.update(status="recording", duration_s=0, size_bytes=0, ended_at=None)
    sidecar.write_text(json.dumps(record))
    async with running_server(data_dir=tmp_path, redis_url=redis_url) as server:
        listed = await server.app[RECORDINGS].library.get(data["recording_id"])
        assert listed is not None and listed.status == RecordingStatus.READY
        assert listed.complete is False and listed.size_bytes == data["size_bytes"]
        assert abs(listed.duration_s - data["duration_s"]) < 0.2
        history = await server.app[RECORDINGS].library.store.chat_history(lesson)
        posted = [m.data for m in history if m.data.get("event") == "recording_ready"]
        if backend == "redis":
            # The call is still known: its chat gets the recovered recording too.
            assert [(d["recording_id"], d["complete"]) for d in posted] == [
                (data["recording_id"], True),
                (data["recording_id"], False),
            ]
        else:
            assert posted == []  # the memory store forgot the call with the process


async def test_recording_can_be_switched_off(tmp_path: Path) -> None:
    from signalling.config import RecordingSettings

    for settings, code in (
        (RecordingSettings(enabled=False), "recording_unavailable"),
        (RecordingSettings(min_free_mb=10**7), "recording_no_space"),
    ):
        async with running_server(data_dir=tmp_path, recording=settings) as server:
            lesson = await server.create_lesson()
            teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
            try:
                await teacher.connect()
                refused = await teacher.request(
                    {"type": "recording_start"}, lambda m: m["type"] == "recording"
                )
                assert refused["type"] == "error" and refused["code"] == code
                assert refused["message"]
            finally:
                await teacher.close()
    assert not list((tmp_path / "recordings").glob("*.mp4"))


async def test_unknown_recording_paths_are_not_found() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        for path in ("/recordings/abc/file", "/recordings/rec_0123456789abcdef/file"):
            async with http.get(server.base_url + path) as response:
                assert response.status == 404


async def test_only_the_main_room_is_recorded_and_every_room_gets_the_file(
    tmp_path: Path,
) -> None:
    async with running_server(data_dir=tmp_path) as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        away = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
        try:
            await teacher.connect()
            await teacher.publish([(PatternVideoTrack(RED), "camera")])
            await away.connect()
            await away.publish([(PatternVideoTrack(BLUE), "camera")])
            await teacher.wait_track(away.id, "video")
            of_breakout = lambda m: m["type"] == "breakout"  # noqa: E731
            await teacher.request({"type": "breakout_configure", "count": 1}, of_breakout)
            await teacher.request(
                {"type": "breakout_assign", "assignments": {away.id: "r1"}}, of_breakout
            )
            moved = away.wait_for(lambda m: of_breakout(m) and m["room"] == "r1")
            await teacher.send({"type": "breakout_open"})
            await moved

            ready = away.wait_for(is_recording_ready, 60)
            indicator = away.wait_for(lambda m: m["type"] == "recording", 10)
            await teacher.request({"type": "recording_start"}, lambda m: m["type"] == "recording")
            assert (await indicator)["recording"] is not None  # in a breakout room too
            await asyncio.sleep(2.5)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            message = (await ready)["message"]
            assert message["room"] == "*"
            path = tmp_path / "recordings" / f"{message['data']['recording_id']}.mp4"
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            last = frames[-5]
            total = last.shape[0] * last.shape[1]
            # The teacher's camera alone fills the grid; the pupil in the room is not in it.
            assert colour_mask(last, RED).sum() > 0.2 * total
            assert colour_mask(last, BLUE).sum() < 0.001 * total
        finally:
            await teacher.close()
            await away.close()


async def test_a_node_runs_at_most_max_concurrent_recordings(tmp_path: Path) -> None:
    from signalling.config import RecordingSettings

    settings = RecordingSettings(max_concurrent=1, min_free_mb=1)
    async with running_server(data_dir=tmp_path, recording=settings) as server:
        first_lesson = await server.create_lesson(group_id="5a")
        second_lesson = await server.create_lesson(group_id="5b")
        first = Bot(server.base_url, await server.token(first_lesson, "t-1", "Анна", "teacher"))
        second = Bot(server.base_url, await server.token(second_lesson, "t-1", "Анна", "teacher"))
        try:
            await first.connect()
            await second.connect()
            is_recording = lambda m: m["type"] == "recording"  # noqa: E731
            started = await first.request({"type": "recording_start"}, is_recording)
            assert started["type"] == "recording"
            busy = await second.request({"type": "recording_start"}, is_recording)
            assert busy["type"] == "error" and busy["code"] == "recording_busy"
            ready = first.wait_for(is_recording_ready, 60)
            await first.request({"type": "recording_stop"}, is_recording)
            await ready  # finished: the place is free again
            again = await second.request({"type": "recording_start"}, is_recording)
            assert again["type"] == "recording"
            await second.request({"type": "recording_stop"}, is_recording)
        finally:
            await first.close()
            await second.close()


async def test_a_recording_stops_before_the_disk_fills_up_and_is_kept(tmp_path: Path) -> None:
    from signalling.config import RecordingSettings

    async with running_server(data_dir=tmp_path, recording=RecordingSettings(min_free_mb=1)) as (
        server
    ):
        service = server.app[RECORDINGS]
        service.disk_check_seconds = 0.2
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        student = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
        try:
            await teacher.connect()
            await student.connect()
            is_recording = lambda m: m["type"] == "recording"  # noqa: E731
            await teacher.request({"type": "recording_start"}, is_recording)
            await asyncio.sleep(1.5)
            assert server.app[CALLS].get(lesson).recording_state() is not None  # type: ignore[union-attr]
            stopped = student.wait_for(is_recording, 10)
            ready = student.wait_for(is_recording_ready, 60)
            # The real free space, against a threshold above it: "nearly full".
            service.stop_free_bytes = 2**62
            assert (await stopped) == {
                "type": "recording",
                "recording": None,
                "reason": "disk_full",
            }
            data = (await ready)["message"]["data"]
            assert data["duration_s"] > 1.0  # what was recorded is kept
            status, _, body = await fetch(server, data["url"], token=student.token)
            assert status == 200 and len(body) == data["size_bytes"]
            # And no new one starts until there is room again.
            refused = await teacher.request({"type": "recording_start"}, is_recording)
            assert refused["type"] == "error" and refused["code"] == "recording_no_space"
        finally:
            await teacher.close()
            await student.close()


async def test_recordings_are_deleted_by_the_journal_or_after_the_retention_period(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from signalling.config import RecordingSettings

    async def record(server: LiveServer, lesson: str, teacher_token: str) -> dict[str, Any]:
        teacher = Bot(server.base_url, teacher_token)
        try:
            await teacher.connect()
            ready = teacher.wait_for(is_recording_ready, 60)
            await teacher.request({"type": "recording_start"}, lambda m: m["type"] == "recording")
            await asyncio.sleep(1)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            return dict((await ready)["message"]["data"])
        finally:
            await teacher.close()

    directory = tmp_path / "recordings"
    async with running_server(data_dir=tmp_path) as server:
        lesson = await server.create_lesson()
        teacher_token = await server.token(lesson, "t-1", "Анна", "teacher")
        deleted = await record(server, lesson, teacher_token)
        kept = await record(server, lesson, teacher_token)
        assert len(list(directory.glob(f"{deleted['recording_id']}.*"))) == 3  # mp4, jpg, json

        async with server.http.delete(
            f"{server.base_url}/api/v1/recordings/{deleted['recording_id']}",
            headers={"Authorization": f"Bearer {DEMO_SECRET}"},
        ) as response:
            assert response.status == 204
        assert list(directory.glob(f"{deleted['recording_id']}.*")) == []
        status, _, _ = await fetch(server, deleted["url"], token=teacher_token)
        assert status == 404
        status, listing = await server.api("GET", f"/api/v1/lessons/{lesson}/recordings")
        assert [r["id"] for r in listing["recordings"]] == [kept["recording_id"]]

    # The other one ended 31 days ago (as far as its record says): a server keeping
    # recordings for 30 days deletes it when it starts; one keeping them 40 days does not.
    sidecar = directory / f"{kept['recording_id']}.json"
    old = json.loads(sidecar.read_text())
    long_ago = datetime.now(UTC) - timedelta(days=31)
    old.update(started_at=long_ago.isoformat(), ended_at=long_ago.isoformat())
    sidecar.write_text(json.dumps(old))
    for days, remaining in ((40, 3), (30, 0)):
        settings = RecordingSettings(retention_days=days)
        async with running_server(data_dir=tmp_path, recording=settings):
            # The first sweep runs at start-up: give it a moment either way.
            for _ in range(10 if remaining else 50):
                await asyncio.sleep(0.1)
                if len(list(directory.glob(f"{kept['recording_id']}.*"))) != 3:
                    break
            assert len(list(directory.glob(f"{kept['recording_id']}.*"))) == remaining, days
