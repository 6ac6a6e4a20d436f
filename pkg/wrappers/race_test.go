//go:build race

package wrappers

// raceAllocs is what the race detector adds to a call's allocations.
const raceAllocs = 8
