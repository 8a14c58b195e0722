"""Tasks of the `pqs` queue; each module here is discovered automatically."""
