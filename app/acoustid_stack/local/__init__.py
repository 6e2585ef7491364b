"""Embedded services: start PostgreSQL, Redis and NATS as child processes.

One code path serves `acoustid-stack up` and the test suite (DESIGN.md §9).
"""
