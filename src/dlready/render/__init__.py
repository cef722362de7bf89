"""Renderers: read the model and the report, never probe."""
