// Package e2e runs the docker-compose stack of the repository
// (docker-compose.yml) on a real Docker engine, once with Consul and once with
// etcd as the registry, and checks it from the outside: health checks, the
// gateway's API over HTTPS, load balancing over both user instances, the
// registries' own view (with their administrators' credentials), Consul's
// DNS on its published port, what is locked down (published ports,
// registries refusing anonymous access but Consul's catalogue reads, which
// DNS needs, a container without a certificate unable to call user), a
// graceful stop under load, and `make down`.
//
// It holds only tests, behind the build tag e2e, so that `go test ./...`
// leaves them out. Run them with `make test-e2e`: it makes certs/ (make
// certs) and builds the service images and stand-ins for the Consul and
// etcd images first, so nothing is pulled. The tests skip when no Docker
// engine answers `docker info`.
package e2e
