# STAND-IN base: the debootstrap image plus this machine's CA certificates and apt sources
# (the egress intercepts TLS), so apt and pip work in every image built on it.
FROM acoustid-standin/debootstrap:bookworm
COPY host/ca-certificates/ /usr/local/share/ca-certificates/
COPY host/debian.sources /etc/apt/sources.list.d/debian.sources
COPY host/apt.conf /etc/apt/apt.conf.d/99-standin-host
RUN rm -f /etc/apt/sources.list && update-ca-certificates >/dev/null
# uv trusts its bundled roots only; the egress's CA is in the system store.
ENV UV_NATIVE_TLS=1
