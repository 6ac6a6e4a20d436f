//go:build race

package rpcserver_test

// raceAllocs is what the race detector adds to a call's allocations (some
// of it because it drops pooled JSON encoders and decoders at random).
const raceAllocs = 15
