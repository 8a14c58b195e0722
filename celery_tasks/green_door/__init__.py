"""Tasks of the `green_door` queue; each module here is discovered automatically."""
