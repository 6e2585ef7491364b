# STAND-IN for ghcr.io/astral-sh/uv:<version>: the same binary at /uv, from the PyPI wheel.
FROM scratch
COPY uv /uv
ENTRYPOINT ["/uv"]
