"""Every write to the material catalogue and the bins that carries a rule."""
