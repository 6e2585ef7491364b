"""The three PostgreSQL databases (app, fingerprint, ingest): schemas and migrations.

`schema` holds one SQLAlchemy Core `MetaData` per database (also used to build queries),
`migrate` creates the databases and moves each along its own Alembic history, and
`commands` is `acoustid-stack db …`.
"""
