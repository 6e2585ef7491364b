# STAND-IN for nats:2-alpine and nats:2: Debian's nats-server 2.9 (JetStream), wget for the
# compose healthcheck, and the alpine image's rule that arguments starting with "-" are
# nats-server flags.
FROM acoustid-standin/debian:bookworm
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends nats-server wget >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 nats-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 4222 8222
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["nats-server"]
