"""Key layout and slot grouping (issue 21): the keys a script touches together share a slot."""

from __future__ import annotations

from hub.storage.redis import Keys
from hub.storage.slots import by_slot, slot_of


def test_every_key_of_a_feed_shares_its_slot_and_channel() -> None:
    k = Keys("hub", "app1")
    feed = "notification:user}with{braces"
    keys = [k.feed(feed), k.rank(feed), k.agg(feed), k.agg_state(feed), k.agg_members(feed), k.agg_actors(feed),
            k.agg_actor_counts(feed), k.agg_page(feed), k.built(feed), k.marks(feed), k.changes(feed), k.online(feed),
            k.channel(feed)]
    assert len(set(keys)) == len(keys)
    assert {slot_of(key) for key in keys} == {slot_of(k.feed_tag(feed))}
    assert all(key.startswith(k.feed_tag(feed)) for key in keys)


def test_a_users_follower_cache_and_the_apps_admission_keys_share_a_slot() -> None:
    k = Keys("hub", "app1")
    assert len({slot_of(x) for x in (k.followers("u"), k.followers_changes("u"), k.following("u"))}) == 1
    admission = [k.webhook("msg"), k.foreign_id("f1"), k.foreign_id("f2"), k.rate(), k.complete_since(),
                 k.active(), k.celebrities()]
    assert len({slot_of(x) for x in admission}) == 1
    assert k.activity("01ABC") == "hub:app1:a:01ABC"  # untagged: bodies spread over the slots


def test_batches_are_one_slot_each_on_a_cluster_and_one_batch_on_a_single_redis() -> None:
    k = Keys("hub", "app1")
    feeds = [f"timeline:u{i}" for i in range(200)]
    assert by_slot(False, feeds, k.feed_tag) == [feeds]
    assert by_slot(True, [], k.feed_tag) == []
    batches = by_slot(True, feeds, k.feed_tag)
    assert len(batches) > 50 and sorted(f for b in batches for f in b) == sorted(feeds)
    for b in batches:
        assert len({slot_of(k.feed_tag(f)) for f in b}) == 1
        assert b == [f for f in feeds if f in b]  # order kept within a batch
