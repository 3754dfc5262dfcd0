"""Every write that carries a rule about recipes, packages and rollouts."""
