"""Recordings across nodes on one real redis-server: a recording written on node A is
downloaded (whole and by Range) from node B, which streams it from A's internal route;
that route refuses requests no node signed; deleting at B deletes at A; with A gone B
answers 503, and the recording is back when A is."""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bench.bot import Bot
from rooms.placement import NodeRecord
from signalling.config import DEMO_SECRET, RecordingSettings, load_settings, settings_from_mapping
from signalling.config_cluster import ClusterSettings
from signalling.config_sections import ConfigError
from signalling.keys import NODE, RECORDINGS
from signalling.recording_nodes import EXPIRES_HEADER, NODE_LINK, SIGNATURE_HEADER, sign
from tests.live import LiveServer, free_port, running_server
from tests.redis_server import redis_server
from tests.test_call_recording import fetch, is_recording_ready
from tests.test_openapi import add_recording


def cluster(node_id: str) -> ClusterSettings:
    return ClusterSettings(node_id=node_id, heartbeat_seconds=0.1, stale_after_seconds=1.0)


async def record_on(server: LiveServer, lesson: str, token: str) -> str:
    """A real recording of about a second by the teacher on `server`; its id."""
    teacher = Bot(server.base_url, token)
    try:
        await teacher.connect()
        ready = teacher.wait_for(is_recording_ready, 60)
        await teacher.request({"type": "recording_start"}, lambda m: m["type"] == "recording")
        await asyncio.sleep(1)  # what is recorded: a second
        await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
        return str((await ready)["message"]["data"]["recording_id"])
    finally:
        await teacher.close()


async def journal_get(server: LiveServer, path: str, headers: dict[str, str]) -> Any:
    headers = {"Authorization": f"Bearer {DEMO_SECRET}", **headers}
    async with server.http.get(server.base_url + path, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def downloads_match(b: LiveServer, recording_id: str, token: str, content: bytes) -> None:
    url = f"/recordings/{recording_id}/file"
    status, headers, body = await fetch(b, url, token=token)
    assert status == 200 and body == content, status
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Length"] == str(len(content))
    assert headers["Accept-Ranges"] == "bytes"
    start, end = len(content) // 3, len(content) // 3 + len(content) // 2
    status, headers, body = await fetch(
        b, url, token=token, headers={"Range": f"bytes={start}-{end}"}
    )
    assert status == 206 and body == content[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{len(content)}"
    assert headers["Content-Length"] == str(end + 1 - start)
    assert headers["Content-Type"] == "video/mp4"
    status, _, body = await journal_get(
        b, f"/api/v1/recordings/{recording_id}/file", {"Range": "bytes=-500"}
    )
    assert status == 206 and body == content[-500:]
    status, _, _ = await fetch(b, url, token=token, headers={"Range": f"bytes={len(content)}-"})
    assert status == 416
    async with b.http.head(f"{b.base_url}{url}?token={token}") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(content))


async def internal_status(server: LiveServer, path: str, headers: dict[str, str]) -> int:
    async with server.http.get(server.base_url + path, headers=headers) as response:
        return response.status


async def forged_requests_are_refused(a: LiveServer, recording_id: str) -> None:
    """A's internal route answers only what a node signed, for that path, not expired."""
    path = f"/internal/recordings/{recording_id}/file"
    secret = await a.app[NODE_LINK].secret(a.app)
    expires = int(time.time()) + 30

    def signed(signature: str, at: int | str = expires) -> dict[str, str]:
        return {EXPIRES_HEADER: str(at), SIGNATURE_HEADER: signature}

    other_path = f"/internal/recordings/{recording_id}/thumbnail"
    past = expires - 120
    for headers in (
        {},
        signed("0" * 64),
        signed("é" * 64),
        signed("0" * 64, "9" * 5000),
        signed(sign(b"a secret some other cluster has, 32b", "GET", path, expires)),
        signed(sign(secret, "GET", other_path, expires)),  # signed for another path
        signed(sign(secret, "DELETE", path, expires)),  # for another method
        signed(sign(secret, "GET", path, past), past),  # expired
        signed(sign(secret, "GET", path, expires + 3600), expires + 3600),  # too far ahead
    ):
        assert await internal_status(a, path, headers) == 403, headers
    async with a.http.delete(a.base_url + f"/internal/recordings/{recording_id}") as response:
        assert response.status == 403
    # What a node signs is served: the refusals above are the credential's, not the route's.
    assert await internal_status(a, path, signed(sign(secret, "GET", path, expires))) == 200


async def test_a_recording_is_served_deleted_and_missed_across_nodes(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    async with redis_server() as url, AsyncExitStack() as stack:
        a_stack = await stack.enter_async_context(AsyncExitStack())
        a = await a_stack.enter_async_context(
            running_server(redis_url=url, cluster=cluster("rec-a"), data_dir=a_dir)
        )
        b = await stack.enter_async_context(
            running_server(redis_url=url, cluster=cluster("rec-b"), data_dir=b_dir)
        )
        lesson = await a.create_lesson()
        teacher = await a.token(lesson, "t-1", "Анна Петровна", "teacher")
        student = await a.token(lesson, "s-1", "Ученик 1", "student")
        # Placed on A with a lease, as GET /node places it (by load it may go to B: the
        # join would then be relayed there and B would record).
        assert await a.app[NODE].placement.claim(lesson, "rec-a", 60) == "rec-a"
        recording_id = await record_on(a, lesson, teacher)
        record = await b.app[RECORDINGS].library.get(recording_id)
        assert record is not None and record.node == "rec-a"
        content = (a_dir / "recordings" / record.file).read_bytes()
        assert len(content) > 2000
        assert not (b_dir / "recordings" / record.file).exists()

        await downloads_match(b, recording_id, student, content)
        # A file of many relayed chunks, by Range across their boundaries too.
        big = await add_recording(
            a.app[RECORDINGS].library, lesson, "demo", video=os.urandom(3 << 20)
        )
        await downloads_match(b, big.id, student, (a_dir / "recordings" / big.file).read_bytes())
        assert record.thumbnail is not None
        status, headers, body = await fetch(
            b, f"/recordings/{recording_id}/thumbnail", token=student
        )
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert body == (a_dir / "recordings" / record.thumbnail).read_bytes()

        await forged_requests_are_refused(a, recording_id)

        # Deleted at B: gone from A's disk and from the shared records.
        doomed = await add_recording(a.app[RECORDINGS].library, lesson, "demo")
        assert len(list((a_dir / "recordings").glob(f"{doomed.id}.*"))) == 3
        async with b.http.delete(
            f"{b.base_url}/api/v1/recordings/{doomed.id}",
            headers={"Authorization": f"Bearer {DEMO_SECRET}"},
        ) as response:
            assert response.status == 204
        assert list((a_dir / "recordings").glob(f"{doomed.id}.*")) == []
        assert await a.app[RECORDINGS].library.get(doomed.id) is None
        status, _, _ = await fetch(b, f"/recordings/{doomed.id}/file", token=student)
        assert status == 404

        # A stops: B cannot reach the file, says so, and deletes nothing.
        await a_stack.aclose()
        status, headers, body = await fetch(b, f"/recordings/{recording_id}/file", token=student)
        assert status == 503, status
        assert json.loads(body)["error"]["code"] == "recording_node_unavailable"
        assert int(headers["Retry-After"]) > 0
        status, headers, _ = await journal_get(b, f"/api/v1/recordings/{recording_id}/file", {})
        assert status == 503 and "Retry-After" in headers
        async with b.http.delete(
            f"{b.base_url}/api/v1/recordings/{recording_id}",
            headers={"Authorization": f"Bearer {DEMO_SECRET}"},
        ) as response:
            assert response.status == 503
        assert (a_dir / "recordings" / record.file).read_bytes() == content
        # Killed rather than stopped, and not yet noticed: its record is there, nobody answers.
        closed = f"http://127.0.0.1:{free_port()}"
        ghost = NodeRecord("rec-a", closed, closed, "127.0.0.1", "test")
        await b.app[NODE].placement.register(ghost, 30)
        status, headers, _ = await fetch(b, f"/recordings/{recording_id}/file", token=student)
        assert status == 503 and "Retry-After" in headers
        await b.app[NODE].placement.deregister("rec-a")

        # A comes back (under a new id, as a restarted node may): so does the recording.
        async with running_server(redis_url=url, cluster=cluster("rec-a2"), data_dir=a_dir):
            record = await b.app[RECORDINGS].library.get(recording_id)
            assert record is not None and record.node == "rec-a2"
            status, _, body = await fetch(b, f"/recordings/{recording_id}/file", token=student)
            assert status == 200 and body == content


async def test_a_shared_recordings_directory_is_served_by_any_node_alone(tmp_path: Path) -> None:
    shared = RecordingSettings(directory=tmp_path / "shared")
    async with redis_server() as url:
        async with running_server(redis_url=url, cluster=cluster("sh-a"), recording=shared) as a:
            lesson = await a.create_lesson()
            student = await a.token(lesson, "s-1", "Ученик 1", "student")
            record = await add_recording(a.app[RECORDINGS].library, lesson, "demo")
        content = (tmp_path / "shared" / record.file).read_bytes()
        # A is gone: B finds the file in the directory they share and serves it itself.
        async with running_server(redis_url=url, cluster=cluster("sh-b"), recording=shared) as b:
            url_path = f"/recordings/{record.id}/file"
            status, _, body = await fetch(b, url_path, token=student)
            assert status == 200 and body == content
            status, _, body = await fetch(b, url_path, token=student, headers={"Range": "bytes=7-"})
            assert status == 206 and body == content[7:]
            async with b.http.delete(
                f"{b.base_url}/api/v1/recordings/{record.id}",
                headers={"Authorization": f"Bearer {DEMO_SECRET}"},
            ) as response:
                assert response.status == 204
            assert list((tmp_path / "shared").glob(f"{record.id}.*")) == []


def test_the_cluster_secret_setting() -> None:
    secret = "s" * 32
    assert settings_from_mapping({"cluster": {"secret": secret}}).cluster.secret == secret
    assert load_settings(env={"UROK_CLUSTER_SECRET": secret}).cluster.secret == secret
    with pytest.raises(ConfigError, match=r"cluster\.secret"):
        settings_from_mapping({"cluster": {"secret": "too short"}})
