"""Artifacts on the client side: upload, download, list, and the fluent helpers."""
