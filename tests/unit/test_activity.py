from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hub.domain.activity import (
    MAX_EXTRA_BYTES,
    ActivityInput,
    decode_json,
    parse_activities_body,
    parse_activity,
    parse_time,
    split_feed_id,
    validate_feed_id,
    validate_user_id,
)
from hub.domain.models import Activity
from hub.errors import HubError, InvalidActivity, InvalidJSON, InvalidRequest

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
BASE = {"actor": "alice", "verb": "like", "object": "photo:42"}


def parse(data: object) -> ActivityInput:
    return parse_activity(data, now=NOW)


def refused(data: object, field: str) -> InvalidActivity:
    with pytest.raises(InvalidActivity) as e:
        parse_activities_body(data, now=NOW)
    assert e.value.field == field, e.value.message
    assert e.value.code == "invalid_activity"
    return e.value


# --- the hub's own shape -------------------------------------------------------------


def test_contract_example() -> None:
    doc = {
        "actor": "alice", "verb": "like", "object": "photo:42", "target": "album:7",
        "time": "2026-11-21T10:00:00Z", "foreign_id": "like:991", "to": ["notification:bob"],
        "extra": {"text": "nice"},
    }
    a = parse(doc)
    assert a == ActivityInput(
        actor="alice", verb="like", object="photo:42", target="album:7",
        time=datetime(2026, 11, 21, 10, 0, tzinfo=UTC), foreign_id="like:991",
        to=("notification:bob",), extra={"text": "nice"},
    )
    stored = a.with_id("01HF7YAT3V0000000000000000")
    assert isinstance(stored, Activity)
    assert stored.id == "01HF7YAT3V0000000000000000"
    assert stored.to_json() == {**doc, "id": stored.id, "time": "2026-11-21T10:00:00.000000Z"}


def test_minimal_defaults() -> None:
    a = parse(BASE)
    assert (a.actor, a.verb, a.object) == ("alice", "like", "photo:42")
    assert a.time == NOW and a.time.tzinfo is not None
    assert (a.target, a.foreign_id, a.to, dict(a.extra)) == (None, None, (), {})


def test_null_optional_fields_are_absent() -> None:
    a = parse({**BASE, "target": None, "time": None, "foreign_id": None, "to": None, "extra": None})
    assert (a.target, a.time, a.foreign_id, a.to, dict(a.extra)) == (None, NOW, None, (), {})


def test_now_in_another_zone_is_normalised() -> None:
    a = parse_activity(BASE, now=NOW.astimezone(timezone(timedelta(hours=5))))
    assert a.time == NOW and a.time.utcoffset() == timedelta(0)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_activity(BASE, now=datetime(2026, 1, 1))


@pytest.mark.parametrize("key", ["actor", "verb", "object"])
def test_required(key: str) -> None:
    doc = dict(BASE)
    del doc[key]
    assert "required" in refused(doc, key).message
    refused({**BASE, key: None}, key)


ID_FIELDS = ["actor", "verb", "object", "target", "foreign_id"]


@pytest.mark.parametrize("key", ID_FIELDS)
@pytest.mark.parametrize("value", [5, 1.5, True, [], ["alice"], {"id": "alice"}])
def test_ids_must_be_strings(key: str, value: object) -> None:
    assert "string" in refused({**BASE, key: value}, key).message


@pytest.mark.parametrize("key", ID_FIELDS)
def test_id_length(key: str) -> None:
    assert getattr(parse({**BASE, key: "x" * 256}), key) == "x" * 256
    assert getattr(parse({**BASE, key: "🎉" * 256}), key) == "🎉" * 256  # characters, not bytes
    assert "256" in refused({**BASE, key: "x" * 257}, key).message
    refused({**BASE, key: ""}, key)


@pytest.mark.parametrize("key", ID_FIELDS)
@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "tab\t", "\x1b[31m", "del\x7f", "c1\x85", "\x9f"])
def test_control_characters(key: str, bad: str) -> None:
    assert "control" in refused({**BASE, key: bad}, key).message


@pytest.mark.parametrize("ok", ["with space", "ünïcødé", "sep\u2028arator", "zero\u200bwidth", "a:b|c", " "])
def test_other_text_is_fine(ok: str) -> None:
    assert parse({**BASE, "actor": ok}).actor == ok


def test_lone_surrogate_is_not_text() -> None:
    refused({**BASE, "object": "bad\ud800"}, "object")


def test_unknown_keys() -> None:
    assert "actr" in refused({**BASE, "actr": "x"}, "actr").message
    assert "foreign_id" in refused({**BASE, "id": "x"}, "id").message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21t10:00:00z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T12:30:00+02:30", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T00:00:00-10:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T10:00:00.5Z", datetime(2026, 11, 21, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-11-21T10:00:00.123456789Z", datetime(2026, 11, 21, 10, 0, 0, 123_456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_time(text: str, expected: datetime) -> None:
    t = parse({**BASE, "time": text}).time
    assert t == expected and t.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-21T10:00:00", "2026-11-21", "10:00:00Z", "2026-11-21 10:00:00Z", "2026-11-21T10:00Z",
        "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T10:61:00Z",
        "2026-11-21T10:00:00+24:00", "2026-11-21T10:00:00+0200", "2026-11-21T10:00:00.Z",
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00", "２０２６-11-21T10:00:00Z",
        "", " 2026-11-21T10:00:00Z", 1_700_000_000, True, ["2026-11-21T10:00:00Z"],
    ],
)
def test_bad_time(bad: object) -> None:
    assert "RFC 3339" in refused({**BASE, "time": bad}, "time").message


def test_parse_time_raises_the_given_error() -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_time("yesterday", "since", error=InvalidRequest)
    assert e.value.field == "since"


def _extra_of_size(n: int) -> dict[str, str]:
    base = len(json.dumps({"k": ""}, separators=(",", ":")).encode())
    return {"k": "x" * (n - base)}


def test_extra_size_limit() -> None:
    at_limit = _extra_of_size(MAX_EXTRA_BYTES)
    assert parse({**BASE, "extra": at_limit}).extra == at_limit
    assert "16384" in refused({**BASE, "extra": _extra_of_size(MAX_EXTRA_BYTES + 1)}, "extra").message


def test_extra_size_is_counted_in_utf8_bytes_without_escapes() -> None:
    # 6000 "é" are 12000 bytes of UTF-8 (and 36000 as \u00e9 escapes): allowed.
    assert parse({**BASE, "extra": {"t": "é" * 6000}}).extra["t"] == "é" * 6000
    refused({**BASE, "extra": {"t": "é" * 8200}}, "extra")


@pytest.mark.parametrize("bad", [[], ["a"], "text", 5, True])
def test_extra_must_be_an_object(bad: object) -> None:
    refused({**BASE, "extra": bad}, "extra")


@pytest.mark.parametrize("bad", [{"n": float("nan")}, {"s": "\ud800"}, {"o": object()}])
def test_extra_must_be_json(bad: dict[str, Any]) -> None:
    refused({**BASE, "extra": bad}, "extra")


def test_to() -> None:
    a = parse({**BASE, "to": ["notification:bob", "timeline:carol", "notification:bob", "notification:a:b"]})
    assert a.to == ("notification:bob", "timeline:carol", "notification:a:b")
    assert split_feed_id("notification:a:b") == ("notification", "a:b")
    assert parse({**BASE, "to": []}).to == ()


def test_to_limit() -> None:
    feeds = [f"notification:u{i}" for i in range(100)]
    assert parse({**BASE, "to": feeds}).to == tuple(feeds)
    assert "100" in refused({**BASE, "to": [*feeds, "notification:x"]}, "to").message


@pytest.mark.parametrize("bad", ["notification:bob", {"notification": "bob"}, 5])
def test_to_must_be_a_list(bad: object) -> None:
    refused({**BASE, "to": bad}, "to")


@pytest.mark.parametrize(
    "bad",
    [
        "bob", "Notification:bob", "1group:bob", "_g:bob", "my-group:bob", ":bob", "notification:",
        "g" * 65 + ":bob", "notification:" + "u" * 257, "notification:bad\nuser", 5, None, ["notification:bob"],
    ],
)
def test_bad_feed_in_to(bad: object) -> None:
    refused({**BASE, "to": ["notification:ok", bad]}, "to[1]")


def test_group_of_64_characters_is_fine() -> None:
    assert parse({**BASE, "to": ["g" * 64 + ":bob"]}).to == ("g" * 64 + ":bob",)


# --- helpers for the HTTP layer ------------------------------------------------------


def test_validate_user_id() -> None:
    assert validate_user_id("bob", "follower") == "bob"
    for bad in ("", "x" * 257, "a\tb", 7, None):
        with pytest.raises(InvalidRequest) as e:
            validate_user_id(bad, "follower")
        assert e.value.field == "follower"
    with pytest.raises(InvalidActivity):
        validate_user_id("", "actor", error=InvalidActivity)


def test_validate_feed_id() -> None:
    assert validate_feed_id("timeline_aggregated:bob") == "timeline_aggregated:bob"
    for bad in ("bob", "Timeline:bob", "timeline:", 3):
        with pytest.raises(InvalidRequest) as e:
            validate_feed_id(bad, "feed")
        assert e.value.field == "feed"
    with pytest.raises(InvalidActivity) as e2:
        split_feed_id("nope", "to[0]", error=InvalidActivity)
    assert e2.value.field == "to[0]"


# --- bodies and batches --------------------------------------------------------------


def test_single_body() -> None:
    assert parse_activities_body(BASE, now=NOW) == [parse(BASE)]


def test_batch() -> None:
    items = [{**BASE, "object": f"photo:{i}"} for i in range(100)]
    got = parse_activities_body({"activities": items}, now=NOW)
    assert [a.object for a in got] == [f"photo:{i}" for i in range(100)]


@pytest.mark.parametrize("bad", [[], [BASE] * 101, BASE, "x", None])
def test_batch_size_and_type(bad: object) -> None:
    refused({"activities": bad}, "activities")


def test_batch_errors_name_the_index() -> None:
    items: list[object] = [dict(BASE) for _ in range(5)]
    items[3] = {"verb": "like", "object": "o"}
    refused({"activities": items}, "activities[3].actor")
    items[3] = {**BASE, "to": ["notification:a", "Bad"]}
    refused({"activities": items}, "activities[3].to[1]")
    items[3] = {**BASE, "type": "Like"}
    refused({"activities": items}, "activities[3].verb")
    items[3] = {"type": "Like", "actor": {"id": 5}, "object": "o"}
    refused({"activities": items}, "activities[3].actor.id")
    items[3] = "not an object"
    refused({"activities": items}, "activities[3]")


def test_batch_refuses_other_keys() -> None:
    refused({"activities": [BASE], "extra": {}}, "extra")


@pytest.mark.parametrize("body", [[BASE], "activity", 42, None, True])
def test_body_must_be_an_object(body: object) -> None:
    refused(body, "body")
    with pytest.raises(InvalidActivity) as e:
        parse_activity(body, now=NOW)
    assert e.value.field == "body"


def test_decode_json() -> None:
    assert decode_json(b'{"a": [1, "\xc3\xa9"]}') == {"a": [1, "é"]}
    assert decode_json('{"a": 1}') == {"a": 1}
    for bad in (b"", b"{", b'{"a": 1} x', b"\xff\xfe{}", b'{"a": NaN}', b"[Infinity]", b"[" * 100_000, b"\xef\xbb\xbf{}"):
        with pytest.raises(InvalidJSON) as e:
            decode_json(bad)
        assert e.value.field == "body"


# --- Activity Streams 2.0 ------------------------------------------------------------


def test_as2_mapping() -> None:
    doc = {
        "@context": "https://www.w3.org/ns/activitystreams", "summary": "Joe liked a note",
        "type": "Like", "id": "http://www.test.example/activity/1",
        "actor": "http://example.org/profiles/joe", "object": "http://example.com/notes/1",
        "target": "http://example.com/albums/7", "published": "2014-09-30T12:34:56+02:00",
    }
    a = parse(doc)
    assert a == ActivityInput(
        actor="http://example.org/profiles/joe", verb="like", object="http://example.com/notes/1",
        target="http://example.com/albums/7", foreign_id="http://www.test.example/activity/1",
        time=datetime(2014, 9, 30, 10, 34, 56, tzinfo=UTC), to=(),
        extra={"@context": "https://www.w3.org/ns/activitystreams", "summary": "Joe liked a note"},
    )


def test_as2_embedded_objects_give_their_id_and_are_kept() -> None:
    actor = {"type": "Person", "id": "http://example.org/sally", "name": "Sally"}
    obj = {"type": "Note", "id": "http://example.org/notes/1", "content": "hi"}
    link = {"type": "Link", "href": "http://example.org/album"}
    a = parse({"type": "Add", "actor": actor, "object": obj, "target": link})
    assert (a.actor, a.object, a.target, a.verb) == ("http://example.org/sally", "http://example.org/notes/1",
                                                      "http://example.org/album", "add")
    assert a.extra == {"actor": actor, "object": obj, "target": link}


def test_as2_lists_use_the_first_entry() -> None:
    a = parse({"type": ["Like", "http://schema.org/LikeAction"], "actor": ["a:1", {"id": "a:2"}],
               "object": [{"id": "o:1"}, "o:2"]})
    assert (a.verb, a.actor, a.object) == ("like", "a:1", "o:1")
    assert a.extra["type"] == ["Like", "http://schema.org/LikeAction"]


def test_as2_anonymous_objects_get_a_stable_content_id() -> None:
    sally = {"type": "Person", "name": "Sally"}
    a = parse({"type": "Like", "actor": sally, "object": {"type": "Note", "content": "x"}})
    b = parse({"type": "Follow", "actor": {"name": "Sally", "type": "Person"}, "object": "n:1"})
    c = parse({"type": "Like", "actor": {"type": "Person", "name": "Sal"}, "object": "n:1"})
    assert a.actor.startswith("_:") and len(a.actor) == 34
    assert a.actor == b.actor != c.actor  # key order does not matter; content does
    assert a.actor != "Sally" and a.extra["actor"] == sally


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"@context": "https://www.w3.org/ns/activitystreams", "actor": "a", "object": "o"}, "type"),
        ({"type": 16, "actor": "a", "object": "o"}, "type"),
        ({"type": [1, 2], "actor": "a", "object": "o"}, "type"),
        ({"type": [], "actor": "a", "object": "o"}, "type"),
        ({"type": "", "actor": "a", "object": "o"}, "type"),
        ({"type": "Like", "object": "o"}, "actor"),
        ({"type": "Like", "actor": 90, "object": "o"}, "actor"),
        ({"type": "Like", "actor": {}, "object": "o"}, "actor"),
        ({"type": "Like", "actor": [], "object": "o"}, "actor"),
        ({"type": "Like", "actor": [7], "object": "o"}, "actor[0]"),
        ({"type": "Like", "actor": {"id": 5, "name": "n"}, "object": "o"}, "actor.id"),
        ({"type": "Like", "actor": {"id": "x" * 257}, "object": "o"}, "actor.id"),
        ({"type": "Like", "actor": "a"}, "object"),
        ({"type": "Like", "actor": "a", "object": 23}, "object"),
        ({"type": "Like", "actor": "a", "object": "o", "target": True}, "target"),
        ({"type": "Like", "actor": "a", "object": "o", "id": 4}, "id"),
        ({"type": "Like", "actor": "a", "object": "o", "published": "yesterday"}, "published"),
        ({"type": "Like", "actor": "a", "object": "o", "@context": 3}, "@context"),
        ({"type": "Like", "actor": "a", "object": "o", "verb": "like"}, "verb"),
        ({"type": "Like", "actor": "a", "object": "o", "time": "2026-11-21T10:00:00Z"}, "time"),
        ({"type": "Like", "actor": "a", "object": "o", "foreign_id": "f"}, "foreign_id"),
        ({"type": "Like", "actor": "a", "object": "o", "extra": {}}, "extra"),
        ({"type": "Like", "actor": "a", "object": "o", "name": 1}, "name"),
        ({"type": "Like", "actor": "a", "object": "o", "content": 42}, "content"),
        ({"type": "Like", "actor": "a", "object": "o", "nameMap": "title"}, "nameMap"),
        ({"type": "Like", "actor": "a", "object": "o", "to": ["notification:bob", "Bad:x"]}, "to[1]"),
        ({"type": "Like", "actor": "a", "object": "o", "to": "bob"}, "to"),
        ({"type": "Like", "actor": "a", "object": "o", "content": "x" * MAX_EXTRA_BYTES}, "content"),
    ],
)
def test_as2_refused(doc: dict[str, Any], field: str) -> None:
    refused(doc, field)


def test_as2_to_keeps_feeds_and_ignores_uris() -> None:
    doc = {"type": "Offer", "actor": "a", "object": "o",
           "to": ["http://joe.example.org", "notification:joe", {"type": "Person", "id": "x"},
                  "as:Public", "https://www.w3.org/ns/activitystreams#Public", "notification:joe"]}
    a = parse(doc)
    assert a.to == ("notification:joe",)
    assert a.extra["to"] == doc["to"]  # something was ignored, so the original is kept


def test_as2_to_fully_used_is_not_repeated_in_extra() -> None:
    a = parse({"type": "Like", "actor": "a", "object": "o", "to": ["notification:bob"]})
    assert a.to == ("notification:bob",) and "to" not in a.extra
    b = parse({"type": "Like", "actor": "a", "object": "o", "to": "notification:bob"})
    assert b.to == ("notification:bob",) and "to" not in b.extra
    c = parse({"type": "Like", "actor": "a", "object": "o", "to": "http://bob.example"})
    assert c.to == () and c.extra["to"] == "http://bob.example"


def test_as2_to_limit_counts_feeds_only() -> None:
    uris = [f"http://u{i}.example" for i in range(300)]
    feeds = [f"notification:u{i}" for i in range(100)]
    assert len(parse({"type": "Like", "actor": "a", "object": "o", "to": uris + feeds}).to) == 100
    refused({"type": "Like", "actor": "a", "object": "o", "to": [*feeds, "notification:x"]}, "to")


def test_as2_detected_by_context_alone() -> None:
    refused({"@context": "https://www.w3.org/ns/activitystreams", **BASE}, "verb")


# --- the W3C test corpus -------------------------------------------------------------


# A copy of the W3C Activity Streams 2.0 test documents ships with the tests.
CORPUS = Path(__file__).parents[1] / "data" / "as2"
VALID = sorted(p for p in CORPUS.glob("*.json") if p.name != "package.json")
FAIL = sorted(CORPUS.glob("fail/*.json"))


def _is_activity(raw: bytes) -> bool:
    try:
        doc = json.loads(raw.decode("utf-8"), strict=False)
    except ValueError:
        return False
    return isinstance(doc, dict) and all(doc.get(k) is not None for k in ("type", "actor", "object"))


def test_corpus_is_there() -> None:
    assert len(VALID) > 100 and len(FAIL) >= 20
    assert sum(_is_activity(p.read_bytes()) for p in VALID) >= 60


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_corpus(path: Path) -> None:
    raw = path.read_bytes()
    if _is_activity(raw):
        (a,) = parse_activities_body(decode_json(raw), now=NOW)
        doc = json.loads(raw)
        assert a.verb == (doc["type"] if isinstance(doc["type"], str) else doc["type"][0]).lower()
        assert a.actor and a.object
        assert len(json.dumps(dict(a.extra), separators=(",", ":")).encode()) <= MAX_EXTRA_BYTES
    else:
        # Not an activity (a Note, a Person, ...): may be refused, but only as bad input.
        try:
            parse_activities_body(decode_json(raw), now=NOW)
        except HubError as e:
            assert isinstance(e, (InvalidActivity, InvalidJSON)) and e.field


@pytest.mark.parametrize("path", FAIL, ids=lambda p: p.name)
def test_fail_corpus(path: Path) -> None:
    with pytest.raises((InvalidActivity, InvalidJSON)) as e:
        parse_activities_body(decode_json(path.read_bytes()), now=NOW)
    assert e.value.field
