// Package poll waits for a condition to hold, up to a deadline: how tests and
// tools here wait for processes and registries, instead of sleeping a fixed
// time.
package poll

import (
	"testing"
	"time"
)

// Until calls f every interval until it returns nil or within has passed,
// and returns f's last error: nil if the condition came to hold.
func Until(within, every time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// Eventually fails tb with f's last error unless f returns nil within the
// time given. It checks every 20 ms, for conditions that are cheap to check.
func Eventually(tb testing.TB, within time.Duration, f func() error) {
	tb.Helper()
	if err := Until(within, 20*time.Millisecond, f); err != nil {
		tb.Fatalf("not within %v: %v", within, err)
	}
}
