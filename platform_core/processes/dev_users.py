"""Development with the platform's Redis users on (``runplatform --acl``): a password per
user in var/redis-users/ (mode 0600, made once), the ACL file broker.acl writes for them,
and each process' environment naming its user and its password's file — as systemd's
LoadCredential= gives them on a deployed host."""

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from platform_core.broker import acl


@dataclass(frozen=True)
class DevUsers:
    folder: Path  # one file per user, holding its password

    @property
    def aclfile(self) -> Path:
        return self.folder / "users.acl"

    def password_file(self, user: str) -> Path:
        return self.folder / user

    def env(self, user: str, prefix: str = "") -> dict[str, str]:
        """``REDIS_USERNAME`` and ``REDIS_PASSWORD_FILE`` (after ``prefix``) for ``user``."""
        return {
            f"{prefix}REDIS_USERNAME": user,
            f"{prefix}REDIS_PASSWORD_FILE": str(self.password_file(user)),
        }


def prepare(var: Path) -> DevUsers:
    users = DevUsers(var / "redis-users")
    users.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    hashes = {}
    for user in acl.USERS:
        path = users.password_file(user)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
        password = path.read_text().strip()
        hashes[user] = [hashlib.sha256(password.encode()).hexdigest()]
    users.aclfile.write_text(acl.acl_file(hashes, sends={}))
    users.aclfile.chmod(0o600)
    return users
