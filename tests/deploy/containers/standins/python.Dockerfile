# STAND-IN for python:3.11-slim-bookworm: Debian's Python 3.11 where the upstream image
# keeps its own build, /usr/local/bin/python.
FROM acoustid-standin/debian:bookworm
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3 >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]
