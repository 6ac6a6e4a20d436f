// Package poll waits for a condition to hold, up to a deadline: how tests and
// tools here wait for processes and registries, instead of sleeping a fixed
// time.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Until calls f every interval until it returns nil or within has passed,
// and returns f's last error: nil if the condition came to hold. An error
// marked Final ends the wait at once.
func Until(within, every time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		var final finalError
		if errors.As(err, &final) {
			return final.err
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// Final marks err as one that waiting cannot change, such as the exit of
// the process being waited for: Until returns err at once.
func Final(err error) error { return finalError{err} }

type finalError struct{ err error }

func (f finalError) Error() string { return f.err.Error() }
func (f finalError) Unwrap() error { return f.err }

// Eventually fails tb with f's last error unless f returns nil within the
// time given. It checks every 20 ms, for conditions that are cheap to check.
func Eventually(tb testing.TB, within time.Duration, f func() error) {
	tb.Helper()
	if err := Until(within, 20*time.Millisecond, f); err != nil {
		tb.Fatalf("not within %v: %v", within, err)
	}
}
