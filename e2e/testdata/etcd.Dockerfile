# A stand-in for the official etcd image (gcr.io/etcd-development/etcd),
# made from the bin/etcd and bin/etcdctl that `make tools` builds, so that
# `make test-e2e` pulls nothing. Same layout as the official image: the
# binaries in /usr/local/bin, /var/lib/etcd as the working directory, and
# etcd as the default command. Built by `make standins` with
# bin/standin/etcd as the context.
FROM scratch
COPY etcd etcdctl /usr/local/bin/
COPY tmp /tmp
WORKDIR /var/lib/etcd/
CMD ["/usr/local/bin/etcd"]
