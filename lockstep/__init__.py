"""Lockstep: a dashboard for running a security migration across a customer base."""

__version__ = "0.1.0"
