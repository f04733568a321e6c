"""Development tools that are not part of the product: the synthetic city (``generate_city``) and the
benchmark commands. Left out of the built package and the container image; the settings add the app
only where this package is importable (a checkout)."""
