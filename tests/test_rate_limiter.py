"""GCRA limiter against moto's DynamoDB: the intake's non-waiting `try_acquire` and `reserve`.

A controllable clock makes every expectation exact; the table is the real one from the template.
"""

from __future__ import annotations

import os
import uuid

import pytest

from orderbridge import constants
from orderbridge.ratelimit import DynamoDBRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter(harness) -> tuple[DynamoDBRateLimiter, Clock, str]:
    clock = Clock()
    table = os.environ[constants.RATE_LIMIT_TABLE_ENV]
    return DynamoDBRateLimiter(table_name=table, clock=clock), clock, f"test:{uuid.uuid4().hex}"


def test_try_acquire_allows_the_burst_then_answers_the_wait(limiter) -> None:
    rl, clock, key = limiter
    # 6 per 60 s = one slot every 10 s, burst 3: three at once, the fourth waits 10 s.
    got = [rl.try_acquire(key, limit=6, per_seconds=60, burst=3) for _ in range(4)]
    assert got[:3] == [0.0, 0.0, 0.0]
    assert got[3] == pytest.approx(10.0)
    clock.now += 9.0
    assert rl.try_acquire(key, limit=6, per_seconds=60, burst=3) == pytest.approx(1.0)
    clock.now += 1.0
    assert rl.try_acquire(key, limit=6, per_seconds=60, burst=3) == 0.0
    assert rl.try_acquire(key, limit=6, per_seconds=60, burst=3) == pytest.approx(10.0)


def test_try_acquire_refused_posts_take_no_slot(limiter) -> None:
    rl, clock, key = limiter
    assert rl.try_acquire(key, limit=1, per_seconds=30) == 0.0
    for _ in range(5):  # hammering while refused must not push the next slot further out
        assert rl.try_acquire(key, limit=1, per_seconds=30) == pytest.approx(30.0)
    clock.now += 30.0
    assert rl.try_acquire(key, limit=1, per_seconds=30) == 0.0


def test_try_acquire_idle_time_does_not_bank_extra_burst(limiter) -> None:
    rl, clock, key = limiter
    assert rl.try_acquire(key, limit=2, per_seconds=10, burst=2) == 0.0
    clock.now += 3600.0  # an hour idle: still only the configured burst of 2
    got = [rl.try_acquire(key, limit=2, per_seconds=10, burst=2) for _ in range(3)]
    assert got[:2] == [0.0, 0.0]
    assert got[2] > 0


def test_try_acquire_and_reserve_share_one_bucket(limiter) -> None:
    rl, clock, key = limiter
    assert rl.reserve(key, limit=1, per_seconds=5, burst=1, max_wait=0.0) == 0.0
    assert rl.try_acquire(key, limit=1, per_seconds=5) == pytest.approx(5.0)
    clock.now += 5.0
    assert rl.try_acquire(key, limit=1, per_seconds=5) == 0.0
    assert rl.reserve(key, limit=1, per_seconds=5, burst=1, max_wait=0.0) == pytest.approx(5.0)


def test_a_reservation_overtaken_between_its_two_writes_still_gets_a_slot_of_its_own(limiter) -> None:
    """Another instance reserves between this one's two writes: each still gets a distinct slot.

    The interleaving is forced, so this holds whatever the scheduler does.
    """
    from orderbridge import clients

    rl, clock, key = limiter
    other = DynamoDBRateLimiter(table_name=rl.table_name, clock=clock)
    real = clients.client("dynamodb")
    overtaken: list[float] = []

    class OvertakenOnce:
        def update_item(self, **kw):
            if "tat + :interval" in kw["UpdateExpression"] and not overtaken:
                overtaken.append(other.reserve(key, limit=10, per_seconds=1, burst=1, max_wait=60.0))
            return real.update_item(**kw)

    mine = DynamoDBRateLimiter(table_name=rl.table_name, clock=clock, dynamodb_client=OvertakenOnce())
    assert rl.reserve(key, limit=10, per_seconds=1, burst=1, max_wait=60.0) == 0.0
    assert mine.reserve(key, limit=10, per_seconds=1, burst=1, max_wait=60.0) == pytest.approx(0.2)
    assert overtaken == [pytest.approx(0.1)]
    assert rl.reserve(key, limit=10, per_seconds=1, burst=1, max_wait=60.0) == pytest.approx(0.3)


def test_reserve_beyond_max_wait_takes_nothing(limiter) -> None:
    rl, _clock, key = limiter
    for i in range(3):
        assert rl.reserve(key, limit=1, per_seconds=1, burst=1, max_wait=2.5) == pytest.approx(float(i))
    assert rl.reserve(key, limit=1, per_seconds=1, burst=1, max_wait=2.5) == pytest.approx(3.0)
    assert rl.reserve(key, limit=1, per_seconds=1, burst=1, max_wait=3.0) == pytest.approx(3.0)


def test_concurrent_reservations_each_get_a_slot_of_their_own(limiter) -> None:
    """Many instances at once: no two share a slot and none is lost.

    Holds because DynamoDB applies a conditional write atomically; moto does not, and the local
    run restores it (`orderbridge_local.moto_atomic`): without that this test fails.
    """
    from concurrent.futures import ThreadPoolExecutor

    rl, _clock, key = limiter
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(
            pool.map(lambda _: rl.reserve(key, limit=10, per_seconds=1, burst=1, max_wait=60.0), range(32))
        )
    assert sorted(round(w, 6) for w in waits) == [round(i * 0.1, 6) for i in range(32)]
