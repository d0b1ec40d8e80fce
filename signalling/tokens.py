"""Join tokens: HS256 JWTs tied to one lesson and one person.

Signed with the secret of the journal integration that owns the lesson, with
the integration's key id in the `kid` header, so a journal can mint tokens
itself with the shared key or ask our API to mint them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from rooms.lessons import Role
from rooms.names import BadName, clean_name
from signalling.config import Settings
from signalling.signed import ALGORITHM, Failure, SignedError, decode_signed

REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "name", "role", "lesson")


_TOKEN_FAILURES = {
    Failure.UNKNOWN_KEY: "token signed with an unknown key",
    Failure.EXPIRED: "token expired",
    Failure.IMMATURE: "token not valid yet",
}


class TokenError(Exception):
    """The token is not valid for this call; the message says why."""


@dataclass(frozen=True)
class JoinClaims:
    user_id: str
    name: str
    role: Role
    lesson_id: str
    jti: str
    key_id: str
    expires_at: datetime

    @property
    def is_teacher(self) -> bool:
        return self.role is Role.TEACHER


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def mint(
        self,
        *,
        key_id: str,
        lesson_id: str,
        user_id: str,
        name: str,
        role: Role,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        integration = self.settings.integration(key_id)
        if integration is None:
            raise TokenError(f"unknown integration key {key_id}")
        claims = {
            "iss": self.settings.token_issuer,
            "aud": self.settings.token_audience,
            "sub": user_id,
            "name": name,
            "role": role.value,
            "lesson": lesson_id,
            "iat": int(now.timestamp()),
            # A little slack for clock skew between the journal and us.
            "nbf": int((now - timedelta(seconds=30)).timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, integration.secret, algorithm=ALGORITHM, headers={"kid": key_id})

    def verify(self, token: str, lesson_id: str | None = None) -> JoinClaims:
        """Verify signature, audience, issuer, times and claims; optionally the lesson."""
        return self._verify(token, lesson_id, check_exp=True)

    def verify_for_history(
        self, token: str, lesson_id: str, now: datetime, max_age: timedelta
    ) -> JoinClaims:
        """Like verify, for reading a call's chat history: an expired token still
        passes until `max_age` after its expiry. Every other check stays."""
        claims = self._verify(token, lesson_id, check_exp=False)
        if now > claims.expires_at + max_age:
            raise TokenError("token expired")
        return claims

    def _verify(self, token: str, lesson_id: str | None, *, check_exp: bool) -> JoinClaims:
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise TokenError("token missing or malformed")
        try:
            integration, claims = decode_signed(
                self.settings,
                token,
                require=list(REQUIRED_CLAIMS),
                leeway=5,
                audience=self.settings.token_audience,
                issuer=self.settings.token_issuer,
                verify_exp=check_exp,
            )
        except SignedError as exc:
            if exc.failure is Failure.MALFORMED:
                raise TokenError(f"token malformed: {exc.detail}") from exc
            message = _TOKEN_FAILURES.get(exc.failure, f"token invalid: {exc.detail}")
            raise TokenError(message) from exc
        key_id = integration.key_id
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise TokenError(f"unknown role {claims['role']!r}") from exc
        for name in ("sub", "name", "lesson", "jti"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise TokenError(f"claim {name} must be a non-empty string")
        if lesson_id is not None and claims["lesson"] != lesson_id:
            raise TokenError("token is for another lesson")
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            # Checked by PyJWT only when it verifies exp itself.
            raise TokenError("claim exp must be a number")
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TokenError("claim exp out of range") from exc
        try:
            # Journals sign tokens themselves: their names get the API's cleaning.
            name = clean_name(claims["name"][:400], max_length=400)[:100]
        except BadName as exc:
            raise TokenError(f"claim name: {exc.message}") from exc
        return JoinClaims(
            user_id=claims["sub"],
            name=name,
            role=role,
            lesson_id=claims["lesson"],
            jti=claims["jti"],
            key_id=key_id,
            expires_at=expires_at,
        )
