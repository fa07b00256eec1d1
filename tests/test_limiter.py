"""The global rate limiter against the suite's real Redis: flights, the ceiling, learning the real limit."""

from __future__ import annotations

import threading
import time
import uuid

from tasks.limiter import RateLimiter, credential_key
from tests.helpers import TOKEN


def test_every_request_counts_from_admission_until_its_answer_plus_a_window(redis_server, redis_url):
    limiter = RateLimiter(redis_server.client(), limit=3, window=1.0)
    flights = [limiter.admit("c").flight for _ in range(3)]
    assert all(flights) and limiter.admit("c").flight is None  # three in flight: the budget is used
    time.sleep(1.2)  # a window later, still in flight (a stalled TagMango): still counted
    refused = limiter.admit("c")
    assert refused.flight is None and refused.wait <= 0.06  # "look again soon": none has ended yet
    limiter.done("c", flights[0])  # its answer is back: it counts for one more window, not longer
    assert limiter.admit("c").flight is None
    time.sleep(1.05)
    assert limiter.admit("c").flight is not None
    limiter.release("c", flights[1])  # admitted, never sent: its place is free at once
    assert limiter.admit("c").flight is not None and limiter.admit("c").flight is None


def test_an_admission_asked_with_a_hash_field_is_a_gate_on_it_in_the_same_round_trip(redis_server):
    """Admitted only while the field is absent; when present its value comes back and nothing is admitted, whatever
    the budget or a cool-down say."""
    r, cred = redis_server.client(), uuid.uuid4().hex
    r.hset("ledger", "K", "entry")
    limiter = RateLimiter(r, limit=1, window=1.0)
    stopped = limiter.admit(cred, read=("ledger", "K"))
    assert stopped.flight is None and stopped.read == "entry" and not stopped.cooling
    admitted = limiter.admit(cred, read=("ledger", "absent"))
    assert admitted.flight and admitted.read is None
    full = limiter.admit(cred, read=("ledger", "absent"))
    assert full.flight is None and full.read is None and full.wait > 0  # the budget of 1 is in use
    assert limiter.admit(cred, read=("ledger", "K")).read == "entry"
    limiter.refused(cred, admitted.flight, pause=5.0)
    cooling = limiter.admit(cred, read=("ledger", "absent"))
    assert cooling.cooling and cooling.read is None
    assert limiter.admit(cred, read=("ledger", "K")).read == "entry"


def test_done_discounts_the_time_since_the_answer_from_the_typical_flight_not_from_the_count(redis_server):
    from tasks.limiter import keys

    r, cred = redis_server.client(), uuid.uuid4().hex
    limiter = RateLimiter(r, limit=5, window=1.0, max_flight=60.0)
    flight = limiter.admit(cred).flight
    time.sleep(0.3)
    limiter.done(cred, flight, late=0.3)  # answered 0.3 s ago, marked done now
    seconds, micros = r.time()
    assert int(r.get(keys(cred)["flight"])) < 100_000  # the flight took ~0 s, not 0.3
    assert r.zscore(keys(cred)["log"], flight) > (seconds * 1_000_000 + micros) - 100_000  # counted until now


def test_done_as_a_rider_of_another_script_marks_the_request_done(redis_server):
    """``done_rider`` run inside a host script (tasks.lua) does what ``done`` does: the flight ends now, its time is
    the typical flight; the host's own keys and arguments are untouched."""
    from tasks import lua
    from tasks.limiter import keys

    r, cred = redis_server.client(), uuid.uuid4().hex
    limiter = RateLimiter(r, limit=5, window=1.0, max_flight=60.0)
    flight = limiter.admit(cred).flight
    in_flight = r.zscore(keys(cred)["log"], flight)
    host = r.register_script(lua.with_rider(limiter.done_rider(cred, flight).body,
                                            "return {KEYS[1], ARGV[1], ARGV[2]}"))
    script_keys, args = ["host-key"], ["a", "b"]
    lua.append(limiter.done_rider(cred, flight), script_keys, args)
    assert host(keys=script_keys, args=args) == ["host-key", "a", "b"]
    ended = r.zscore(keys(cred)["log"], flight)
    assert ended < in_flight - 50e6 and int(r.get(keys(cred)["flight"])) >= 0


def _acquire(limiter: RateLimiter, cred: str) -> str:
    while (admission := limiter.admit(cred)).flight is None:
        time.sleep(admission.wait)
    return admission.flight


def test_no_window_holds_more_than_the_limit_wherever_in_its_flight_a_request_is_counted(redis_server, redis_url):
    """Threads send through the limiter with random flights; whatever instant of each flight the API counts
    it at (start, end, anywhere between), no 1 s window holds more than the limit."""
    import random

    limiter = RateLimiter(redis_server.client(), limit=10, window=1.0)
    flights: list[tuple[float, float]] = []
    lock = threading.Lock()

    def sender(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            flight = _acquire(limiter, "c")
            started = time.time()
            time.sleep(rng.choice([0.01, 0.05, 0.3, 0.8]))  # some requests stall far longer than others
            ended = time.time()
            limiter.done("c", flight)
            with lock:
                flights.append((started, ended))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rng = random.Random(1)
    for pick in (lambda s, e: s, lambda s, e: e, lambda s, e: rng.uniform(s, e)):
        counted = sorted(pick(s, e) for s, e in flights)
        assert max(sum(1 for c in counted if t <= c < t + 1.0) for t in counted) <= 10
    assert len(flights) == 72


def test_a_429_teaches_the_limit_that_was_counted_and_pauses_everyone(redis_server, redis_url):
    limiter = RateLimiter(redis_server.client(), limit=10, window=2.0)
    for _ in range(6):  # six requests answered: the API had counted them
        limiter.done("c", limiter.admit("c").flight)
    in_flight = limiter.admit("c").flight  # one more still in flight when the 429 comes: maybe counted, maybe not
    refused = limiter.admit("c").flight
    assert limiter.refused("c", refused, pause=0.5).learned == 6  # the API certainly had six: its limit is at most that
    assert limiter.effective_limit("c") == 6 and limiter.cooled_since("c") > 0
    paused = limiter.admit("c")
    assert paused.flight is None and 0.4 < paused.wait <= 0.5  # every worker waits out the cool-down
    limiter.done("c", in_flight)
    time.sleep(0.5)
    # 8 entries count now (six, the one in flight, the refused one kept in case the API counted it): over 6.
    assert limiter.admit("c").flight is None
    assert limiter.effective_limit("other") == 10  # credentials are independent
    assert limiter.admit("other").flight is not None


def test_credential_key_hides_the_token():
    key = credential_key("https://api-prod-new.tagmango.com", "A.example.com", TOKEN)
    assert TOKEN not in key and TOKEN[:8] not in key
    assert key == credential_key("https://api-prod-new.tagmango.com/", "a.example.com", TOKEN)
    assert key != credential_key("https://api-prod-new.tagmango.com", "a.example.com", TOKEN + "x")
    assert key != credential_key("https://api-prod-new.tagmango.com", "b.example.com", TOKEN)


def test_a_429_when_hardly_any_of_ours_counted_keeps_the_limit_once(redis_server, redis_url):
    """Someone else filled TagMango's window (another client, a run just before): a 429 with none of ours in it
    says nothing about the limit. The first time the limit is kept and the pause is a whole window; a second
    such 429 within the hour learns the floor (a key someone else keeps full)."""
    limiter = RateLimiter(redis_server.client(), limit=20, window=1.0)
    first = limiter.refused("c", limiter.admit("c").flight, pause=0.1)
    assert (first.learned, first.counted, first.limit_before) == (20, 0, 20)
    assert limiter.effective_limit("c") == 20 and 0.8 < limiter.admit("c").wait <= 1.0  # a whole window
    time.sleep(1.05)
    second = limiter.refused("c", limiter.admit("c").flight, pause=0.1)
    assert second.learned == 2 and limiter.effective_limit("c") == 2  # 10% of 20


def test_an_admission_carrying_a_then_rider_admits_only_if_it_goes_on(redis_server, redis_url):
    """``admit(then=...)``: the rider runs in the admission's round trip once the budget has room, before the
    request is admitted; admitted only if it answers go on; its answer comes back when it does not (``stopped``),
    with decoded and raw replies alike. A gate that stops the admission stops it before the rider runs."""
    import redis as redis_lib

    from tasks.limiter import keys
    from tasks.lua import Rider

    body = "redis.call('INCR', KEYS[1])\nif ARGV[1] == 'go' then return true, 'OK' end\nreturn false, {'why', 7}"
    for client in (redis_server.client(), redis_lib.Redis.from_url(redis_url)):  # decode_responses on, off
        cred, ran = uuid.uuid4().hex, f"ran:{uuid.uuid4().hex}"
        limiter = RateLimiter(client, limit=1, window=60.0)
        stopped = limiter.admit(cred, then=Rider("probe", body, (ran,), ("stop",)))
        assert stopped.flight is None and stopped.stopped == ["why", 7] and stopped.read is None
        assert client.zcard(keys(cred)["log"]) == 0 and int(client.get(ran)) == 1
        admitted = limiter.admit(cred, then=Rider("probe", body, (ran,), ("go",)))
        assert admitted.flight and admitted.stopped is None and int(client.get(ran)) == 2
        full = limiter.admit(cred, then=Rider("probe", body, (ran,), ("go",)))  # no room: the rider does not run
        assert full.flight is None and full.stopped is None and int(client.get(ran)) == 2
        limiter.release(cred, admitted.flight)
        client.hset("gate", "row", "done")
        gated = limiter.admit(cred, ("gate", "row"), then=Rider("probe", body, (ran,), ("go",)))
        assert gated.flight is None and gated.read == "done" and int(client.get(ran)) == 2
        client.hdel("gate", "row")
        assert limiter.admit(cred, ("gate", "row"), then=Rider("probe", body, (ran,), ("go",))).flight
        assert int(client.get(ran)) == 3
