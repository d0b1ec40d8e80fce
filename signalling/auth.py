"""Authentication of journal integrations calling the server-to-server API.

A request carries one of two credentials in `Authorization: Bearer …`:

- the integration's shared secret itself, or
- a short-lived HS256 JWT signed with that secret, with the integration's key id
  in the `kid` header and `iat` + `exp` claims no more than five minutes apart.

Join tokens (which carry `aud` = the call audience) are never accepted here.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from signalling.config import Integration, Settings
from signalling.signed import Failure, SignedError, decode_signed

# Longest lifetime (exp - iat) an API authentication JWT may have.
MAX_JWT_LIFETIME_SECONDS = 300
# Clock skew tolerated between the journal's clock and ours.
LEEWAY_SECONDS = 30
# The only audience an authentication JWT may name (it may also name none).
API_AUDIENCE = "urok-api"
MAX_CREDENTIAL_LENGTH = 4096


class AuthError(Exception):
    """The request does not authenticate an integration; the message says why."""


def _match_secret(settings: Settings, credential: str) -> Integration | None:
    """Constant-time comparison against every configured secret (no early exit)."""
    found: Integration | None = None
    given = credential.encode()
    for integration in settings.integrations:
        if hmac.compare_digest(given, integration.secret.encode()):
            found = integration
    return found


_AUTH_FAILURES = {
    Failure.MALFORMED: "The bearer credential is neither a known secret nor a valid JWT.",
    Failure.UNKNOWN_KEY: "The JWT's kid header does not name a configured integration.",
    Failure.EXPIRED: "The JWT has expired.",
    Failure.IMMATURE: "The JWT is not valid yet (iat or nbf is in the future).",
}


def _verify_jwt(settings: Settings, token: str, now: datetime) -> Integration:
    try:
        integration, claims = decode_signed(
            settings, token, require=["iat", "exp"], leeway=LEEWAY_SECONDS
        )
    except SignedError as exc:
        if exc.failure is Failure.MISSING_CLAIM:
            raise AuthError(f"The JWT lacks the {exc.detail} claim.") from exc
        message = _AUTH_FAILURES.get(exc.failure, f"The JWT is invalid: {exc.detail}.")
        raise AuthError(message) from exc
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise AuthError("The JWT's iat and exp claims must be numbers.")
    if exp - iat > MAX_JWT_LIFETIME_SECONDS:
        raise AuthError(
            f"The JWT lives too long: exp may be at most {MAX_JWT_LIFETIME_SECONDS} seconds "
            "after iat."
        )
    if iat > now.timestamp() + LEEWAY_SECONDS:
        raise AuthError("The JWT's iat is in the future.")
    # A join token (audience: the call) must never authenticate API calls.
    aud = claims.get("aud")
    if aud is not None and aud != API_AUDIENCE and aud != [API_AUDIENCE]:
        raise AuthError(f"The JWT's aud claim must be absent or {API_AUDIENCE!r}.")
    return integration


def authenticate(
    settings: Settings, authorization: str | None, now: datetime | None = None
) -> Integration:
    """Return the integration the Authorization header value authenticates, or raise AuthError."""
    if not authorization:
        raise AuthError("The Authorization header is missing; send 'Authorization: Bearer …'.")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthError("The Authorization header must be 'Bearer <secret or JWT>'.")
    if len(credential) > MAX_CREDENTIAL_LENGTH:
        raise AuthError("The bearer credential is too long.")
    integration = _match_secret(settings, credential)
    if integration is not None:
        return integration
    if credential.count(".") == 2:
        return _verify_jwt(settings, credential, now or datetime.now(UTC))
    raise AuthError("The bearer credential does not match any integration's secret.")
