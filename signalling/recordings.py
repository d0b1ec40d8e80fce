"""Recordings over HTTP: watching and downloading them, and listing them.

Participants (the call page, a browser's <video> or a plain link) use their join token,
as `Authorization: Bearer <token>` or `?token=<token>` (a link cannot carry a header).
A recording is open to the participants of its own call whose role may watch it (people
with a school profile: never guests), while their token is valid or expired for less
than `chat_history_days`, and not revoked. The journal uses its integration secret on
the /api/v1/ routes.

Files are served with HTTP Range support (206 Partial Content), so a player can seek,
by any node: one that has not the file streams it from the node that wrote it
(signalling/recording_nodes.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rooms.admission import Door, Refused
from rooms.lessons import LessonNotFound, Role
from rooms.model import RecordingRecord, RecordingStatus
from signalling import recording_nodes
from signalling.access import admitted_lesson, bearer_token, history_claims
from signalling.api import ApiError, _integration
from signalling.errors import NO_STORE, HttpError
from signalling.keys import LESSONS, RECORDINGS, SETTINGS
from signalling.recording_nodes import Kind
from signalling.tokens import JoinClaims, TokenError

_RECORDING_ID = r"rec_[0-9a-f]{16}"
_LESSON_ID = r"[A-Za-z0-9_-]{1,64}"


def recording_json(record: RecordingRecord, base_url: str = "") -> dict[str, Any]:
    """A recording as participants, the journal and webhooks see it."""
    url, thumbnail_url = record.links(base_url)
    return {
        "id": record.id,
        "lesson_id": record.call_id,
        "title": record.title,
        "author": {"user_id": record.author_user_id, "name": record.author_name},
        "status": record.status,
        "started_at": record.started_at.isoformat(),
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "duration_s": record.duration_s,
        "size_bytes": record.size_bytes,
        "visibility": [role.value for role in record.visibility],
        "complete": record.complete,
        "url": url,
        "thumbnail_url": thumbnail_url,
    }


def recording_ready_payload(record: RecordingRecord, public_url: str) -> dict[str, Any]:
    """data of the recording.ready webhook: the recording, with the journal's download URL."""
    data = recording_json(record, public_url)
    data["download_url"] = f"{public_url}/api/v1/recordings/{record.id}/file"
    return {"lesson_id": record.call_id, "recording": data}


def _error(status: int, code: str, message: str) -> web.HTTPException:
    return HttpError(status, code, message, NO_STORE).http_exception()


def _participant_token(request: web.Request) -> str | None:
    """The join token: `Authorization: Bearer`, or `?token=` (a link has no headers)."""
    return bearer_token(request) or request.query.get("token") or None


async def _participant(request: web.Request, lesson_id: str) -> JoinClaims:
    """The bearer of a valid token of this call's participants, or an HTTP error."""
    token = _participant_token(request)
    if token is None:
        raise _error(401, "token_invalid", "A join token is required.")
    try:
        claims = history_claims(request, token, lesson_id)
    except TokenError as exc:
        raise _error(401, "token_invalid", str(exc)) from None
    if claims.role is Role.GUEST:
        raise _error(403, "not_permitted", "Recordings are for participants with a school profile.")
    try:
        await admitted_lesson(request.app, claims, Door.HISTORY, forgotten_ok=True)
    except Refused as exc:
        raise _error(exc.status, exc.code, exc.message) from None
    return claims


async def _visible_recording(request: web.Request) -> RecordingRecord:
    """The recording named in the path, if the request's token may watch it."""
    recording_id = request.match_info["recording_id"]
    record = await request.app[RECORDINGS].library.get(recording_id)
    if record is None:
        # Checked before the token: ids are random, so this tells nothing about a call.
        raise _error(404, "recording_not_found", "There is no such recording.")
    claims = await _participant(request, record.call_id)
    if claims.key_id != record.integration or not record.visible_to(claims.role):
        raise _error(403, "not_permitted", "You may not watch this recording.")
    if record.status != RecordingStatus.READY:
        raise _error(409, "recording_not_ready", "This recording is not ready.")
    return record


async def _served(request: web.Request, record: RecordingRecord, kind: Kind) -> web.StreamResponse:
    """The file here or from its node (signalling/recording_nodes.py); 410/404 if none."""
    try:
        response = await recording_nodes.serve(request, record, kind)
    except HttpError as exc:
        raise exc.http_exception() from None
    if response is not None:
        return response
    if kind == "file":
        raise _error(410, "recording_gone", "The file of this recording is no longer there.")
    raise _error(404, "no_thumbnail", "This recording has no thumbnail.")


async def recording_file(request: web.Request) -> web.StreamResponse:
    return await _served(request, await _visible_recording(request), "file")


async def recording_thumbnail(request: web.Request) -> web.StreamResponse:
    record = await _visible_recording(request)
    if not record.thumbnail:
        raise _error(404, "no_thumbnail", "This recording has no thumbnail.")
    return await _served(request, record, "thumbnail")


async def call_recordings(request: web.Request) -> web.Response:
    """The call's recordings this participant may watch (the call page's list)."""
    lesson_id = request.match_info["lesson_id"]
    claims = await _participant(request, lesson_id)
    records = await request.app[RECORDINGS].library.store.recordings(lesson_id)
    visible = [
        recording_json(r)
        for r in records
        if r.integration == claims.key_id and r.visible_to(claims.role)
    ]
    return web.json_response({"recordings": visible}, headers=NO_STORE)


# ---------------------------------------------------------------- the journal's API


async def api_lesson_recordings(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson_id = request.match_info["lesson_id"]
    records = await request.app[RECORDINGS].library.store.recordings(lesson_id)
    mine = [r for r in records if r.integration == integration.key_id]
    if not mine:
        # No recordings, or none of this journal's: a lesson of another journal stays unseen.
        try:
            await request.app[LESSONS].get(lesson_id, integration.key_id)
        except LessonNotFound as exc:
            raise ApiError(
                404, "lesson_not_found", f"There is no lesson {lesson_id[:100]!r}."
            ) from exc
    public_url = request.app[SETTINGS].public_url
    body = {"recordings": [recording_ready_payload(r, public_url)["recording"] for r in mine]}
    return web.json_response(body, headers=NO_STORE)


async def api_recording_file(request: web.Request) -> web.StreamResponse:
    integration = _integration(request)
    recording_id = request.match_info["recording_id"]
    record = await request.app[RECORDINGS].library.get(recording_id)
    if record is None or record.integration != integration.key_id:
        raise ApiError(404, "recording_not_found", "There is no such recording.")
    if record.status != RecordingStatus.READY:
        raise ApiError(409, "recording_not_ready", "This recording is not ready.")
    response = await recording_nodes.serve(request, record, "file")
    if response is None:
        raise ApiError(410, "recording_gone", "The file of this recording is no longer there.")
    return response


async def api_delete_recording(request: web.Request) -> web.Response:
    """Delete a finished recording (file, still and record) for good."""
    integration = _integration(request)
    recording_id = request.match_info["recording_id"]
    library = request.app[RECORDINGS].library
    record = await library.get(recording_id)
    if record is None or record.integration != integration.key_id:
        raise ApiError(404, "recording_not_found", "There is no such recording.")
    if record.status not in (RecordingStatus.READY, RecordingStatus.FAILED):
        raise ApiError(
            409, "recording_not_ready", "This recording is still running or being finished."
        )
    if recording_nodes.held_elsewhere(request.app, record) and not library.holds(record):
        await recording_nodes.delete_at_owner(request.app, record)
    else:
        await library.delete(record)
    return web.Response(status=204, headers=NO_STORE)


def setup(app: web.Application) -> None:
    """Needs app[RECORDINGS] (and what the API and the call page need)."""
    router = app.router
    recording = f"/recordings/{{recording_id:{_RECORDING_ID}}}"
    router.add_get(recording + "/file", recording_file, name="recording_file")
    router.add_get(recording + "/thumbnail", recording_thumbnail, name="recording_thumbnail")
    router.add_get(
        f"/call/{{lesson_id:{_LESSON_ID}}}/recordings", call_recordings, name="call_recordings"
    )
    router.add_get(
        "/api/v1/lessons/{lesson_id}/recordings",
        api_lesson_recordings,
        name="api_lesson_recordings",
        allow_head=False,
    )
    router.add_delete(
        "/api/v1/recordings/{recording_id}", api_delete_recording, name="api_delete_recording"
    )
    router.add_get(
        "/api/v1/recordings/{recording_id}/file",
        api_recording_file,
        name="api_recording_file",
        allow_head=False,
    )
    recording_nodes.setup(app, _RECORDING_ID)
