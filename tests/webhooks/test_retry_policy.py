"""Outcome classification, Retry-After parsing and the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tasks.webhooks.delivery import classify_status, retry_after_seconds, retry_delay
from tasks.webhooks.settings import DEFAULT_RETRY_SCHEDULE


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "succeeded"), (204, "succeeded"), (299, "succeeded"), (410, "gone"), (408, "retry"), (425, "retry"),
     (429, "retry"), (500, "retry"), (503, "retry"), (400, "failed"), (401, "failed"), (404, "failed"),
     (301, "failed")],
)
def test_status_classification(status, outcome):
    assert classify_status(status) == outcome


def test_retry_after_as_seconds_or_http_date():
    assert retry_after_seconds("120") == 120
    in_a_minute = datetime.now(UTC) + timedelta(seconds=60)
    assert 50 <= retry_after_seconds(format_datetime(in_a_minute, usegmt=True)) <= 61
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_schedule_is_svix_like_and_ends():
    delays = [retry_delay(attempts, None, DEFAULT_RETRY_SCHEDULE) for attempts in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


def test_retry_after_only_pushes_later_and_is_capped():
    assert retry_delay(1, 120, DEFAULT_RETRY_SCHEDULE) == 120
    assert retry_delay(2, 1, DEFAULT_RETRY_SCHEDULE) == 300
    assert retry_delay(1, 10**9, DEFAULT_RETRY_SCHEDULE) == max(DEFAULT_RETRY_SCHEDULE)
