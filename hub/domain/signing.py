"""Standard Webhooks signatures for app calls (docs/api.md, Authentication).

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is
``v1,`` followed by the base64 HMAC-SHA256 of it under the app's key (the bytes behind
``whsec_``). ``webhook-signature`` may hold several space-separated signatures so a
sender can roll its secret; one matching ``v1`` entry is enough.

Everything here treats the headers as hostile: any problem with them is reported as
:class:`~hub.errors.BadSignature`, never as another exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from hub.errors import BadSignature

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300
MAX_ID_LENGTH = 256

# The id becomes part of a Redis key for replay protection: visible ASCII only.
_ID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_LENGTH)
# Digits only (no sign, no spaces, no "1e9"): what a Unix time in seconds looks like.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a message: ``v1,<base64>``."""
    return "v1," + base64.b64encode(_digest(key, msg_id, timestamp, body)).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Callers may pass raw headers; HTTP header names are case-insensitive.
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    if value is None:
        raise BadSignature(f"the {name} header is missing", field=name)
    if not isinstance(value, str):
        raise BadSignature(f"the {name} header is malformed", field=name)
    return value.strip()


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """Check a signed app call and return its ``webhook-id``.

    ``now`` is the current Unix time in seconds. Raises
    :class:`~hub.errors.BadSignature` (``field`` names the header at fault) when a
    header is missing or malformed, the timestamp is more than ``tolerance`` seconds
    away from ``now``, or no ``v1`` signature matches.
    """
    msg_id = _header(headers, ID_HEADER)
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    raw_sigs = _header(headers, SIGNATURE_HEADER)

    if not _ID.fullmatch(msg_id):
        raise BadSignature(
            f"{ID_HEADER} must be 1 to {MAX_ID_LENGTH} visible ASCII characters", field=ID_HEADER
        )
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise BadSignature(f"{TIMESTAMP_HEADER} must be an integer Unix time in seconds", field=TIMESTAMP_HEADER)
    timestamp = int(raw_ts)
    if timestamp < now - tolerance:
        raise BadSignature(
            f"{TIMESTAMP_HEADER} is too old: more than {tolerance} s before the server's time "
            "(replayed request, or the sender's clock is wrong)",
            field=TIMESTAMP_HEADER,
        )
    if timestamp > now + tolerance:
        raise BadSignature(
            f"{TIMESTAMP_HEADER} is too new: more than {tolerance} s in the future "
            "(the sender's clock is wrong)",
            field=TIMESTAMP_HEADER,
        )

    expected = _digest(key, msg_id, timestamp, body)
    found_v1 = False
    matched = False
    for entry in raw_sigs.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version != "v1":
            # Other versions (e.g. v1a, asymmetric) are for other verifiers.
            continue
        found_v1 = True
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Compare every entry, without stopping early, so timing says nothing about
        # which entry (if any) was close.
        matched |= hmac.compare_digest(expected, given)
    if matched:
        return msg_id
    if not found_v1:
        raise BadSignature(f"{SIGNATURE_HEADER} holds no v1 signature", field=SIGNATURE_HEADER)
    raise BadSignature(f"no v1 signature in {SIGNATURE_HEADER} matches the body", field=SIGNATURE_HEADER)
