"""Benchmarks of coffeeshop (see README.md). Nothing here is imported by the application."""
