package integration

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// TestHashSelector: with --selector hash, the requests for one user go to
// one user instance whichever of two gateways they come through, and
// hello's call to user for that user goes there too (the gateway's key
// travels in the call's metadata). The users spread over the instances.
func TestHashSelector(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		s := mustStartSystem(t, reg, 3, "--selector", "hash")
		second := mustStartService(t, reg, "gateway", "gateway-2", "--selector", "hash", "--http_address", "127.0.0.1:0")
		t.Cleanup(func() { second.MustSignal(t, syscall.SIGTERM) })
		gateways := []string{s.url, gatewayURL(t, second)}
		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, gateways[1]+"/readyz", nil); code != http.StatusOK {
				return fmt.Errorf("second gateway: GET /readyz: %d", code)
			}
			return nil
		})

		var list struct{ Users []struct{ ID string } }
		if code := get(t, s.url+"/users?page_size=100", &list); code != http.StatusOK || len(list.Users) < 6 {
			t.Fatalf("GET /users: %d, %d users", code, len(list.Users))
		}
		owner := map[string]string{} // user id -> the user instance its requests reach
		for _, u := range list.Users {
			for _, gw := range gateways {
				for range 2 {
					var user struct{ Instance string }
					if code := get(t, gw+"/users/"+u.ID, &user); code != http.StatusOK {
						t.Fatalf("%s/users/%s: %d", gw, u.ID, code)
					}
					var hello struct{ Instances map[string]string }
					if code := get(t, gw+"/hello?user_id="+u.ID, &hello); code != http.StatusOK {
						t.Fatalf("%s/hello?user_id=%s: %d", gw, u.ID, code)
					}
					if owner[u.ID] == "" {
						owner[u.ID] = user.Instance
					}
					if user.Instance != owner[u.ID] || hello.Instances["user"] != owner[u.ID] {
						t.Fatalf("user %s: %s answered /users from %s and hello's call from %s, want both from %s",
							u.ID, gw, user.Instance, hello.Instances["user"], owner[u.ID])
					}
				}
			}
		}
		reached := map[string]int{}
		for _, inst := range owner {
			reached[inst]++
		}
		if len(reached) < 2 {
			t.Fatalf("%d users all on %v: the test proves nothing", len(owner), reached)
		}
		t.Logf("users per instance: %v", reached)
	})
}
