"""Reads worth naming: a merchant's recipes, a machine's desired package."""
