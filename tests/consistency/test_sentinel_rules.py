"""The sentinels' rules are written twice until the role takes them from the generator:
Ansible's role (platform_sentinel vars, rendered by its template) and broker.acl (what
tests/integration/test_acl.py runs a real sentinel with). They must say the same."""

from pathlib import Path

import yaml

from platform_core.broker import acl

ROLE_VARS = Path(__file__).parents[2] / "ansible/roles/platform_sentinel/vars/main.yml"


def same(role_rules: str, generated: list[str]) -> bool:
    """Equal up to the order of the granted commands (which commute after -@all)."""
    words = role_rules.split()
    return words[0] == generated[0] and sorted(words[1:]) == sorted(generated[1:])


def test_the_roles_sentinel_rules_are_the_generators():
    rules = yaml.safe_load(ROLE_VARS.read_text())["__platform_sentinel_rules"]
    generated = {}
    for line in acl.sentinel_users({user: ["h"] for user in acl.USERS}).splitlines()[1:]:
        _, user, *words = line.split()
        generated[user] = [w for w in words if w not in ("resetpass", "resetchannels", "#h", "on")]
    assert same(rules["admin"], generated[acl.ADMIN])
    assert same(rules["sentinel"], ["resetchannels", *generated[acl.SENTINEL]])
    for user in acl.USERS:
        if user not in (acl.ADMIN, acl.SENTINEL, acl.REPLICATION):
            assert same(rules["client"], ["resetchannels", *generated[user]]), user
