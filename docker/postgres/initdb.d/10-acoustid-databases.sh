#!/bin/sh
# Creates the three acoustid databases and the contrib extensions they use in the stock
# postgres image. The image runs /docker-entrypoint-initdb.d/* once, on an empty data
# directory, as $POSTGRES_USER; `acoustid-stack db upgrade` would create missing databases
# too, but creating the extensions needs this superuser while the app role may not be one.
# Idempotent, so it is also safe to run by hand against an existing server.
set -eu

databases="${DATABASES:-acoustid_app acoustid_fingerprint acoustid_ingest}"
extensions="pgcrypto intarray"

for db in $databases; do
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
        --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    for extension in $extensions; do
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$db" \
            --set extension="$extension" <<'SQL'
SELECT format('CREATE EXTENSION IF NOT EXISTS %I', :'extension')\gexec
SQL
    done
done
