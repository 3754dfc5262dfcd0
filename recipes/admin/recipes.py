"""Recipes and their versions in the admin: drafts edited with the schema's errors inline, diffs,
publishing."""
