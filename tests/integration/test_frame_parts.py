"""The dispatcher's frame parts for a whole pub/sub batch at once (realtime/frames.py).

Several feeds in one ``frame_parts`` call (one pipeline for all, one body MGET per app):
an aggregated feed whose marks are cached, one whose marks are not (the general path), a
flat feed and a feed with a group that is gone. Each feed's entry texts are the bytes
``json.dumps(ensure_ascii=False)`` writes for the entries the replay path reads
(``FeedView.entries``), and its counts are the feed's counts: batching changes nothing.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

from hub.core import Hub
from hub.domain.models import Activity
from hub.storage.bodytexts import compact
from hub.storage.feedstate import feed_states
from realtime.frames import FeedView
from tests.conftest import uid


async def test_frame_parts_of_several_feeds_are_each_feeds_entries(hub: Hub) -> None:
    app = f"fp{secrets.token_hex(3)}"
    agg, flat = hub.group("timeline_aggregated"), hub.group("timeline")
    cached, uncached = f"timeline_aggregated:{uid()}", f"timeline_aggregated:{uid()}"
    plain = f"timeline:{uid()}"
    now = datetime.now(timezone.utc)
    acts = [Activity(id=hub.ids.new(), actor=f"a{i % 3}", verb=("like", "post")[i % 2], object=f"o{i}", time=now,
                     extra={"text": f"caf\u00e9 \U0001f600 \\u00e9 {i}"}) for i in range(20)]
    for f, g in ((cached, agg), (uncached, agg), (plain, flat)):
        await hub.feeds.start_build(app, g, f)
        await hub.feeds.finish_build(app, f)
    await hub.marks.load(app, cached)
    await hub.marks.load(app, plain)
    for a in acts:
        await hub.activities.store(app, a)
    await hub.feeds.add_many(app, [(agg, [cached, uncached], a) for a in acts] + [(flat, [plain], a) for a in acts])
    view = FeedView(hub)
    gids = [g.id for g in (await hub.feeds.read(app, agg, cached, "reader", 5, None, 1, "x:", 15, False)).groups]
    # The second feed goes the general way (its marks not cached), the others do not.
    states = await feed_states(hub.feeds, hub.marks, [(app, agg, cached, gids), (app, agg, uncached, gids)])
    assert states[0] is not None and states[1] is None
    assert len(gids) == 2
    flat_ids = [acts[3].id, acts[17].id, "gone-id"]
    asks = [(app, cached, [*gids, "gone-group", gids[0]]), (app, uncached, gids[:1]), (app, plain, flat_ids)]
    parts = await view.frame_parts(asks)
    for (a, feed, ids), got in zip(asks, parts):
        assert not isinstance(got, BaseException), got
        texts, counts = got
        expected = await view.entries(a, feed, ids)
        assert set(texts) == set(expected) and expected
        for i, text in texts.items():
            assert text == compact(expected[i]) and json.loads(text) == expected[i]
        assert counts == await view.counts(a, feed)
    first = parts[0]
    assert not isinstance(first, BaseException) and "caf\u00e9 \U0001f600" in first[0][gids[0]]
