"""User tokens: HS256 JWTs keyed with the app's signing key (docs/api.md, Authentication).

Claims: ``app`` (the app id, used to pick the key), ``sub`` (the user), ``exp`` and
``iat``. Apps may mint tokens themselves with their secret, so only ``app``, ``sub``
and ``exp`` are required when verifying.

Time is always passed in (``now``), never read here, so expiry is testable and every
server judges a token by the same rule: expired once ``now >= exp``, no leeway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from hub.domain.activity import validate_user_id
from hub.errors import BadToken, Expired, HubError, InvalidRequest

ALGORITHM = "HS256"
MIN_TTL = 1
MAX_TTL = 30 * 24 * 3600
MAX_TOKEN_LENGTH = 8192


class _HS256(HMACAlgorithm):
    """HS256 without PyJWT's short-key warning.

    docs/api.md fixes the key as the bytes behind ``whsec_`` (config accepts 16 and
    more), so a key shorter than 32 bytes is expected here, not a mistake to warn about
    on every request.
    """

    def check_key_length(self, key: bytes) -> str | None:
        return None


def _make_jws() -> jwt.PyJWS:
    jws = jwt.PyJWS(algorithms=[])  # only what we register: no "none", no asymmetric
    jws.register_algorithm(ALGORITHM, _HS256(HMACAlgorithm.SHA256))
    return jws


# Stateless after construction: a constant codec, not shared mutable state.
_JWS = _make_jws()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    app: str
    user: str
    exp: int


def issue_token(app_id: str, key: bytes, user: str, ttl: int, *, now: int) -> str:
    """A token for ``user`` of ``app_id`` valid for ``ttl`` seconds from ``now``.

    Raises :class:`~hub.errors.InvalidRequest` naming ``ttl`` (1 s to 30 days) or
    ``user`` (1 to 256 characters, no control characters).
    """
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidRequest(
            f"ttl must be a whole number of seconds from {MIN_TTL} to {MAX_TTL} (30 days)", field="ttl"
        )
    user = validate_user_id(user, "user")
    claims = {"app": app_id, "sub": user, "iat": now, "exp": now + ttl}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return _JWS.encode(payload, key, algorithm=ALGORITHM)


def _load_claims(payload: object) -> dict[str, Any]:
    try:
        claims = json.loads(payload) if isinstance(payload, (bytes, str)) else None
    except (ValueError, RecursionError):
        claims = None
    if not isinstance(claims, dict):
        raise BadToken("the token's payload is not a JSON object")
    return claims


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadToken(f"the token's {name} claim is not a number of seconds")
    return float(value)


def verify_token(token: str, keys: Mapping[str, bytes], *, now: int) -> TokenClaims:
    """Check ``token`` and return who it is for.

    ``keys`` maps app ids to their keys. The ``app`` claim is read before the signature
    is checked only to choose the key; nothing else is trusted until the signature
    matches. Raises :class:`~hub.errors.Expired` for a genuine token past its ``exp``,
    and :class:`~hub.errors.BadToken` for anything else wrong.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadToken("the token is missing or malformed")
    try:
        unverified = _load_claims(_JWS.decode(token, options={"verify_signature": False}))
        app = unverified.get("app")
        if not isinstance(app, str) or app not in keys:
            raise BadToken("the token names no known app (claim app)")
        claims = _load_claims(_JWS.decode(token, keys[app], algorithms=[ALGORITHM]))
    except HubError:
        raise
    except (jwt.PyJWTError, ValueError, TypeError, UnicodeError):
        # PyJWT reports most garbage as PyJWTError, but odd inputs can surface as
        # decoding errors from below it; all of them mean the same to the client.
        raise BadToken("the token is malformed or its signature does not match") from None

    if claims.get("app") != app:
        raise BadToken("the token names no known app (claim app)")
    try:
        user = validate_user_id(claims.get("sub"), "sub")
    except HubError as e:
        raise BadToken(f"the token's sub claim is not a user id: {e.message}") from None
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise BadToken("the token has no exp claim")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and now < nbf:
        raise BadToken("the token is not valid yet (claim nbf)")
    if claims.get("aud") is not None:
        # Tokens minted for some other audience with the same secret are not ours.
        raise BadToken("the token has an aud claim; hub tokens have none")
    if now >= exp:
        raise Expired("the token has expired")
    return TokenClaims(app=app, user=user, exp=math.floor(exp))
