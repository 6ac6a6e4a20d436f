package rolling

import (
	"testing"
	"time"
)

// Buckets past the window are still dropped, now when the second's first
// update makes a new bucket (upstream: at every update).
func TestOldBucketsDropped(t *testing.T) {
	n, r := NewNumber(), NewTiming()
	old := time.Now().Unix() - 61
	n.Buckets[old] = &numberBucket{Value: 5}
	r.Buckets[old] = &timingBucket{Durations: []time.Duration{time.Second}, count: 1, sum: time.Second}
	n.Increment(1)
	n.Increment(1) // the current bucket exists: nothing to walk
	r.Add(time.Millisecond)
	if _, ok := n.Buckets[old]; ok {
		t.Error("rolling.Number kept a bucket 61 s old")
	}
	if _, ok := r.Buckets[old]; ok {
		t.Error("rolling.Timing kept a bucket 61 s old")
	}
	if got := n.Sum(time.Now()); got != 2 {
		t.Errorf("sum %v, want 2", got)
	}
}

func BenchmarkRollingNumberIncrement(b *testing.B) {
	n := NewNumber()
	for i := 0; i < b.N; i++ {
		n.Increment(1)
	}
}

func BenchmarkRollingTimingAdd(b *testing.B) {
	r := NewTiming()
	for i := 0; i < b.N; i++ {
		r.Add(time.Millisecond)
	}
}
