"""Recordings across nodes: a file stays where it was written, and any node serves it.

A recording's file is in the recordings directory of the node that wrote it
(`RecordingRecord.node`; the records themselves are in the shared store). A node
asked for a file serves it itself when the file is in its own directory (its own
recording, or a directory every node shares); otherwise it streams it from the
holding node's internal URL:

    GET {internal_url}/internal/recordings/{id}/file   (or /thumbnail)

with the client's Range forwarded and the owner's status and headers (206,
Content-Range, Content-Length, Content-Type) returned, the body passed on chunk by
chunk, never held whole. `DELETE {internal_url}/internal/recordings/{id}` deletes
the recording there (file, still, sidecar and record).

Node-to-node requests are signed: an HMAC-SHA256 of method, path and an expiry
time (a minute ahead) under the cluster secret (`cluster.secret`, or else a random
one the nodes share through Redis). The internal routes answer 403 to anything
else. When the holding node is dead the answer is 503 with Retry-After: the file
comes back when that node does (its sidecars list it again at its start).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import aiohttp
from aiohttp import web

from rooms.model import RecordingRecord
from signalling.errors import NO_STORE, HttpError
from signalling.keys import NODE, RECORDINGS, SETTINGS

logger = logging.getLogger(__name__)

Kind = Literal["file", "thumbnail"]
INTERNAL_PREFIX = "/internal/recordings"
EXPIRES_HEADER = "X-Urok-Node-Expires"
SIGNATURE_HEADER = "X-Urok-Node-Signature"
CREDENTIAL_SECONDS = 60
RETRY_AFTER_SECONDS = 30
CHUNK_BYTES = 64 * 1024
RELAYED_AT_ONCE = 400
_FORWARDED = ("Range", "If-Range", "If-Modified-Since", "If-None-Match")
_RETURNED = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Last-Modified",
    "ETag",
    "Content-Disposition",
    "Cache-Control",
    "X-Content-Type-Options",
)
# What the owner may answer that the client should see as it is (anything else: 503).
_PASSED_STATUSES = frozenset({200, 206, 304, 404, 410, 412, 416})
_EXPIRES = re.compile(r"^[0-9]{1,12}$")
_CONTENT_TYPES: dict[Kind, str] = {"file": "video/mp4", "thumbnail": "image/jpeg"}


def file_response(path: Path, content_type: str, filename: str | None) -> web.FileResponse:
    """A recording's file or still from this node's directory (Range, conditional GET)."""
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if filename is not None:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return web.FileResponse(path, headers=headers)


def sign(secret: bytes, method: str, path: str, expires: int) -> str:
    message = f"{method.upper()}\n{path}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def unavailable(record: RecordingRecord) -> HttpError:
    return HttpError(
        503,
        "recording_node_unavailable",
        f"The server holding this recording ({record.node}) cannot be reached; "
        "the recording is back when that server is.",
        {**NO_STORE, "Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class NodeLink:
    """This node's side of node-to-node requests: the signing secret and an HTTP client."""

    def __init__(self, configured_secret: str) -> None:
        self._secret = configured_secret.encode() or None
        self._session: aiohttp.ClientSession | None = None

    async def secret(self, app: web.Application) -> bytes:
        if self._secret is None:
            self._secret = await app[NODE].placement.shared_secret()
        return self._secret

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout: a long download is fine as long as bytes keep coming.
            timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=30)
            # Downloads relayed at once (a class watching), under the owner's cap on
            # connections from one address (limits.max_connections_per_ip, 500).
            connector = aiohttp.TCPConnector(limit=RELAYED_AT_ONCE)
            self._session = aiohttp.ClientSession(
                timeout=timeout, connector=connector, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def credential(self, app: web.Application, method: str, path: str) -> dict[str, str]:
        expires = int(time.time()) + CREDENTIAL_SECONDS
        signature = sign(await self.secret(app), method, path, expires)
        return {EXPIRES_HEADER: str(expires), SIGNATURE_HEADER: signature}

    async def check(self, request: web.Request) -> None:
        """A request another node signed, not yet expired; else 403."""
        expires = request.headers.get(EXPIRES_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "").encode("utf-8", "replace")
        now = time.time()
        if (
            not _EXPIRES.match(expires)
            # A credential lasts a minute: one dated further ahead was not made by a node.
            or not now <= int(expires) <= now + 2 * CREDENTIAL_SECONDS
            or not hmac.compare_digest(
                signature,
                sign(
                    await self.secret(request.app), request.method, request.path, int(expires)
                ).encode(),
            )
        ):
            raise HttpError(
                403, "not_permitted", "Node-to-node requests only.", NO_STORE
            ).http_exception()


NODE_LINK = web.AppKey("node_link", NodeLink)


def connect_library(app: web.Application) -> None:
    """The library stamps this node's id on what it saves, and knows which nodes live."""
    library, agent = app[RECORDINGS].library, app[NODE]
    library.node_id = agent.id

    async def alive(node_id: str) -> bool:
        return await agent.placement.node(node_id) is not None

    library.node_alive = alive


def held_elsewhere(app: web.Application, record: RecordingRecord) -> bool:
    """The recording was written by another node than this one."""
    return bool(record.node) and record.node != app[NODE].id


async def serve(
    request: web.Request, record: RecordingRecord, kind: Kind
) -> web.StreamResponse | None:
    """The recording's file (or still) from this node's directory if it is there, else
    streamed from the node that wrote it; None when neither has it."""
    name = record.file if kind == "file" else record.thumbnail
    if not name:
        return None
    path = request.app[RECORDINGS].library.path(name)
    if path.is_file():
        return file_response(path, _CONTENT_TYPES[kind], name if kind == "file" else None)
    if not held_elsewhere(request.app, record):
        return None
    return await _relay(request, record, kind)


async def _owner_url(app: web.Application, record: RecordingRecord) -> str:
    owner = await app[NODE].placement.node(record.node)
    if owner is None:
        raise unavailable(record)
    return owner.internal_url.rstrip("/")


async def _relay(request: web.Request, record: RecordingRecord, kind: Kind) -> web.StreamResponse:
    app = request.app
    link = app[NODE_LINK]
    path = f"{INTERNAL_PREFIX}/{record.id}/{kind}"
    url = await _owner_url(app, record) + path
    headers = await link.credential(app, request.method, path)
    headers.update({h: request.headers[h] for h in _FORWARDED if h in request.headers})
    response: web.StreamResponse | None = None
    try:
        async with link.session().request(request.method, url, headers=headers) as upstream:
            if upstream.status not in _PASSED_STATUSES:
                logger.warning("node %s answered %s for %s", record.node, upstream.status, path)
                raise unavailable(record)
            response = web.StreamResponse(
                status=upstream.status,
                headers={h: upstream.headers[h] for h in _RETURNED if h in upstream.headers},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.warning("fetching %s from node %s failed: %s", path, record.node, exc)
        if response is not None:
            # The answer has begun: the connection is closed on a short body (the client
            # may go on by Range).
            raise
        raise unavailable(record) from None


async def delete_at_owner(app: web.Application, record: RecordingRecord) -> None:
    """Have the node that wrote the recording delete it (files, sidecar and record)."""
    path = f"{INTERNAL_PREFIX}/{record.id}"
    url = await _owner_url(app, record) + path
    link = app[NODE_LINK]
    headers = await link.credential(app, "DELETE", path)
    try:
        async with link.session().delete(url, headers=headers) as answer:
            if answer.status == 204:
                return
            logger.warning("node %s answered %s to deleting %s", record.node, answer.status, path)
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.warning("deleting %s at node %s failed: %s", record.id, record.node, exc)
    raise unavailable(record)


# ---------------------------------------------------------------- the owner's side


async def _internal_record(request: web.Request) -> RecordingRecord:
    await request.app[NODE_LINK].check(request)
    record = await request.app[RECORDINGS].library.get(request.match_info["recording_id"])
    if record is None:
        error = HttpError(404, "recording_not_found", "There is no such recording.", NO_STORE)
        raise error.http_exception()
    return record


async def internal_file(request: web.Request) -> web.StreamResponse:
    record = await _internal_record(request)
    kind: Kind = "file" if request.match_info["kind"] == "file" else "thumbnail"
    name = record.file if kind == "file" else record.thumbnail
    path = request.app[RECORDINGS].library.path(name) if name else None
    if path is None or not path.is_file():
        # What the public routes answer when they have no file.
        if kind == "thumbnail":
            error = HttpError(404, "no_thumbnail", "This recording has no thumbnail.", NO_STORE)
        else:
            error = HttpError(410, "recording_gone", "The file is not on this node.", NO_STORE)
        raise error.http_exception()
    return file_response(path, _CONTENT_TYPES[kind], name if kind == "file" else None)


async def internal_delete(request: web.Request) -> web.Response:
    record = await _internal_record(request)
    await request.app[RECORDINGS].library.delete(record)
    return web.Response(status=204, headers=NO_STORE)


async def _close_link(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[NODE_LINK].close()


def setup(app: web.Application, recording_id_pattern: str) -> None:
    """Needs app[SETTINGS], app[RECORDINGS] and (by the first request) app[NODE]."""
    app[NODE_LINK] = NodeLink(app[SETTINGS].cluster.secret)
    app.cleanup_ctx.append(_close_link)
    base = f"{INTERNAL_PREFIX}/{{recording_id:{recording_id_pattern}}}"
    app.router.add_get(
        base + "/{kind:file|thumbnail}", internal_file, name="internal_recording_file"
    )
    app.router.add_delete(base, internal_delete, name="internal_recording_delete")
