"""The OpenAPI document's components: schemas, shared responses and security schemes.

The schemas describe what the views really accept and answer (docs/api.md: Activities, Routes);
tests/integration/test_openapi.py runs schemathesis against them, so a schema that
drifts from a view fails the suite.
"""

from __future__ import annotations

from typing import Any

# docs/api.md, Concepts: 1 to 256 characters, no control characters (C0, DEL, C1).
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"
GROUP_PATTERN = "^[a-z][a-z0-9_]{0,63}$"
FEED_ID_PATTERN = "^[a-z][a-z0-9_]{0,63}:[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"

ERROR_CODES = [
    "invalid_json", "invalid_activity", "invalid_request", "bad_signature", "bad_token", "expired",
    "forbidden", "not_found", "method_not_allowed", "too_large", "rate_limited", "unavailable",
]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _id(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": 256, "pattern": ID_PATTERN, "description": description}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 with a time zone"}
_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "Every error the hub answers (docs/api.md, Errors).",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": ERROR_CODES},
                "message": {"type": "string", "description": "for humans; may change"},
                "field": {"type": "string", "description": "the field, header or parameter at fault"},
            },
        }},
    },
    "UserId": _id("an app's own user id"),
    "FeedId": {"type": "string", "pattern": FEED_ID_PATTERN, "description": "<group>:<user>",
               "examples": ["notification:bob"]},
    "Activity": {
        "type": "object",
        "description": "The hub's own shape. Any key not listed is refused (put it in extra).",
        "required": ["actor", "verb", "object"],
        "additionalProperties": False,
        "properties": {
            "actor": _id("who did it"), "verb": _id("what was done"), "object": _id("to what"),
            # null is the same as leaving an optional field out.
            "target": _nullable(_id("where")),
            "foreign_id": _nullable(_id("the app's own id: the same foreign_id twice is the same activity")),
            "time": _nullable({**_TIME, "description": "defaults to now"}),
            "to": _nullable({"type": "array", "maxItems": 100, "items": ref("FeedId"),
                             "description": "more feeds to deliver to"}),
            "extra": _nullable({"type": "object", "description": "any JSON object up to 16 KiB"}),
        },
        "examples": [{"actor": "alice", "verb": "like", "object": "photo:42", "foreign_id": "like:991",
                      "to": ["notification:bob"], "extra": {"text": "nice"}}],
    },
    "AS2Activity": {
        "type": "object",
        "description": "An Activity Streams 2.0 activity: type gives the verb, id the foreign_id, published "
                       "the time; an object in place of a string gives its id. Other properties go in extra.",
        "required": ["type"],
        "properties": {
            "type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "actor": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]},
            "object": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]},
            "target": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]},
            "published": _TIME, "id": {"type": "string"}, "to": {"type": "array"},
        },
    },
    "ActivityBatch": {
        "type": "object",
        "required": ["activities"],
        "additionalProperties": False,
        "properties": {"activities": {"type": "array", "minItems": 1, "maxItems": 100,
                                      "items": {"anyOf": [ref("Activity"), ref("AS2Activity")]}}},
    },
    "Accepted": {
        "type": "object",
        "required": ["activities"],
        "properties": {"activities": {"type": "array", "items": {
            "type": "object", "required": ["id", "foreign_id"],
            "properties": {"id": {"type": "string"}, "foreign_id": _nullable({"type": "string"})},
        }}},
    },
    "Deleted": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "Follow": {
        "type": "object",
        "required": ["follower", "followee"],
        "properties": {
            "follower": ref("UserId"), "followee": ref("UserId"),
            "copy": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100,
                     "description": "how many of the followee's latest activities are copied in"},
        },
    },
    "Unfollow": {
        "type": "object",
        "required": ["follower", "followee"],
        "properties": {
            "follower": ref("UserId"), "followee": ref("UserId"),
            "keep_history": {"type": "boolean", "default": False},
        },
    },
    "UserPage": {
        "type": "object",
        "required": ["results", "next"],
        "properties": {"results": {"type": "array", "items": {"type": "string"}},
                       "next": _nullable({"type": "string"})},
    },
    "TokenRequest": {
        "type": "object",
        "required": ["user"],
        "properties": {"user": ref("UserId"),
                       "ttl": {"type": "integer", "minimum": 1, "maximum": 2592000, "default": 3600}},
    },
    "Token": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
    "StoredActivity": {
        "type": "object",
        "description": "A flat feed's entry: the activity as stored.",
        "required": ["id", "actor", "verb", "object", "time"],
        "properties": {
            "id": {"type": "string", "description": "sorts by time, unique per app"},
            "actor": {"type": "string"}, "verb": {"type": "string"}, "object": {"type": "string"},
            "target": _nullable({"type": "string"}), "time": _TIME,
            "foreign_id": _nullable({"type": "string"}),
            "to": {"type": "array", "items": {"type": "string"}}, "extra": {"type": "object"},
        },
    },
    "GroupEntry": {
        "type": "object",
        "description": "An aggregated or notification feed's entry (is_read on notification feeds only).",
        "required": ["id", "group", "verb", "activities", "activity_count", "actor_count", "actors",
                     "created_at", "updated_at", "is_seen"],
        "properties": {
            "id": {"type": "string"}, "group": {"type": "string"}, "verb": {"type": "string"},
            "activities": {"type": "array", "maxItems": 15, "items": ref("StoredActivity"),
                           "description": "the newest 15"},
            "activity_count": _COUNT, "actor_count": _COUNT,
            "actors": {"type": "array", "maxItems": 5, "items": {"type": "string"},
                       "description": "the newest 5 distinct"},
            "created_at": _TIME, "updated_at": _TIME,
            "is_seen": {"type": "boolean"}, "is_read": {"type": "boolean"},
        },
    },
    "FeedPage": {
        "type": "object",
        "required": ["results", "next", "unseen", "unread"],
        "properties": {
            "results": {"type": "array", "items": {"anyOf": [ref("GroupEntry"), ref("StoredActivity")]}},
            "next": _nullable({"type": "string", "description": "pass as id_lt for the next page"}),
            "unseen": _COUNT, "unread": _COUNT,
        },
    },
    "Marks": {
        "type": "object",
        "description": '{"ids": [...]} (entry ids, at most 1,000) or {"all": true}; not both.',
        "properties": {
            "ids": {"type": "array", "maxItems": 1000, "items": _id("an entry id from a read")},
            "all": {"type": "boolean", "const": True},
        },
        "examples": [{"ids": ["<entry id>"]}, {"all": True}],
    },
    "Counts": {
        "type": "object", "required": ["unseen", "unread"],
        "properties": {"unseen": _COUNT, "unread": _COUNT},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object", "required": ["status"],
        "properties": {"status": {"const": "ready"}, "redis": {"const": "ok"}, "cassandra": {"const": "ok"}},
    },
}

_ERRORS = {
    400: "Bad input: invalid_json, invalid_activity or invalid_request (field names the culprit).",
    401: "bad_signature (app calls), bad_token or expired (user calls).",
    403: "forbidden: the token's user is not the feed's user, or the Origin is not allowed.",
    404: "not_found: no such app, feed group, activity or resource.",
    413: "too_large: the body is over 1 MiB.",
    429: "rate_limited: the app is over its rate; retry after Retry-After seconds.",
    503: "unavailable: Redis or Cassandra does not answer; retry.",
}


def error_response(status: int) -> dict[str, Any]:
    resp: dict[str, Any] = {"$ref": f"#/components/responses/E{status}"}
    return resp


RESPONSES: dict[str, dict[str, Any]] = {
    f"E{status}": {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
    for status, text in _ERRORS.items()
}
RESPONSES["E429"]["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                                                "description": "seconds"}}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "webhookId": {"type": "apiKey", "in": "header", "name": "webhook-id",
                  "description": "Standard Webhooks: a unique message id (1 to 256 visible ASCII). A webhook-id "
                                 "seen in the last 10 minutes is not processed again: the first answer is repeated."},
    "webhookTimestamp": {"type": "apiKey", "in": "header", "name": "webhook-timestamp",
                         "description": "Unix seconds; at most 300 s away from the server's clock."},
    "webhookSignature": {"type": "apiKey", "in": "header", "name": "webhook-signature",
                         "description": "v1,<base64 HMAC-SHA256 of \"id.timestamp.body\"> keyed with the bytes "
                                        "behind the app secret's whsec_ (several, space separated)."},
    "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "HS256 JWT keyed like the signatures; claims app, sub (the user), exp. "
                                 "Get one from POST /v1/apps/{app}/tokens or `hub token`."},
    "socketToken": {"type": "apiKey", "in": "query", "name": "token",
                    "description": "The same user token, in the query string (browsers cannot set headers on "
                                   "a websocket)."},
}

SIGNED: list[dict[str, list[str]]] = [{"webhookId": [], "webhookTimestamp": [], "webhookSignature": []}]
USER: list[dict[str, list[str]]] = [{"userToken": []}]
