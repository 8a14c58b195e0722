"""Secrets from the environment (read when used, never kept), and URLs fit for a log line.

Settings are read once, typed, in platform_core.config.environment."""

import os
from urllib.parse import quote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured


def read_secret(name: str) -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (never argv)."""
    value = os.environ.get(name, "")
    if value:
        return value
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return ""


def with_credentials(url: str, username: str, password_variable: str) -> str:
    """``url`` logging in as ``username`` with the secret ``password_variable`` names
    (read now, from NAME or NAME_FILE); each sentinel of kombu's ``;`` form alike.
    Unchanged when neither is set (development: a local Redis without users)."""
    password = read_secret(password_variable)
    if not (username or password):
        return url
    if not password:
        raise ImproperlyConfigured(
            f"The Redis user {username!r} is set but no password: set {password_variable}_FILE "
            f"to the file holding it (systemd: LoadCredential=, see docs/operations.md)"
        )
    login = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    chunks = []
    for chunk in url.split(";"):
        parts = urlsplit(chunk)
        host = parts.netloc.rpartition("@")[2]
        chunks.append(urlunsplit(parts._replace(netloc=login + host)))
    return ";".join(chunks)


def redacted(url: str) -> str:
    """A URL fit for a log line or an error: its password replaced by ***. kombu's
    Sentinel form (``sentinel://…;sentinel://…``) is redacted sentinel by sentinel."""
    if ";" in url:
        return ";".join(redacted(chunk) for chunk in url.split(";"))
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
