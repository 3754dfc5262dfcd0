"""The staff API of recipe packages: create (a build job), list, download."""

ROUTES: list = []  # (prefix, viewset, basename)
