"""Example Temporal workers for the durable.temporal collection."""

__version__ = "0.1.0"
