"""Alembic script location: `env.py`, the revision template and one history per database.

`versions/<database>/` holds that database's history; revision ids are sequence numbers
(`0001`, `0002`, …) within it. To add a migration, write the schema change in
`acoustid_stack.db.schema` first, then generate the file from the template::

    python -c "from alembic import command; from acoustid_stack.db.migrate import alembic_config;
    command.revision(alembic_config('fingerprint'), 'add foo', rev_id='0002')"

and fill in `upgrade()`/`downgrade()` with `op.*` calls (frozen: never import the schema
module from a migration). The integration test comparing the migrated database with the
schema module fails until both agree.
"""
