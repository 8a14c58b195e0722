"""The dev fleet's parent preloads only what reads no settings (processes.devfleet)."""

import subprocess
import sys
import textwrap


def test_preloading_configures_no_settings_and_imports_no_site():
    # In a fresh interpreter without DJANGO_SETTINGS_MODULE, as `make run`'s parent is:
    # a preloaded module that read a setting would fail here (ImproperlyConfigured), and
    # one that configured Django would leave every forked process on the wrong site.
    script = textwrap.dedent(
        """
        import os, sys
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        from platform_core.processes import devfleet
        devfleet.preload()
        from django.apps import apps
        from django.conf import settings
        assert not settings.configured
        assert not apps.ready
        sites = sorted(m for m in sys.modules if m.split(".")[0] in ("sites", "celery_tasks"))
        assert not sites, sites
        print(len(sys.modules))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 500  # it really preloaded (Celery, Django, Flower, …)
