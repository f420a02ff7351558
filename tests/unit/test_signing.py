from __future__ import annotations

import random
import string

import pytest

from hub.config import AppSettings
from hub.domain.signing import sign, verify
from hub.errors import BadSignature

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = AppSettings(id="demo", secret=SECRET).key
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_KEY = b"another key, 24 bytes..!"


def headers(sig: str = EXPECTED, msg_id: str = MSG_ID, ts: str = str(TS)) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig}


def test_known_answer_from_the_contract() -> None:
    assert sign(KEY, MSG_ID, TS, BODY) == EXPECTED
    assert verify(KEY, headers(), BODY, now=TS) == MSG_ID


def test_signature_covers_id_timestamp_and_body() -> None:
    with pytest.raises(BadSignature, match="matches"):
        verify(KEY, headers(), BODY + b" ", now=TS)
    with pytest.raises(BadSignature, match="matches"):
        verify(KEY, headers(msg_id="msg_other"), BODY, now=TS)
    with pytest.raises(BadSignature, match="matches"):
        verify(KEY, headers(ts=str(TS + 1)), BODY, now=TS)
    with pytest.raises(BadSignature, match="matches"):
        verify(OTHER_KEY, headers(), BODY, now=TS)


@pytest.mark.parametrize("delta", [-300, -1, 0, 1, 300])
def test_within_tolerance(delta: int) -> None:
    assert verify(KEY, headers(), BODY, now=TS + delta) == MSG_ID


def test_too_old() -> None:
    with pytest.raises(BadSignature, match="too old") as e:
        verify(KEY, headers(), BODY, now=TS + 301)
    assert e.value.field == "webhook-timestamp"


def test_too_new() -> None:
    with pytest.raises(BadSignature, match="too new") as e:
        verify(KEY, headers(), BODY, now=TS - 301)
    assert e.value.field == "webhook-timestamp"


def test_custom_tolerance_and_fractional_now() -> None:
    assert verify(KEY, headers(), BODY, now=TS + 10.5, tolerance=11) == MSG_ID
    with pytest.raises(BadSignature, match="too old"):
        verify(KEY, headers(), BODY, now=TS + 10.5, tolerance=10)


@pytest.mark.parametrize(
    "sig",
    [
        f"v1,Zm9v {EXPECTED}",
        f"{EXPECTED} v1,Zm9v",
        f"v1a,abc {EXPECTED}",
        f"v2,{EXPECTED[3:]}  {EXPECTED}",
        f"garbage {EXPECTED} v1,!!!notbase64",
        f"{sign(OTHER_KEY, MSG_ID, TS, BODY)} {EXPECTED}",
    ],
)
def test_any_matching_v1_among_several(sig: str) -> None:
    assert verify(KEY, headers(sig=sig), BODY, now=TS) == MSG_ID


def test_other_versions_are_ignored_not_matched() -> None:
    # The right MAC under another version label must not be accepted.
    with pytest.raises(BadSignature, match="no v1") as e:
        verify(KEY, headers(sig="v1a," + EXPECTED[3:] + " v2," + EXPECTED[3:]), BODY, now=TS)
    assert e.value.field == "webhook-signature"


def test_header_names_are_case_insensitive() -> None:
    h = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(TS), "webhook-Signature": EXPECTED}
    assert verify(KEY, h, BODY, now=TS) == MSG_ID


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    h = headers()
    del h[missing]
    with pytest.raises(BadSignature, match="missing") as e:
        verify(KEY, h, BODY, now=TS)
    assert e.value.field == missing


@pytest.mark.parametrize("ts", ["", "abc", "1614265330.0", "-1614265330", "1e9", "0x60377", "١٦١٤٢٦٥٣٣٠", "9" * 40])
def test_timestamp_must_be_an_integer(ts: str) -> None:
    with pytest.raises(BadSignature) as e:
        verify(KEY, headers(ts=ts), BODY, now=TS)
    assert e.value.field == "webhook-timestamp"


@pytest.mark.parametrize("msg_id", ["", "has space", "tab\there", "é", "x" * 257])
def test_malformed_id(msg_id: str) -> None:
    with pytest.raises(BadSignature) as e:
        verify(KEY, headers(msg_id=msg_id), BODY, now=TS)
    assert e.value.field == "webhook-id"


@pytest.mark.parametrize("sig", ["", "   ", "v1", "v1,", "v1,é", "v1,Zm9v", ",,,", EXPECTED[3:], "v1, " + EXPECTED[3:]])
def test_malformed_or_wrong_signatures(sig: str) -> None:
    with pytest.raises(BadSignature) as e:
        verify(KEY, headers(sig=sig), BODY, now=TS)
    assert e.value.field == "webhook-signature"


def test_non_string_header_values() -> None:
    h: dict[str, object] = {**headers(), "webhook-timestamp": TS}
    with pytest.raises(BadSignature):
        verify(KEY, h, BODY, now=TS)  # type: ignore[arg-type]


def test_garbage_headers_only_ever_raise_bad_signature() -> None:
    r = random.Random(0)
    alphabet = string.printable + "éß\u2028\x00\ud800"
    for _ in range(2_000):
        def junk() -> str:
            return "".join(r.choice(alphabet) for _ in range(r.randrange(0, 40)))
        h = {"webhook-id": junk(), "webhook-timestamp": r.choice([junk(), str(TS)]), "webhook-signature": junk()}
        with pytest.raises(BadSignature):
            verify(KEY, h, BODY, now=TS)
