"""The Lua the platform runs inside Redis, so one round trip does what kombu does in
several, atomically; each script is a file in ``lua/`` with its KEYS/ARGV stated at its top.

A script is sent once per Redis server (SCRIPT LOAD) and called by its SHA1 (EVALSHA)
after that: the fetch script is ~1.5 KB that would otherwise go over the wire, and be
hashed by Redis, on every fetch. When Redis answers NOSCRIPT (it restarted, or its
script cache was flushed), the script is loaded and the call made again.

Shared helpers are files too: a line ``--#include <name>`` is replaced by ``lua/<name>.lua``
when the script is read. The ``#!lua`` first line makes a script "flagged" (Redis >= 7):
Redis refuses the whole script when it is out of memory, before it pops anything,
instead of failing half-way after an item has already left its queue.

fence: kombu-redis-held-format (platform_core/config/fences.py): the held lists keep
kombu's Redis envelope byte for byte; lua/mark_redelivered.lua marks it as kombu does.
"""

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import redis

_INCLUDE = re.compile(r"^--#include (\w+)$", re.MULTILINE)


_USES_CLOCK = "local CLOCK = KEYS[#KEYS]"


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


def _expanded(source: str) -> str:
    """``source`` with its includes (and theirs) in place."""
    return _INCLUDE.sub(lambda include: _expanded(_read(include[1])).rstrip("\n"), source)


@dataclass(frozen=True)
class Script:
    """One script: its source (helpers included) and the SHA1 Redis knows it by."""

    name: str
    source: str

    @classmethod
    def read(cls, name: str) -> "Script":
        return cls(name, _expanded(_read(name)))

    @cached_property
    def uses_clock(self) -> bool:
        """Whether the script reads a clock (lua/clock.lua takes it as the last key)."""
        return _USES_CLOCK in self.source

    def _keys(self, keys, clock) -> tuple:
        """The caller's keys, then the clock of their room (keys.Room.clock) for a script
        that reads one."""
        if self.uses_clock != (clock is not None):
            raise TypeError(f"{self.name}: clock= {'required' if self.uses_clock else 'unused'}")
        return (*keys, clock) if self.uses_clock else tuple(keys)

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, client: redis.Redis, keys=(), args=(), clock=None):
        """EVALSHA on ``client``; loaded first if this Redis does not know it yet."""
        keys = self._keys(keys, clock)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.load(client)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def load(self, client: redis.Redis) -> None:
        client.script_load(self.source)

    def command(self, keys=(), args=(), clock=None) -> tuple:
        """The EVALSHA command's arguments, for a pipeline or a raw connection."""
        keys = self._keys(keys, clock)
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


FETCH = Script.read("fetch")
RENEW = Script.read("renew")
SWEEP = Script.read("sweep")
RESTORE = Script.read("restore")
RELEASE = Script.read("release")
PARK = Script.read("park")
PROMOTE = Script.read("promote")
STAMP_TIME = Script.read("stamp_time")
ENQUEUE_ONCE = Script.read("enqueue_once")
STORE_RESULT = Script.read("store_result")
ENQUEUE_UNIQUE = Script.read("enqueue_unique")
RELEASE_UNIQUE = Script.read("release_unique")
CANCEL = Script.read("cancel")
ADMIT = Script.read("admit")
GATE = Script.read("gate")
ALL = (
    FETCH,
    RENEW,
    SWEEP,
    RESTORE,
    RELEASE,
    PARK,
    PROMOTE,
    STAMP_TIME,
    ENQUEUE_ONCE,
    STORE_RESULT,
    ENQUEUE_UNIQUE,
    RELEASE_UNIQUE,
    CANCEL,
    ADMIT,
    GATE,
)
