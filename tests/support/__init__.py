"""What the tests' servers and fixtures share: a free port, waiting for a condition."""

from support.waiting import free_port, wait_for, wait_until

__all__ = ["free_port", "wait_for", "wait_until"]
