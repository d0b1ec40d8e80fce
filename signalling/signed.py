"""The one JWT verifier: HS256 with an integration's secret, named by the `kid` header.

Journals sign two kinds of JWT with their shared secret: API credentials
(signalling.auth) and join tokens (signalling.tokens). Both are read here;
each caller says which claims it requires and turns a failure into its own
words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import jwt

from signalling.config import Integration, Settings

ALGORITHM = "HS256"


class Failure(StrEnum):
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    IMMATURE = "immature"
    MISSING_CLAIM = "missing_claim"
    INVALID = "invalid"


class SignedError(Exception):
    """Why a JWT was refused; `detail` is PyJWT's text (or the missing claim)."""

    def __init__(self, failure: Failure, detail: str = "") -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure
        self.detail = detail


def decode_signed(
    settings: Settings,
    token: str,
    *,
    require: list[str],
    leeway: float,
    audience: str | None = None,
    issuer: str | None = None,
    verify_exp: bool = True,
) -> tuple[Integration, dict[str, Any]]:
    """The integration whose secret signed `token`, and its verified claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise SignedError(Failure.MALFORMED, str(exc)) from exc
    key_id = header.get("kid")
    integration = settings.integration(key_id) if isinstance(key_id, str) else None
    if integration is None:
        raise SignedError(Failure.UNKNOWN_KEY)
    options: jwt.types.Options = {"require": require, "verify_exp": verify_exp}
    if audience is None:
        options["verify_aud"] = False
    try:
        claims = jwt.decode(
            token,
            integration.secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options=options,
            leeway=leeway,
        )
    except jwt.ExpiredSignatureError as exc:
        raise SignedError(Failure.EXPIRED) from exc
    except jwt.ImmatureSignatureError as exc:
        raise SignedError(Failure.IMMATURE) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise SignedError(Failure.MISSING_CLAIM, exc.claim) from exc
    except jwt.PyJWTError as exc:
        raise SignedError(Failure.INVALID, str(exc)) from exc
    return integration, claims
