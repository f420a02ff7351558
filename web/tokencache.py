"""User tokens verified in the last few seconds, one cache per application.

A client's burst of reads pays the token's HMAC check once. The cache belongs to the app
(``web.keys.VERIFIED_TOKENS``, made in ``create_app``), so two apps in one process (tests,
an app built with other settings) never answer from each other's keys.

Guarantees: bounded (``max_entries``; when full it is emptied, the next reads verify
again); an entry never outlives the token's ``exp``, so an expired token still gets its
401 from ``verify_token``, and never more than ``seconds`` after it was verified.
"""

from __future__ import annotations

import time

from hub.config import Settings
from hub.domain.tokens import TokenClaims, verify_token


class VerifiedTokens:
    def __init__(self, settings: Settings, *, seconds: int = 10, max_entries: int = 10_000) -> None:
        # The app's keys, by app id; settings are frozen, so built once.
        self.keys = {a.id: a.key for a in settings.apps.values()}
        self.seconds = seconds
        self.max_entries = max_entries
        # token -> (claims, valid until, in unix seconds)
        self._verified: dict[str, tuple[TokenClaims, int]] = {}

    def claims(self, token: str) -> TokenClaims:
        """The token's claims (from the cache while still valid), or a BadToken error."""
        now = int(time.time())
        hit = self._verified.get(token)
        if hit is not None and now < hit[1]:
            return hit[0]
        claims = verify_token(token, self.keys, now=now)
        if len(self._verified) >= self.max_entries:
            self._verified.clear()
        self._verified[token] = (claims, min(claims.exp, now + self.seconds))
        return claims

    def __len__(self) -> int:
        return len(self._verified)
