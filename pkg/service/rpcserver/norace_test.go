//go:build !race

package rpcserver_test

// raceAllocs is what the race detector adds to a call's allocations.
const raceAllocs = 0
