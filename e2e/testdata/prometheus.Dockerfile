# A stand-in for the official Prometheus image (prom/prometheus), made from
# Debian's prometheus package (`make tools` installs it), so that
# `make test-e2e` pulls nothing. Debian's binaries are linked against glibc:
# the context holds them with the libraries `ldd` lists, at the same paths
# (bin/standin/prometheus/root, made by `make standins`). It keeps what
# docker-compose.yml relies on, as the official image has it:
# /bin/prometheus as the entrypoint, /bin/promtool (the health check), a
# /prometheus data folder the user nobody may write, and that user.
FROM scratch
COPY root/ /
WORKDIR /prometheus
USER 65534:65534
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
