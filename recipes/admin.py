"""The recipes admin pages: recipe versions, packages and rollouts."""
