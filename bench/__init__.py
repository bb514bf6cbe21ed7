"""Benchmarks: each prints figures and records them; none is a timed test."""
