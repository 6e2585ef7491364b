"""The submission worker (`acoustid-stack run worker`): JetStream consumer + importer.

- `importer`: import one submission by id, idempotently (DESIGN.md §2, reference §4.2).
- `consumer`: the durable pull consumer that feeds the importer and acks/naks messages.
- `locks`: the advisory locks that keep two workers from creating the same track twice.
"""
