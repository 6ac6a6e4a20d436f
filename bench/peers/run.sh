#!/bin/bash
# The starter beside kratos on one registry (REGISTRY=consul|etcd, default consul), interleaved round
# by round as ../shared/compare/compare.sh runs its five stacks on etcd only: gateway -> hello -> user
# x2 on loopback, 3 s warm-up, 10 s at full speed from 64 workers, best of ROUNDS (default 3). Uses
# the team's compare tools (COMPARE, default ../shared/compare beside the checkout), which build
# kratos v2.9.2 and the registries. Run from the checkout, alone on the machine; the gateway needs
# HTTP_RATE_LIMIT=0 (the load comes from one address). MEM=1 also prints each process's resident
# memory after the load, split into anonymous and file-backed pages (smaps_rollup), averaged over
# the rounds: the file-backed part follows the binary's size, the anonymous part the Go heap.
set -u
repo=$(git rev-parse --show-toplevel)
compare=${COMPARE:-$repo/../shared/compare}
BIN=$("$compare/tools.sh") || { echo "FAIL: could not build consul/etcd"; exit 1; }
. "$compare/lib.sh"
. "$compare/peers/lib-peers.sh"
REGISTRY=${REGISTRY:-consul}
ROUNDS=${ROUNDS:-3}
build_hammer
cd "$repo" && build_services && mv "$WORKDIR/svc" "$WORKDIR/proj"
build_peer kratos
rss() { local t=0 p; for p in "${PIDS[@]:1}"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $((t / 1024)); }
mem_split() { # label: each process's RSS, anonymous and file-backed KiB, one line each
	local i=0 p
	for p in "${PIDS[@]:1}"; do
		awk -v n="${names[$i]}" '/^Rss:/{r=$2} /^Anonymous:/{a=$2} END{print n, r, a, r - a}' "/proc/$p/smaps_rollup" >>"$WORKDIR/$1.mem"
		i=$((i + 1))
	done
}
names=(user1 user2 hello gateway) # the order start_stack and start_peer_stack start them in
drive() { # label
	"$HAMMER" -url "$G/hello?user_id=$ID" -rate 0 -d 3s -c 64 >/dev/null
	"$HAMMER" -url "$G/hello?user_id=$ID" -rate 0 -d 10s -c 64 >"$WORKDIR/$1.$r.json"
	echo "$(jfield "$WORKDIR/$1.$r.json" per_sec) $(jfield "$WORKDIR/$1.$r.json" p50_us) $(jfield "$WORKDIR/$1.$r.json" p99_us) $(jfield "$WORKDIR/$1.$r.json" failed) $(rss)" >>"$WORKDIR/$1.res"
	[ -z "${MEM:-}" ] || mem_split "$1"
	stop_all
}
stacks=(project kratos)
for r in $(seq 1 "$ROUNDS"); do
	for i in 0 1; do
		case ${stacks[$(((i + r) % 2))]} in
		project) SVC=$WORKDIR/proj; start_stack "$REGISTRY"; drive project ;;
		kratos) start_peer_stack kratos "$REGISTRY"; drive kratos ;;
		esac
	done
done
echo "registry: $REGISTRY, $ROUNDS rounds, $(date -u +%FT%TZ)"
echo "| stack | req/s (best) | all rounds | p50 us | p99 us | failed (all rounds) | RSS of 4 processes MiB |"
echo "|---|---:|---|---:|---:|---:|---:|"
for s in "${stacks[@]}"; do
	sort -k1,1nr "$WORKDIR/$s.res" | head -1 | {
		read -r rps p50 p99 failed mem
		all=$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$WORKDIR/$s.res")
		total=$(awk '{s += $4} END {print s}' "$WORKDIR/$s.res")
		printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$s" "$rps" "$all" "$p50" "$p99" "$total" "$mem"
	}
done
if [ -n "${MEM:-}" ]; then
	echo
	echo "| stack | process | RSS MiB | anonymous | file-backed |"
	echo "|---|---|---:|---:|---:|"
	for s in "${stacks[@]}"; do
		awk -v s="$s" '{n[$1]++; r[$1] += $2; a[$1] += $3; f[$1] += $4; o[NR] = $1}
			END {split("user1 user2 hello gateway", ps, " ")
				for (i = 1; i <= 4; i++) { p = ps[i]; if (!n[p]) continue
					printf "| %s | %s | %.1f | %.1f | %.1f |\n", s, p, r[p] / n[p] / 1024, a[p] / n[p] / 1024, f[p] / n[p] / 1024
					R += r[p] / n[p]; A += a[p] / n[p]; F += f[p] / n[p] }
				printf "| %s | all four | %.1f | %.1f | %.1f |\n", s, R / 1024, A / 1024, F / 1024}' "$WORKDIR/$s.mem"
	done
fi
