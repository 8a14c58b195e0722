"""Bad configuration stops a process at start-up with the setting to fix, no traceback."""

import subprocess

import pytest

from harness.processes import free_port, manage


def run(command, **env_overrides):
    import os

    env = {**os.environ, "USE_CELERY": "1", **env_overrides}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(manage(*command), env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (
            ["runcertworker"],
            {"REDIS_URL": "redis://127.0.0.1:{port}/0"},
            "Cannot reach the broker at redis://127.0.0.1:{port}/0",
        ),
        (
            ["run_long_running_worker"],
            {"LONG_RUNNING_SITE": "kitchen"},
            "LONG_RUNNING_SITE='kitchen' is not a site of this platform",
        ),
        (
            ["runpqsworker"],
            {"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": ""},
            "DJANGO_SECRET_KEY is not set",
        ),
        (
            ["runflower"],
            {"FLOWER_BASIC_AUTH": "", "FLOWER_BASIC_AUTH_FILE": ""},
            "FLOWER_BASIC_AUTH is not set",
        ),
        (["runapiworker"], {"USE_CELERY": "0"}, "USE_CELERY is off"),
        (["runcertworker"], {"USE_CELERY": "maybe"}, "USE_CELERY='maybe' is not a boolean"),
    ],
)
def test_bad_configuration_names_the_setting(command, env, message):
    port = free_port()  # nothing listens here
    env = {key: value.format(port=port) for key, value in env.items()}
    result = run(command, **env)
    assert result.returncode != 0
    assert message.format(port=port) in result.stderr
    assert "Traceback" not in result.stderr
