#!/bin/sh
# STAND-IN for the nats alpine image's docker-entrypoint.sh.
set -eu
case "${1:-}" in
    -*) set -- nats-server "$@" ;;
esac
exec "$@"
