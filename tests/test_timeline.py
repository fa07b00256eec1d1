"""The per-second request timeline the dashboard's chart reads."""

from __future__ import annotations

import redis

from tasks import timeline


def test_record_and_read_per_second_with_the_job_ttl(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    timeline.record(client, "j1", "sent", at=100.2, ttl_s=2 * 86400)
    timeline.record(client, "j1", "sent", 2, at=100.9, ttl_s=2 * 86400)
    timeline.record(client, "j1", "429", at=101.0, ttl_s=2 * 86400)
    timeline.record(client, "j1", "retry", at=103.5, ttl_s=2 * 86400)
    assert timeline.read(client, "j1") == {"sent": {100: 3}, "429": {101: 1}, "retry": {103: 1}}
    assert 2 * 86400 - 5 < client.ttl(timeline.key("j1")) <= 2 * 86400
    assert timeline.read(client, "nothing") == {"sent": {}, "429": {}, "retry": {}}
    # bytes clients (decode_responses off) read the same
    assert timeline.read(redis.Redis.from_url(redis_url), "j1")["sent"] == {100: 3}
