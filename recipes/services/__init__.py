"""Every write that carries a rule about recipes, packages and rollouts, by concept: `authoring`
(recipes and their versions), `packages` (building them). Callers import the module they need."""
