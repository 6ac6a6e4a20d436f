package poll

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	tests := []struct {
		name      string
		okAfter   int // calls before f succeeds; -1: never
		wantErr   bool
		wantCalls int // exact; 0: at least 2
	}{
		{"holds at once", 0, false, 1},
		{"holds on the third call", 2, false, 3},
		{"never holds", -1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := Until(50*time.Millisecond, time.Millisecond, func() error {
				calls++
				if tt.okAfter >= 0 && calls > tt.okAfter {
					return nil
				}
				return fmt.Errorf("call %d: not yet", calls)
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantCalls > 0 && calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr && (calls < 2 || err.Error() != fmt.Sprintf("call %d: not yet", calls)) {
				t.Errorf("after %d calls got %v, want the last call's error", calls, err)
			}
		})
	}
}

func TestUntilWaitsOutTheDeadline(t *testing.T) {
	start := time.Now()
	err := Until(30*time.Millisecond, 5*time.Millisecond, func() error { return errors.New("no") })
	if err == nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("returned %v after %v, want an error after at least 30ms", err, time.Since(start))
	}
}

func TestUntilStopsAtAFinalError(t *testing.T) {
	exited := errors.New("exited")
	calls := 0
	err := Until(time.Minute, time.Millisecond, func() error {
		calls++
		if calls == 2 {
			return Final(fmt.Errorf("server: %w", exited))
		}
		return errors.New("not yet")
	})
	if calls != 2 || !errors.Is(err, exited) || err.Error() != "server: exited" {
		t.Errorf("after %d calls got %v, want the final error of the second call, unmarked", calls, err)
	}
}
