"""The Cassandra schema, as numbered migrations.

``hub migrate`` applies every migration above the keyspace's recorded version, in order,
and records each one in ``schema_migrations``. Statements use ``IF NOT EXISTS`` so a run
interrupted halfway can simply be run again. Add a migration; never edit an applied one.

Only Cassandra 2.1 features are used (no ``date`` type, no materialized views), so the
same schema runs on 4.x and 5.x. Why the tables look the way they do: docs/design.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cassandra import InvalidRequest

from hub.config import CassandraSettings
from hub.storage.cassandra import Cassandra


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "schema bookkeeping", (
        """CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
            version int PRIMARY KEY, name text, applied_at timestamp)""",
    )),
    Migration(2, "activities and the follow graph", (
        # The one durable copy of each activity; feeds reference it by id.
        """CREATE TABLE IF NOT EXISTS {ks}.activities (
            app text, id text, body text, deleted boolean,
            PRIMARY KEY ((app, id)))""",
        # Idempotency: the first id stored for a foreign_id wins (lightweight transaction).
        """CREATE TABLE IF NOT EXISTS {ks}.activity_by_foreign_id (
            app text, foreign_id text, id text,
            PRIMARY KEY ((app, foreign_id)))""",
        # An actor's own activities, newest first: the user feed, the source of every
        # follower's timeline when it is rebuilt, and of follow copies.
        """CREATE TABLE IF NOT EXISTS {ks}.user_activities (
            app text, actor text, id text,
            PRIMARY KEY ((app, actor), id)) WITH CLUSTERING ORDER BY (id DESC)""",
        # Activities addressed to a feed with "to".
        """CREATE TABLE IF NOT EXISTS {ks}.feed_targets (
            app text, feed text, id text,
            PRIMARY KEY ((app, feed), id)) WITH CLUSTERING ORDER BY (id DESC)""",
        # Both directions of the follow graph. ``since`` is the newest activity id of the
        # followee when the follow began; ``copy`` how many older ones were copied in.
        """CREATE TABLE IF NOT EXISTS {ks}.following (
            app text, follower text, followee text, since text, copy int, created_at timestamp,
            PRIMARY KEY ((app, follower), followee))""",
        """CREATE TABLE IF NOT EXISTS {ks}.followers (
            app text, followee text, follower text, created_at timestamp,
            PRIMARY KEY ((app, followee), follower))""",
        # After an unfollow with keep_history, what stays in the follower's feeds.
        """CREATE TABLE IF NOT EXISTS {ks}.kept_history (
            app text, follower text, followee text, since text, until text, copy int,
            PRIMARY KEY ((app, follower), followee, until))""",
        """CREATE TABLE IF NOT EXISTS {ks}.celebrities (
            app text, user text, followers int,
            PRIMARY KEY ((app), user))""",
        # Stored activities whose fan-out jobs are not queued yet: one row per stored batch
        # (``id`` its smallest activity id, ``ids`` all of them as JSON), swept by the
        # worker. Partitioned by minute so a sweep reads a few small partitions.
        """CREATE TABLE IF NOT EXISTS {ks}.pending_fanout (
            app text, minute bigint, id text, ids text,
            PRIMARY KEY ((app, minute), id)) WITH gc_grace_seconds = 3600""",
    )),
    Migration(3, "seen and read marks", (
        # kind is "seen" or "read"; gid "*" holds the feed-wide watermark of a mark-all,
        # other rows the newest activity id a group had when it was marked.
        """CREATE TABLE IF NOT EXISTS {ks}.feed_marks (
            app text, feed text, kind text, gid text, mark text,
            PRIMARY KEY ((app, feed), kind, gid))""",
    )),
    Migration(4, "foreign ids recorded by every try", (
        # Replaces activity_by_foreign_id (dropped by migration 5). Each try of a
        # foreign_id adds its own row and the smallest id wins, so a try can write its
        # rows and check for an earlier one in the same round (hub/storage/foreignids.py).
        """CREATE TABLE IF NOT EXISTS {ks}.foreign_ids (
            app text, foreign_id text, id text,
            PRIMARY KEY ((app, foreign_id), id))""",
    )),
    Migration(5, "drop activity_by_foreign_id", (
        # Unused since migration 4; foreign_ids holds every try.
        "DROP TABLE IF EXISTS {ks}.activity_by_foreign_id",
    )),
    Migration(6, "webhook answers that survive Redis", (
        # The answer to each webhook-id, written with a 10-minute TTL and read only while
        # Redis may have lost its records (hub/storage/answers.py). A partition per answer:
        # point reads only, so its expired cells are never scanned.
        """CREATE TABLE IF NOT EXISTS {ks}.webhook_answers (
            app text, webhook_id text, record text,
            PRIMARY KEY ((app, webhook_id))) WITH gc_grace_seconds = 3600""",
        # Present (TTL) while an app may have answers above on record.
        """CREATE TABLE IF NOT EXISTS {ks}.webhook_recent (
            app text PRIMARY KEY, at bigint) WITH gc_grace_seconds = 3600""",
    )),
)

LATEST = MIGRATIONS[-1].version


def replication_of(settings: CassandraSettings) -> str:
    """The keyspace's replication map: NetworkTopologyStrategy with a factor per datacenter
    when ``[cassandra] replication`` names them, else SimpleStrategy with
    ``replication_factor`` (both as Cassandra 2.1 has them). Only a new keyspace takes it:
    an existing one keeps its map (change it with ALTER KEYSPACE, then repair)."""
    if settings.replication:
        # The loader allows only letters, digits and _ . - in the names: safe in quotes.
        factors = ", ".join(f"'{dc}': {n}" for dc, n in settings.replication)
        return f"{{'class': 'NetworkTopologyStrategy', {factors}}}"
    return f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.replication_factor}}}"


async def current_version(db: Cassandra) -> int:
    try:
        found = await db.execute("SELECT version FROM {ks}.schema_migrations")
    except InvalidRequest:  # the keyspace or table does not exist yet
        return 0
    return max((r.version for r in found), default=0)


async def migrate(settings: CassandraSettings, progress: Callable[[str], None] = lambda _: None) -> list[int]:
    """Create or upgrade ``settings.keyspace``. Returns the versions applied now."""
    db = await Cassandra.connect(settings, keyspace=settings.keyspace)
    try:
        await db.execute("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = " + replication_of(settings))
        await db.execute(MIGRATIONS[0].statements[0])
        done = {r.version for r in await db.execute("SELECT version FROM {ks}.schema_migrations")}
        applied: list[int] = []
        for m in MIGRATIONS:
            if m.version in done:
                continue
            progress(f"migration {m.version}: {m.name}")
            for stmt in m.statements:
                await db.execute(stmt)
            await db.execute(
                "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (%s, %s, dateof(now()))",
                (m.version, m.name),
            )
            applied.append(m.version)
        return applied
    finally:
        await db.close()
