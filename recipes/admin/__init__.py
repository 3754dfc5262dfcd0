"""The recipes admin pages, by concept: recipes and their versions, packages,
rollouts."""

from recipes.admin import packages, recipes, rollouts  # noqa: F401  (each registers its pages)
