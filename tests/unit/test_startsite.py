"""A site is one command: the skeleton, its name checks, and the sites already here
being exactly that skeleton (nothing hand-edited to drift from what startsite makes)."""

from pathlib import Path

import pytest

from platform_core.config.queues import QUEUES, SITES, WORKER_COMMANDS
from platform_core.config.site_skeleton import FILES, check_name, write_site
from platform_core.errors import BadSiteName

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("site", SITES)
def test_every_site_is_the_skeleton(site):
    for path, text in FILES.items():
        assert (ROOT / path.format(name=site)).read_text() == text.format(name=site), path


def test_sites_and_worker_commands_come_from_the_folders():
    folders = {
        path.name
        for path in (ROOT / "sites").iterdir()
        if (path / "__init__.py").exists() and path.name not in ("base", "long_running")
    }
    assert set(SITES) == folders
    assert WORKER_COMMANDS["green_door"] == "rungreendoorworker"
    assert WORKER_COMMANDS["long_running"] == "run_long_running_worker"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Kitchen", "lower-case"),
        ("9lives", "lower-case"),
        ("class", "lower-case"),
        ("a" * 21, "lower-case"),
        ("cert", "already taken"),
        ("base", "already taken"),
        ("greendoor", "rungreendoorworker, the command of 'green_door'"),
    ],
)
def test_a_bad_name_is_refused_with_the_reason(name, why):
    with pytest.raises(BadSiteName, match=why):
        check_name(name)


def test_write_site_makes_every_file_and_never_overwrites(tmp_path):
    written = write_site(tmp_path, "kitchen")
    assert {path.relative_to(tmp_path).as_posix() for path in written} == {
        path.format(name="kitchen") for path in FILES
    }
    assert 'SITE_NAME = "kitchen"' in (tmp_path / "sites/kitchen/settings.py").read_text()
    with pytest.raises(BadSiteName, match="already exists"):
        write_site(tmp_path, "kitchen", existing=QUEUES)
