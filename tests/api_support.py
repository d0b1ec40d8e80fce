"""Shared helpers for the journal API tests: a bare app with only the API on it."""

from __future__ import annotations

import copy
import time
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt
from aiohttp import web

from rooms.lessons import LessonRegistry
from signalling import adhoc, api
from signalling.config import Integration, Settings
from signalling.keys import LESSONS, SETTINGS, TOKENS
from signalling.tokens import TokenService

KEY_A = "journal-a"
SECRET_A = "secret-of-journal-a-0123456789abcdef"
KEY_B = "journal-b"
SECRET_B = "secret-of-journal-b-9876543210fedcba"
PUBLIC_URL = "https://urok.example.org"
MSK = timezone(timedelta(hours=3))


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "integrations": (
            Integration(key_id=KEY_A, secret=SECRET_A, name="Journal A"),
            Integration(key_id=KEY_B, secret=SECRET_B, name="Journal B"),
        ),
    }
    values.update(overrides)
    return Settings(**values)


def make_app(settings: Settings | None = None) -> web.Application:
    """A bare application with only the three keys the API needs, then api.setup."""
    settings = settings or make_settings()
    app = web.Application(client_max_size=256 * 1024)
    app[SETTINGS] = settings
    app[LESSONS] = LessonRegistry()
    app[TOKENS] = TokenService(settings)
    api.setup(app)
    adhoc.setup_api(app)
    return app


def auth(secret: str = SECRET_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def auth_jwt(
    key_id: str = KEY_A,
    secret: str = SECRET_A,
    *,
    iat: float | None = None,
    lifetime: int = 60,
    algorithm: str = "HS256",
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    issued = int(time.time() if iat is None else iat)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + lifetime, **(extra or {})}
    with warnings.catch_warnings():
        # HS512 tokens (made to be refused) warn about the key length.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token = jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": key_id})
    return {"Authorization": f"Bearer {token}"}


def lesson_body(group_id: str = "5a", **overrides: Any) -> dict[str, Any]:
    """A valid create request for a lesson starting in an hour, lasting 45 minutes."""
    start = (datetime.now(UTC) + timedelta(hours=1)).astimezone(MSK).replace(microsecond=0)
    body: dict[str, Any] = {
        "group": {"id": group_id, "title": "5А"},
        "subject": "Математика",
        "teacher": {"id": "t-1", "name": "Анна Петровна Смирнова"},
        "roster": [
            {"id": "s-1", "name": "Иван Иванов", "role": "student"},
            {"id": "s-2", "name": "Пётр Петров", "role": "student"},
            {"id": "p-1", "name": "Мария Иванова", "role": "parent"},
        ],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(minutes=45)).isoformat(),
    }
    body.update(copy.deepcopy(overrides))
    return body
