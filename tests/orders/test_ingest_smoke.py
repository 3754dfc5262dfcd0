"""The ingest tests live in test_ingest.py (and test_ingest_concurrency.py on PostgreSQL).

This module stays because other test modules import the example order from it under its old name.
"""

from tests.conftest import protocol_order as order

__all__ = ["order"]
