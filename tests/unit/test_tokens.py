from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings

import jwt
import pytest

from hub.config import AppSettings
from hub.domain.tokens import MAX_TTL, TokenClaims, issue_token, verify_token
from hub.errors import BadToken, Expired, InvalidRequest

KEY = AppSettings(id="demo", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").key  # 24 bytes
OTHER = b"0123456789abcdef0123456789abcdef"
KEYS = {"demo": KEY, "other": OTHER}
NOW = 1_800_000_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(payload: object, key: bytes = KEY, header: dict[str, str] | None = None) -> str:
    """A token built by hand, for payloads PyJWT's encoder would not produce."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def test_issue_and_verify() -> None:
    token = issue_token("demo", KEY, "bob", 3600, now=NOW)
    assert verify_token(token, KEYS, now=NOW) == TokenClaims(app="demo", user="bob", exp=NOW + 3600)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # PyJWT's own decode
def test_claims_and_algorithm() -> None:
    token = issue_token("demo", KEY, "bob", 60, now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"app": "demo", "sub": "bob", "iat": NOW, "exp": NOW + 60}


def test_short_keys_cause_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verify_token(issue_token("demo", KEY, "bob", 60, now=NOW), KEYS, now=NOW)


def test_unicode_user_round_trips() -> None:
    user = "ünïcødé:user with spaces 🎉"
    assert verify_token(issue_token("demo", KEY, user, 60, now=NOW), KEYS, now=NOW).user == user


def test_expiry_uses_the_given_now_without_leeway() -> None:
    token = issue_token("demo", KEY, "bob", 60, now=NOW)
    assert verify_token(token, KEYS, now=NOW + 59).user == "bob"
    with pytest.raises(Expired):
        verify_token(token, KEYS, now=NOW + 60)
    with pytest.raises(Expired):
        verify_token(token, KEYS, now=NOW + 10**6)


def test_key_is_chosen_by_the_app_claim() -> None:
    token = issue_token("other", OTHER, "bob", 60, now=NOW)
    assert verify_token(token, KEYS, now=NOW).app == "other"
    # Claiming app "other" but signed with demo's key is a forgery.
    forged = forge({"app": "other", "sub": "bob", "exp": NOW + 60}, key=KEY)
    with pytest.raises(BadToken):
        verify_token(forged, KEYS, now=NOW)


def test_token_minted_by_the_app_without_iat_is_accepted() -> None:
    token = jwt.encode({"app": "demo", "sub": "alice", "exp": NOW + 10}, OTHER, algorithm="HS256")
    assert verify_token(token, {"demo": OTHER}, now=NOW) == TokenClaims("demo", "alice", NOW + 10)


def test_fractional_exp() -> None:
    token = forge({"app": "demo", "sub": "bob", "exp": NOW + 0.5})
    assert verify_token(token, KEYS, now=NOW).exp == NOW
    with pytest.raises(Expired):
        verify_token(token, KEYS, now=NOW + 1)


def test_expired_and_forged_is_bad_not_expired() -> None:
    token = forge({"app": "demo", "sub": "bob", "exp": NOW - 10}, key=OTHER)
    with pytest.raises(BadToken):
        verify_token(token, KEYS, now=NOW)


@pytest.mark.parametrize(
    "payload",
    [
        {"sub": "bob", "exp": NOW + 60},
        {"app": "nope", "sub": "bob", "exp": NOW + 60},
        {"app": 1, "sub": "bob", "exp": NOW + 60},
        {"app": "demo", "exp": NOW + 60},
        {"app": "demo", "sub": "", "exp": NOW + 60},
        {"app": "demo", "sub": 7, "exp": NOW + 60},
        {"app": "demo", "sub": "a\x00b", "exp": NOW + 60},
        {"app": "demo", "sub": "x" * 257, "exp": NOW + 60},
        {"app": "demo", "sub": "bob"},
        {"app": "demo", "sub": "bob", "exp": "soon"},
        {"app": "demo", "sub": "bob", "exp": True},
        {"app": "demo", "sub": "bob", "exp": NOW + 60, "nbf": NOW + 30},
        {"app": "demo", "sub": "bob", "exp": NOW + 60, "aud": "elsewhere"},
        ["app", "demo"],
        "just a string",
    ],
)
def test_bad_claims(payload: object) -> None:
    with pytest.raises(BadToken):
        verify_token(forge(payload), KEYS, now=NOW)


def test_nbf_in_the_past_is_fine() -> None:
    token = forge({"app": "demo", "sub": "bob", "exp": NOW + 60, "nbf": NOW - 1})
    assert verify_token(token, KEYS, now=NOW).user == "bob"


@pytest.mark.parametrize(
    "header",
    [{"alg": "none", "typ": "JWT"}, {"alg": "HS512", "typ": "JWT"}, {"alg": "RS256"}, {"typ": "JWT"}],
)
def test_other_algorithms_are_refused(header: dict[str, str]) -> None:
    token = forge({"app": "demo", "sub": "bob", "exp": NOW + 60}, header=header)
    with pytest.raises(BadToken):
        verify_token(token, KEYS, now=NOW)
    unsigned = token.rsplit(".", 1)[0] + "."
    with pytest.raises(BadToken):
        verify_token(unsigned, KEYS, now=NOW)


def test_tampered_payload() -> None:
    head, _, sig = issue_token("demo", KEY, "bob", 60, now=NOW).split(".")
    body = b64url(json.dumps({"app": "demo", "sub": "alice", "iat": NOW, "exp": NOW + 60}).encode())
    with pytest.raises(BadToken):
        verify_token(f"{head}.{body}.{sig}", KEYS, now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "....", "é.é.é", "\x00", "eyJ.eyJ.sig", "x" * 9000, None, 42, b"a.b.c"],
)
def test_malformed_tokens(token: object) -> None:
    with pytest.raises(BadToken):
        verify_token(token, KEYS, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL + 1, True, 1.5, "3600", None])
def test_ttl_bounds(ttl: object) -> None:
    with pytest.raises(InvalidRequest) as e:
        issue_token("demo", KEY, "bob", ttl, now=NOW)  # type: ignore[arg-type]
    assert e.value.field == "ttl"


@pytest.mark.parametrize("ttl", [1, 3600, 30 * 24 * 3600])
def test_ttl_accepted(ttl: int) -> None:
    assert verify_token(issue_token("demo", KEY, "bob", ttl, now=NOW), KEYS, now=NOW).exp == NOW + ttl


@pytest.mark.parametrize("user", ["", "a\nb", "x" * 257, 5])
def test_issue_refuses_bad_user(user: object) -> None:
    with pytest.raises(InvalidRequest) as e:
        issue_token("demo", KEY, user, 60, now=NOW)  # type: ignore[arg-type]
    assert e.value.field == "user"
