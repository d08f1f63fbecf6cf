"""Placeholder until the hand-out signals land."""
