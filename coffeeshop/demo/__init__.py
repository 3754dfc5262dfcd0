"""The demo data behind the first `make run`: the demo fleets and their week of sales and connectivity."""
