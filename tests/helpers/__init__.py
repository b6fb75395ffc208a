"""Helpers the test modules share (tests never import one another)."""
