package rolling

import (
	"testing"
	"time"
)

// Upstream's TestOrdinal (goconvey), its figures unchanged: with fewer than
// maxSamples calls per second the fork computes what upstream did.
func TestTimingPercentilesAsUpstream(t *testing.T) {
	if m := NewTiming().Mean(); m != 0 {
		t.Fatalf("mean of nothing %d, want 0", m)
	}
	r := NewTiming() // a new one: the figures are cached for a second
	durations := []int{1, 1004, 1004, 1004, 1004, 1004, 1004, 1004, 1004, 1004, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1005, 1006, 1006, 1006, 1006, 1007, 1007, 1007, 1008, 1015}
	var sum int
	for _, d := range durations {
		r.Add(time.Duration(d) * time.Millisecond)
		sum += d
	}
	for _, tc := range []struct {
		p    float64
		want uint32
	}{{0, 1}, {75, 1006}, {99, 1015}, {100, 1015}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("percentile %v: %d, want %d", tc.p, got, tc.want)
		}
	}
	if got, want := r.Mean(), uint32(sum/len(durations)); got != want {
		t.Errorf("mean %d, want %d", got, want)
	}
}

// Each one-second bucket keeps at most maxSamples durations however many
// calls it saw (upstream kept them all); the mean stays exact.
func TestTimingKeepsBoundedSample(t *testing.T) {
	r := NewTiming()
	const calls = 100_000
	for i := range calls {
		r.Add(time.Duration(i%1000+1) * time.Millisecond) // 1..1000 ms, evenly
	}
	r.Mutex.RLock()
	for ts, b := range r.Buckets {
		if len(b.Durations) > maxSamples {
			t.Errorf("bucket %d keeps %d durations, want at most %d", ts, len(b.Durations), maxSamples)
		}
	}
	r.Mutex.RUnlock()
	if got := r.Mean(); got != 500 { // (1 + 1000) / 2, truncated
		t.Errorf("mean %d ms, want 500", got)
	}
	// A uniform sample of 100 to 200 of 1..1000: its median is well inside.
	if got := r.Percentile(50); got < 250 || got > 750 {
		t.Errorf("median %d ms, want about 500", got)
	}
}

// A kept duration stands for its bucket's calls: a busy second outweighs a
// quiet one, as when upstream kept every duration.
func TestTimingWeighsBucketsByCalls(t *testing.T) {
	r := NewTiming()
	now := time.Now().Unix()
	quiet, busy := &timingBucket{count: maxSamples}, &timingBucket{count: 100 * maxSamples}
	for range maxSamples {
		quiet.Durations = append(quiet.Durations, time.Millisecond)
		quiet.sum += time.Millisecond
		busy.Durations = append(busy.Durations, 100*time.Millisecond)
	}
	busy.sum = time.Duration(busy.count) * 100 * time.Millisecond
	r.Buckets[now-2], r.Buckets[now-1] = quiet, busy
	if got := r.Percentile(0); got != 1 {
		t.Errorf("shortest %d ms, want 1", got)
	}
	if got := r.Percentile(50); got != 100 {
		t.Errorf("median %d ms, want 100 (1 ms is 1 %% of the calls)", got)
	}
	if got := r.Mean(); got != 99 { // (100*1 + 10,000*100) / 10,100 = 99.0
		t.Errorf("mean %d ms, want 99", got)
	}
}
