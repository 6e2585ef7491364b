"""Submissions on their way from the api to the worker: the JetStream doorbell (DESIGN.md §2).

The ingest database row is the truth; a NATS message only tells a worker to look at it.
"""
