package rolling

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Timing maintains time Durations for each time bucket.
// The Durations are kept in an array to allow for a variety of
// statistics to be calculated from the source data.
type Timing struct {
	Buckets map[int64]*timingBucket
	Mutex   *sync.RWMutex

	CachedSortedDurations []time.Duration
	LastCachedTime        int64

	// Fork: for the time of the cache, the calls the first i+1 sorted durations stand for, and
	// the mean of all calls.
	cachedCounts []float64
	cachedMean   time.Duration
}

// maxSamples bounds the durations a bucket keeps (fork). Upstream kept every call's, for 60 s:
// about 0.5 MiB per 1,000 calls/s. Past maxSamples, a new duration replaces a kept one at random
// (reservoir sampling), so that the kept ones are a uniform sample of the second's calls.
const maxSamples = 100

type timingBucket struct {
	Durations []time.Duration
	count     int           // durations added (fork)
	sum       time.Duration // of the durations added (fork)
}

// weighted is a kept duration and the number of calls it stands for (fork).
type weighted struct {
	d time.Duration
	n float64
}

// NewTiming creates a RollingTiming struct.
func NewTiming() *Timing {
	r := &Timing{
		Buckets: make(map[int64]*timingBucket),
		Mutex:   &sync.RWMutex{},
	}
	return r
}

type byDuration []time.Duration

func (c byDuration) Len() int           { return len(c) }
func (c byDuration) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c byDuration) Less(i, j int) bool { return c[i] < c[j] }

// SortedDurations returns an array of time.Duration sorted from shortest
// to longest that have occurred in the last 60 seconds.
//
// Fork: a sample of them, at most maxSamples per second.
func (r *Timing) SortedDurations() []time.Duration {
	sorted, _, _ := r.snapshot()
	return sorted
}

// snapshot returns the sorted durations of the last 60 seconds, the calls the first i+1 of them
// stand for, and the mean of all calls; computed again at most once a second (fork: upstream's
// SortedDurations, which also returned its cache without the lock).
func (r *Timing) snapshot() ([]time.Duration, []float64, time.Duration) {
	r.Mutex.RLock()
	t := r.LastCachedTime
	sorted, counts, mean := r.CachedSortedDurations, r.cachedCounts, r.cachedMean
	r.Mutex.RUnlock()
	if t+time.Duration(1*time.Second).Nanoseconds() > time.Now().UnixNano() {
		// don't recalculate if current cache is still fresh
		return sorted, counts, mean
	}

	var samples []weighted
	var count int
	var sum time.Duration
	now := time.Now()
	r.Mutex.Lock()
	defer r.Mutex.Unlock()
	for timestamp, b := range r.Buckets {
		// TODO: configurable rolling window
		if timestamp >= now.Unix()-60 && len(b.Durations) > 0 {
			n := float64(b.count) / float64(len(b.Durations))
			for _, d := range b.Durations {
				samples = append(samples, weighted{d, n})
			}
			count += b.count
			sum += b.sum
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].d < samples[j].d })
	sorted, counts, mean = nil, nil, 0
	if len(samples) > 0 {
		sorted, counts = make([]time.Duration, len(samples)), make([]float64, len(samples))
		var c float64
		for i, s := range samples {
			c += s.n
			sorted[i], counts[i] = s.d, c
		}
		mean = sum / time.Duration(count)
	}
	r.CachedSortedDurations, r.cachedCounts, r.cachedMean = sorted, counts, mean
	r.LastCachedTime = time.Now().UnixNano()
	return sorted, counts, mean
}

func (r *Timing) getCurrentBucket() *timingBucket {
	r.Mutex.RLock()
	now := time.Now()
	bucket, exists := r.Buckets[now.Unix()]
	r.Mutex.RUnlock()

	if !exists {
		r.Mutex.Lock()
		defer r.Mutex.Unlock()

		r.Buckets[now.Unix()] = &timingBucket{}
		bucket = r.Buckets[now.Unix()]
		// Fork: only with a new bucket, as rolling.Number's.
		r.removeOldBuckets()
	}

	return bucket
}

func (r *Timing) removeOldBuckets() {
	now := time.Now()

	for timestamp := range r.Buckets {
		// TODO: configurable rolling window
		if timestamp <= now.Unix()-60 {
			delete(r.Buckets, timestamp)
		}
	}
}

// Add appends the time.Duration given to the current time bucket.
func (r *Timing) Add(duration time.Duration) {
	b := r.getCurrentBucket()

	r.Mutex.Lock()
	defer r.Mutex.Unlock()

	b.count++
	b.sum += duration
	if len(b.Durations) < maxSamples {
		b.Durations = append(b.Durations, duration)
	} else if i := rand.IntN(b.count); i < maxSamples {
		b.Durations[i] = duration
	}
}

// Percentile computes the percentile given with a linear interpolation.
//
// Fork: the shortest duration such that it and the shorter ones stand for at least p % of the
// calls; with at most maxSamples calls per second, upstream's (each duration one call).
func (r *Timing) Percentile(p float64) uint32 {
	sorted, counts, _ := r.snapshot()
	if len(sorted) == 0 {
		return 0
	}
	pos := sort.SearchFloat64s(counts, (p/float64(100))*counts[len(counts)-1])
	if pos == len(sorted) { // rounding
		pos--
	}
	return uint32(sorted[pos].Nanoseconds() / 1000000)
}

// Mean computes the average timing in the last 60 seconds.
//
// Fork: of every call, not of the sample; in whole milliseconds (upstream converted nanoseconds
// to uint32 first, which wrapped past 4.3 s).
func (r *Timing) Mean() uint32 {
	_, _, mean := r.snapshot()
	return uint32(mean.Milliseconds())
}
