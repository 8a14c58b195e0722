"""One error hierarchy: every error the platform raises on purpose is a PlatformError and
still the built-in class callers caught before; the metrics' reason label is the typed
Rejection, every reason shown from zero."""

import pytest

from platform_core import errors
from platform_core.errors import BadMessage, PlatformError, Rejection
from platform_core.observe import metrics
from platform_core.observe.queue_stats import BeatStats, QueueStats, Snapshot

BUILT_IN = {
    errors.BadMessage: ValueError,
    errors.DelayTooLong: ValueError,
    errors.BadSiteName: ValueError,
    errors.BadTaskOption: ValueError,
    errors.UnknownTask: LookupError,
    errors.BadRate: ValueError,
    errors.WrongArguments: TypeError,
    errors.TooManyAttempts: RuntimeError,
    errors.BrokerUnavailable: ConnectionError,
    # Not a ConnectionError: kombu would retry it (a second copy if the first survived).
    errors.NotReplicated: RuntimeError,
    errors.SendNotAllowed: RuntimeError,
}


def test_every_platform_error_is_one_family_and_keeps_its_builtin_base():
    declared = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception) and value is not PlatformError
    }
    assert declared == {*BUILT_IN, errors.LeaseLost}
    for error, base in BUILT_IN.items():
        assert issubclass(error, PlatformError)
        assert issubclass(error, base)


def test_a_bad_message_carries_a_typed_reason():
    assert BadMessage("bad-body", "body.args", "must be a list").reason is Rejection.BAD_BODY
    with pytest.raises(ValueError, match="not-a-reason"):
        BadMessage("not-a-reason", "body", "x")


def test_the_rejected_metric_has_every_reason_from_zero():
    counted = {"bad-body": 2, "a-reason-of-an-older-version": 1}
    snapshot = Snapshot(
        queues={"cert": QueueStats("cert", {0: 0}, None, False, 0, 0, None, 0, counted, 0)},
        workers=[],
        beat=BeatStats(None, None),
        round_trips=1,
    )
    [rejected] = [f for f in metrics.families(snapshot) if f.name == "platform_rejected_messages"]
    samples = {s.labels["reason"]: s.value for s in rejected.samples if s.name.endswith("_total")}
    assert samples == {**dict.fromkeys(map(str, Rejection), 0), **counted}
