"""Tasks of the `long_running` queue; each module here is discovered automatically."""
