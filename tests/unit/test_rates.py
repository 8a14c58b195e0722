"""Rates as written for global rate limits (config.rates): Celery's N/s, N/m, N/h; anything
else is one line saying how to write it."""

import pytest

from platform_core.config.rates import Rate
from platform_core.errors import BadRate


@pytest.mark.parametrize(
    ("text", "allowed", "period_ms", "step_ms"),
    [("20/s", 20, 1000, 50.0), ("100/m", 100, 60_000, 600.0), (" 3 / h ", 3, 3_600_000, 1.2e6)],
)
def test_a_rate_is_tasks_per_period(text, allowed, period_ms, step_ms):
    rate = Rate.parse(text)
    assert (rate.allowed, rate.period_ms, rate.step_ms) == (allowed, period_ms, step_ms)
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["20", "0/s", "-1/s", "20/d", "1.5/s", "fast", "", None, 20])
def test_anything_else_is_one_clear_line(text):
    with pytest.raises(BadRate, match=r"^celery_tasks\.pqs\.x: .* is not a rate; write N/s"):
        Rate.parse(text, "celery_tasks.pqs.x")
