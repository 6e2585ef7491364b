#!/bin/bash
# STAND-IN for the official redis image's docker-entrypoint.sh: `--protected-mode no` first
# (later options win), then drop to the redis user.
set -euo pipefail
if [ "${1:-}" = redis-server ]; then
    shift
    # Redis 7.2+ (the upstream image) reads config from stdin when "-" is the first or the
    # last argument; Debian's 7.0 only when first. Stdin becomes the config file instead.
    config=()
    if [ $# -gt 0 ] && [ "${!#}" = - ]; then
        set -- "${@:1:$#-1}"
        config=(/tmp/redis-stdin.conf)
        (umask 077 && cat >"${config[0]}")
    fi
    set -- redis-server "${config[@]}" --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis . "${config[@]}"
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
