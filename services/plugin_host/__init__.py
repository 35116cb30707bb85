"""Serves a plugin class as its own process (``mlgrid plugin serve``); see host.py."""
