"""The staff API of recipes and their versions."""

ROUTES: list = []  # (prefix, viewset, basename)
