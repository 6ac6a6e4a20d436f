# A stand-in for the official Consul image (hashicorp/consul), made from the
# bin/consul that `make tools` builds, so that `make test-e2e` pulls nothing.
# It keeps what docker-compose.yml relies on: /bin/consul, and `agent -dev
# -client 0.0.0.0` as the default command. Built by `make standins`
# with bin/standin/consul as the context.
FROM scratch
COPY consul /bin/consul
# Consul's dev mode keeps its data in a temporary directory.
COPY tmp /tmp
ENTRYPOINT ["/bin/consul"]
CMD ["agent", "-dev", "-client", "0.0.0.0"]
