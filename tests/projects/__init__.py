"""Tests of the projects service, SDK and CLI."""
