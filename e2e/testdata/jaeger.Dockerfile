# A stand-in for the official Jaeger v2 image (jaegertracing/jaeger), made
# from the static bin/jaeger that `make tools` builds from Jaeger's Go
# module, so that `make test-e2e` pulls nothing. It keeps what
# docker-compose.yml relies on: the binary at /cmd/jaeger/jaeger-linux as
# the entrypoint, a /tmp, a user that is not root. It has no web UI: the Go
# module's build embeds no UI assets (an npm build); the query API answers.
# Built by `make standins` with bin/standin/jaeger as the context.
FROM scratch
COPY jaeger /cmd/jaeger/jaeger-linux
COPY tmp /tmp
USER 10001
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
