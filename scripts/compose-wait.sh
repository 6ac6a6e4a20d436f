#!/usr/bin/env bash
# Waits until every container of a compose project reports healthy (each
# long-running service in docker-compose.yml has a health check, but those
# labelled micro-starter.ready=running, whose image has nothing to check
# with: running is enough) and every one-shot container (init: no health
# check) has exited 0, for `make up`: docker-compose 1.29 has no `up --wait`. Fails at once if a container has
# stopped otherwise, and after TIMEOUT seconds (default 120).
#
#   scripts/compose-wait.sh PROJECT
set -euo pipefail
project=$1
timeout=${TIMEOUT:-120}
deadline=$((SECONDS + timeout))

while :; do
	ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
	if [ -z "$ids" ]; then
		echo "compose project $project has no containers" >&2
		exit 1
	fi
	# One line per container: name, state, health, exit status, ready label.
	states=$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}} {{.State.ExitCode}} {{or (index .Config.Labels "micro-starter.ready") "-"}}' $ids)
	# A one-shot job that exited 0 is done, a container labelled ready when
	# running is ready when running; every other container must be
	# healthy, and running (or about to) while it is not yet.
	waiting=$(awk '!($2 == "exited" && $3 == "no-healthcheck" && $4 == 0) && !($2 == "running" && $5 == "running") && $3 != "healthy"' <<<"$states")
	if [ -z "$waiting" ]; then
		exit 0
	fi
	stopped=$(awk '$2 != "running" && $2 != "created" && $2 != "restarting"' <<<"$waiting")
	if [ -n "$stopped" ] || ((SECONDS >= deadline)); then
		echo "compose project $project: not every container is healthy${stopped:+ (some stopped)}:" >&2
		echo "$waiting" >&2
		echo "see: make logs (COMPOSE_PROJECT=$project)" >&2
		exit 1
	fi
	sleep 1
done
