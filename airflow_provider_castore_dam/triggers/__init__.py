"""Triggers of the Castore dam provider."""
