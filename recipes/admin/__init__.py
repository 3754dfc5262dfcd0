"""The recipes admin pages, by concept: recipes and their versions, packages (rollouts to come)."""

from recipes.admin import packages, recipes  # noqa: F401  (each registers its pages)
