package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/stack"
)

// TestConsulStallExpiresNoLiveInstance: a Consul agent that stalls (paused
// with SIGSTOP) for longer than the register TTL must not mark the
// instances it knows critical when it resumes, before it has looked at
// them. With a TTL check it did, by its own clock: after a 12 s pause
// TestRegistryPausedLosesNoCall saw it list for ~50 ms only the instance
// stopped during the pause, and hello's calls to it failed.
//
// The instance is paused too, right after Consul, so that no refresh of
// it is queued to mask a TTL check; Consul's HTTP check of it then times
// out 1 s after Consul resumes at the earliest, and until then the
// instance must be listed as it was before the stall.
func TestConsulStallExpiresNoLiveInstance(t *testing.T) {
	skipIfShort(t)
	const ttl = 2 * time.Second
	reg := stack.MustStartRegistry(t, "consul")
	u := mustStartService(t, reg, "user", "user", "--register_ttl", ttl.String(), "--register_interval", "1s")
	if err := reg.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Resume() })
	if err := u.Pause(); err != nil { // Stop, at cleanup, resumes it first
		t.Fatal(err)
	}
	time.Sleep(ttl + time.Second) // not a synchronisation: the stall itself
	if err := reg.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// Consul's HTTP check of the paused instance cannot fail sooner than
	// its 1 s timeout after the resume.
	for time.Since(resumed) < 500*time.Millisecond {
		ids, err := reg.IDs("user")
		if err != nil {
			continue // Consul still catching up
		}
		if since := time.Since(resumed); !slices.Contains(ids, u.ID) && since < 900*time.Millisecond {
			t.Fatalf("%v after Consul resumed it lists %v as passing, without %s, which it had no way to find dead yet; checks: %v",
				since.Round(time.Millisecond), ids, u.ID, consulChecks(t, reg, u.ID))
		}
	}
}
