"""The retry decision (tasks.retry.decide): every branch, as a pure function."""

from __future__ import annotations

import pytest

from tasks import errors
from tasks.retry import GiveUp, RetryAfter, decide
from tasks.rows import ErrorCode, Row
from tasks.settings import Settings

SETTINGS = Settings(max_attempts=3, backoff_base=2.0, backoff_max=30.0)


def row(round_attempts: int) -> Row:
    return Row(row_id="courses:2", op="create_course", kind="course", file="f.csv", sheet="courses", row=2, key="K",
               title="T", round_attempts=round_attempts)


@pytest.mark.parametrize("error", [
    errors.ServerError("boom", status=502), errors.ApiTimeout("read timeout", maybe_committed=True),
    errors.ConnectionFailed("reset"), errors.RateLimited("slow down")])
def test_transient_errors_retry_with_backoff_that_is_never_zero(error):
    decision = decide(error, row(1), SETTINGS)
    assert isinstance(decision, RetryAfter)
    assert 0.8 * 2.0 <= decision.seconds <= 2.0  # base·2^0, the last quarter random


def test_backoff_grows_and_is_capped():
    delays = [decide(errors.ServerError("x", status=500), row(n), Settings(max_attempts=50, backoff_base=2.0,
                                                                           backoff_max=30.0)).seconds
              for n in (1, 2, 3, 10)]
    assert delays[0] < delays[1] < delays[2] and 0.75 * 30 <= delays[3] <= 30


def test_retry_after_is_honoured():
    decision = decide(errors.RateLimited("slow", retry_after=20.0), row(1), SETTINGS)
    assert isinstance(decision, RetryAfter) and 20.0 < decision.seconds <= 21.0


def test_transient_error_after_the_last_attempt_gives_up_with_the_last_error():
    decision = decide(errors.ServerError("Bad Gateway", status=502, error_code=None), row(3), SETTINGS)
    assert isinstance(decision, GiveUp) and not decision.blocks_job
    assert decision.failure.code == ErrorCode.RETRIES_EXHAUSTED and decision.failure.http_status == 502
    assert decision.failure.message == "gave up after 3 attempts; last error: 502 Bad Gateway"


def test_timeout_after_the_last_attempt_names_the_error_class():
    decision = decide(errors.ApiTimeout("ReadTimeout"), row(3), SETTINGS)
    assert isinstance(decision, GiveUp) and "ApiTimeout" in decision.failure.message


def test_permanent_error_gives_up_at_once_with_tagmangos_answer():
    error = errors.PermanentApiError("The chapter does not exist", status=404, error_code="CHAPTER_NOT_FOUND")
    decision = decide(error, row(1), SETTINGS)
    assert isinstance(decision, GiveUp) and not decision.blocks_job
    assert (decision.failure.code, decision.failure.http_status, decision.failure.message) == (
        "CHAPTER_NOT_FOUND", 404, "The chapter does not exist")


@pytest.mark.parametrize("error", [errors.PermanentApiError("Invalid token", status=401),
                                   errors.PermanentApiError("not a creator", status=403,
                                                            error_code="COURSE_USER_NOT_CREATOR")])
def test_account_level_refusals_block_the_job(error):
    decision = decide(error, row(1), SETTINGS)
    assert isinstance(decision, GiveUp) and decision.blocks_job


def test_other_403_does_not_block_the_job():
    error = errors.PermanentApiError("no video", status=403, error_code="CHAPTER_VIDEO_UPLOAD_NOT_ENABLED")
    decision = decide(error, row(1), SETTINGS)
    assert isinstance(decision, GiveUp) and not decision.blocks_job


def test_backoff_is_random_every_time_also_at_the_cap():
    from tasks.backoff import retry_delay

    for attempt in (1, 8):
        samples = [retry_delay(attempt, 2.0, 60.0) for _ in range(50)]
        assert len(set(samples)) > 40 and all(0.75 * min(60.0, 2.0 * 2 ** (attempt - 1)) <= d for d in samples)
