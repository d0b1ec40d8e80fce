"""Join tokens: signalling.tokens.TokenService mint and verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from rooms.lessons import Role
from signalling.tokens import REQUIRED_CLAIMS, TokenError, TokenService
from tests.api_support import KEY_A, KEY_B, SECRET_A, SECRET_B, make_settings

LESSON = "les_lesson_one"


@pytest.fixture
def service() -> TokenService:
    return TokenService(make_settings())


def mint(service: TokenService, **overrides: Any) -> str:
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "key_id": KEY_A,
        "lesson_id": LESSON,
        "user_id": "s-1",
        "name": "Иван Иванов",
        "role": Role.STUDENT,
        "now": now,
        "expires_at": now + timedelta(hours=1),
    }
    args.update(overrides)
    return service.mint(**args)


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "urok",
        "aud": "urok-call",
        "sub": "s-1",
        "name": "Иван Иванов",
        "role": "student",
        "lesson": LESSON,
        "iat": now,
        "nbf": now - 30,
        "exp": now + 3600,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return claims


def sign(claims: dict[str, Any], secret: str = SECRET_A, kid: str = KEY_A, **kw: Any) -> str:
    """What a journal does when it signs a join token itself."""
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid}, **kw)


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_with_all_claims(service: TokenService) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + timedelta(minutes=75)
    token = mint(service, now=now, expires_at=expires, role=Role.TEACHER, user_id="t-1")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == KEY_A
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(raw) == set(REQUIRED_CLAIMS)
    assert raw["iss"] == "urok"
    assert raw["aud"] == "urok-call"
    assert raw["sub"] == "t-1"
    assert raw["name"] == "Иван Иванов"
    assert raw["role"] == "teacher"
    assert raw["lesson"] == LESSON
    assert raw["iat"] == int(now.timestamp())
    assert raw["nbf"] <= raw["iat"]
    assert raw["exp"] == int(expires.timestamp())
    assert isinstance(raw["jti"], str) and len(raw["jti"]) >= 16

    claims = service.verify(token, LESSON)
    assert claims.user_id == "t-1"
    assert claims.name == "Иван Иванов"
    assert claims.role is Role.TEACHER
    assert claims.is_teacher
    assert claims.lesson_id == LESSON
    assert claims.jti == raw["jti"]
    assert claims.key_id == KEY_A
    assert claims.expires_at == expires
    # Without a lesson to check against, it verifies too.
    assert service.verify(token).lesson_id == LESSON


def test_every_token_has_its_own_jti(service: TokenService) -> None:
    assert service.verify(mint(service)).jti != service.verify(mint(service)).jti


def test_minted_with_other_integration_key(service: TokenService) -> None:
    token = mint(service, key_id=KEY_B)
    assert jwt.get_unverified_header(token)["kid"] == KEY_B
    assert service.verify(token).key_id == KEY_B
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET_A, algorithms=["HS256"], audience="urok-call")


def test_mint_unknown_key_refused(service: TokenService) -> None:
    with pytest.raises(TokenError):
        mint(service, key_id="nobody")


def test_journal_signed_token_accepted(service: TokenService) -> None:
    claims = service.verify(sign(valid_claims(role="parent", sub="p-1")), LESSON)
    assert claims.role is Role.PARENT
    assert claims.user_id == "p-1"


def test_wrong_lesson_refused(service: TokenService) -> None:
    token = mint(service)
    with pytest.raises(TokenError, match="another lesson"):
        service.verify(token, "les_other")


def test_expired(service: TokenService) -> None:
    now = datetime.now(UTC)
    token = mint(service, now=now - timedelta(hours=2), expires_at=now - timedelta(minutes=1))
    with pytest.raises(TokenError, match="expired"):
        service.verify(token, LESSON)


def test_nbf_in_the_future(service: TokenService) -> None:
    now = int(datetime.now(UTC).timestamp())
    token = sign(valid_claims(nbf=now + 600))
    with pytest.raises(TokenError, match="not valid yet"):
        service.verify(token, LESSON)


def test_wrong_key(service: TokenService) -> None:
    with pytest.raises(TokenError, match="invalid"):
        service.verify(sign(valid_claims(), secret=SECRET_B, kid=KEY_A), LESSON)
    with pytest.raises(TokenError, match="invalid"):
        service.verify(sign(valid_claims(), secret="x" * 40, kid=KEY_A), LESSON)


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: str = SECRET_A) -> str:
    """HS256 by hand, for headers PyJWT refuses to write."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_hand_signed_helper_is_right(service: TokenService) -> None:
    token = hand_signed({"alg": "HS256", "typ": "JWT", "kid": KEY_A}, valid_claims())
    assert service.verify(token, LESSON).user_id == "s-1"


@pytest.mark.parametrize("kid", ["nobody", "", None, 5, ["journal-a"]])
def test_unknown_kid(service: TokenService, kid: Any) -> None:
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    token = hand_signed(header, valid_claims())
    with pytest.raises(TokenError, match=r"unknown key|malformed"):
        service.verify(token, LESSON)


def test_alg_none_refused(service: TokenService) -> None:
    token = jwt.encode(valid_claims(), None, algorithm="none", headers={"kid": KEY_A})
    with pytest.raises(TokenError):
        service.verify(token, LESSON)
    # Hand-made, with and without a trailing signature.
    body = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': KEY_A})}.{b64(valid_claims())}"
    for token in (body + ".", body + ".c2ln"):
        with pytest.raises(TokenError):
            service.verify(token, LESSON)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_with_right_secret_refused(service: TokenService) -> None:
    token = jwt.encode(valid_claims(), SECRET_A, algorithm="HS512", headers={"kid": KEY_A})
    # The signature itself is right: only the algorithm pin refuses it.
    assert jwt.decode(token, SECRET_A, algorithms=["HS512"], audience="urok-call")
    with pytest.raises(TokenError):
        service.verify(token, LESSON)


def test_rs256_refused(service: TokenService) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_claims(), private_key, algorithm="RS256", headers={"kid": KEY_A})
    with pytest.raises(TokenError):
        service.verify(token, LESSON)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_claim(service: TokenService, claim: str) -> None:
    claims = valid_claims()
    del claims[claim]
    with pytest.raises(TokenError):
        service.verify(sign(claims), LESSON)


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "someone-else"},
        {"role": "admin"},
        {"role": ["teacher"]},
        {"name": ""},
        {"name": 5},
        {"lesson": ""},
        {"lesson": 5},
        {"exp": 10**20},
    ],
    ids=repr,
)
def test_bad_claim_values(service: TokenService, overrides: dict[str, Any]) -> None:
    with pytest.raises(TokenError):
        service.verify(sign(valid_claims(**overrides)), LESSON)


def test_tampered_payload(service: TokenService) -> None:
    token = mint(service)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "student"
    claims["role"] = "teacher"
    forged = f"{header}.{b64(claims)}.{signature}"
    with pytest.raises(TokenError, match="invalid"):
        service.verify(forged, LESSON)
    # The untouched token still verifies: only the tampering is refused.
    assert service.verify(token, LESSON).role is Role.STUDENT


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 5000, None, 42])
def test_malformed(service: TokenService, token: Any) -> None:
    with pytest.raises(TokenError):
        service.verify(token, LESSON)
