package main

// readmeSection heads docs/resilience.md: the text proposed for the
// README's "Resilience" section, then how the figures below were measured.
func readmeSection(rows []row) string {
	return `# Resilience

## For the README: "Resilience"

With Consul or etcd, a call between two running services does not fail when another instance
stops (SIGTERM), crashes (kill -9) or answers every call with a 500, nor while the registry is
paused or restarted; ` + "`make chaos`" + ` measures this against real Consul and etcd processes and
writes the figures to docs/resilience.md. What is guaranteed, per registry:

- rolling restart and kill -9 of one of two instances: no failed call; a crashed instance leaves
  the registry within the register TTL (10 s);
- registry away (paused or restarted): calls go on, from the last list the registry gave (a
  lookup waits at most 1 s); every instance registers again within one register interval (5 s)
  after the registry returns; an instance stopped during the outage exits in under 5 s;
- an instance failing 3 calls in a row goes last in every caller's order for 10 s: one sick
  instance of two fails a handful of calls, not half;
- the circuit of an endpoint opens after about 20 failed calls (21-22 measured at 500 calls/s:
  calls already in flight when it opens), rejects in well under 1 ms while open, never opens on
  4xx, and closes after the callee recovers.

` + "`--resilience=off`" + ` runs the same binaries with plain go-micro defaults, for comparison only.

## How it is measured

` + "`make chaos`" + ` runs ` + "`go run ./bench/chaos -out docs/resilience.md`" + `: for each registry and each
scenario it starts a fresh Consul (` + "`agent -dev`" + `) or etcd (own data directory, kept across a restart),
then the user instances as processes on 127.0.0.1, drives user.UserService.Get at a fixed rate
through the client a service uses (pkg/service, so exactly the client chain the services run),
causes the event, and counts every call. "plain" is the same binaries and client with
` + "`--resilience=off`" + `: go-micro's gRPC client with its own selector, retry policy and timeouts, no
breaker, the plugins' registration, Stop without drain, TTL 60 s / interval 30 s as service.Init
sets them. Flags (` + "`go run ./bench/chaos -h`" + `) select registry, scenario, mode, rate, phase and outage
length for a short run. The sick instance (T4, T5) is a stand-in registered as "user" whose
handler always returns a 500 (` + "`bench/chaos/sick.go`" + `), not a hook in the real service.

What was changed inside go-micro's behaviour, in our own packages (no fork):
- pkg/discovery/stale.go: the client's lookups are bounded (1 s) and answered from the last good
  list when the registry fails (go-micro's cache serves a stale list but never extends it);
- pkg/discovery/etcd.go: registration with etcd goes through our own client (the plugin's
  KeepAliveOnce(context.TODO()) blocks while etcd is away, and its client reconnects with gRPC's
  default backoff of up to 120 s); lookups and watches stay the plugin's;
- pkg/service/registry.go: each registration and deregistration is bounded (1 s), so one hung
  call stops neither re-registration nor Stop; a stop whose deregistration fails skips the drain;
- pkg/wrappers/outlier.go: passive outlier detection per instance.

`
}
