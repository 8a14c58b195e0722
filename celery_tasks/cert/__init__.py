"""Tasks of the `cert` queue; each module here is discovered automatically."""
