#!/usr/bin/env bash
# Runs every service on this machine (two user instances), found through
# mDNS: nothing else to install. Ctrl-C stops them all (each
# deregisters and drains first). Calls between services are mutual TLS with
# the certificates `make certs` wrote into certs/ (make run makes them).
set -euo pipefail
cd "$(dirname "$0")/.."

export MICRO_REGISTRY="${MICRO_REGISTRY:-mdns}"
export MICRO_SERVER_ADDRESS="${MICRO_SERVER_ADDRESS:-127.0.0.1:0}"
http="${HTTP_ADDRESS:-127.0.0.1:8080}"
certs="${CERTS_DIR:-certs}"
export MICRO_TLS_CA="${MICRO_TLS_CA:-$certs/ca.crt}"

pids=()
stop() {
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

# SERVICES is the Makefile's list, which `make new` extends.
for svc in ${SERVICES:-user hello gateway}; do
	# Each service its own certificate, naming it.
	export MICRO_TLS_CERT="$certs/$svc.crt" MICRO_TLS_KEY="$certs/$svc.key"
	case "$svc" in
	user) # two instances, so that calls spread and fail over
		bin/user & pids+=($!)
		bin/user & pids+=($!) ;;
	gateway) HTTP_ADDRESS="$http" bin/gateway & pids+=($!) ;;
	*) "bin/$svc" & pids+=($!) ;;
	esac
done

echo "gateway on http://$http  (try: curl 'http://$http/hello?user_id=ada')  registry: $MICRO_REGISTRY" >&2
wait -n "${pids[@]}"
