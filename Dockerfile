# The image of one service, by name, or of cmd/stackinit (the compose
# stack's init step, SERVICE=stackinit):
#
#   make images        (or by hand:)
#   CGO_ENABLED=0 go build -trimpath -o bin/linux/ ./services/user
#   docker build --build-arg SERVICE=user -t micro-starter/user:dev .
#
# The binary is built on the host, static (CGO_ENABLED=0), and copied into an
# empty image: nothing is pulled, the image is the binary alone (~34 MB), and
# there is no shell in it. The health check is the binary itself with
# --health_probe (see docker-compose.yml).
FROM scratch
ARG SERVICE
COPY bin/linux/${SERVICE} /service
# nobody:nogroup; numeric, since a scratch image has no /etc/passwd.
USER 65534:65534
ENTRYPOINT ["/service"]
