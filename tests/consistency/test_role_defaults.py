"""Ports and addresses the provisioning states are the ones the code uses by default."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from platform_core.config.environment import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / f"ansible/roles/{role}/defaults/main.yml").read_text())


def test_redis_listens_where_the_code_looks_by_default():
    redis_url = DEFAULTS.redis_url
    assert (
        role_defaults("platform_endpoints")["platform_endpoints_redis_port"]
        == urlsplit(redis_url).port
    )


def test_no_role_restates_a_data_service_port():
    stated = {"6379", "5432"}
    for path in (ROOT / "ansible").rglob("*"):
        if path.is_file() and "platform_endpoints" not in path.parts:
            found = stated & set(re.findall(r"\b\d{4}\b", path.read_text(errors="ignore")))
            assert not found, (
                f"{path.relative_to(ROOT)} states port {found}; use platform_endpoints"
            )


def test_the_vagrant_box_forwards_flowers_port():
    vagrantfile = (ROOT / "Vagrantfile").read_text()
    assert f"guest: {DEFAULTS.flower_port}," in vagrantfile
