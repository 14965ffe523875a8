"""Provider adapters: one module per vendor, one Protocol per kind (see base.py)."""
