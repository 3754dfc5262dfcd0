"""Recipes, recipe packages and their rollouts to machines: what a machine can brew and how.

Builds on `inventory` (the materials a recipe's steps consume) and `devices` (the machines a package
is rolled out to). The rooms are laid out; the models come with the recipes issue.
"""
