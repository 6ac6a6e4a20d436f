package plain

import (
	"testing"

	"go-micro.dev/v4/util/cmd"
)

// TestNewServiceKnowsRegistries: a plain service's --registry consul|etcd
// resolves. go-micro's command line looks the name up in
// cmd.DefaultRegistries, which the plugins' forks no longer fill in their
// init: without NewService's entries a plain service exits at Init with
// "Registry etcd not found" (make chaos and make bench's plain stack).
func TestNewServiceKnowsRegistries(t *testing.T) {
	NewService("plain-test")
	for _, name := range []string{"consul", "etcd"} {
		if _, ok := cmd.DefaultRegistries[name]; !ok {
			t.Errorf("--registry %s: not in go-micro's command line's registries", name)
		}
	}
}
