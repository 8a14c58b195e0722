"""Rates as the platform writes them: Celery's form, ``N/s``, ``N/m`` or ``N/h`` (N a whole
number > 0), e.g. ``"20/s"`` — N tasks per second, minute or hour, across every worker."""

import re
from dataclasses import dataclass

from platform_core.errors import BadRate

_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
_PERIOD_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True)
class Rate:
    allowed: int  # tasks per period
    period_ms: int

    @classmethod
    def parse(cls, text: str, what: str = "rate") -> "Rate":
        found = _RATE.match(text) if isinstance(text, str) else None
        if not found or int(found[1]) == 0:
            raise BadRate(
                f"{what}: {text!r} is not a rate; write N/s, N/m or N/h with N > 0 "
                "(e.g. 20/s: twenty per second across every worker)"
            )
        return cls(int(found[1]), _PERIOD_MS[found[2]])

    @property
    def step_ms(self) -> float:
        """Time between two slots."""
        return self.period_ms / self.allowed

    def __str__(self) -> str:
        unit = {ms: unit for unit, ms in _PERIOD_MS.items()}[self.period_ms]
        return f"{self.allowed}/{unit}"
