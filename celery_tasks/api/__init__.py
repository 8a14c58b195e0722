"""Tasks of the `api` queue; each module here is discovered automatically."""
