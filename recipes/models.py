"""Recipes, their versions, packages and rollouts (the recipes issue adds them)."""
