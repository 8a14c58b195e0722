"""Hypothesis profiles: `ci` (the default, what `make test` runs), `soak`
(`pytest --hypothesis-profile=soak`: ten times the examples, for a long run) and
`regression` (only the kept @example cases)."""

from hypothesis import Phase, settings

# No per-example deadline: these are correctness properties, run beside busy worker
# processes on two cores; a slow example is not a failing one (speed: make bench).
settings.register_profile("ci", max_examples=1000, print_blob=True, deadline=None)
settings.register_profile("soak", max_examples=10000, print_blob=True, deadline=None)
settings.register_profile("regression", phases=[Phase.explicit])
settings.load_profile("ci")
