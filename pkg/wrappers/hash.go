package wrappers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"slices"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
)

// HashKeyHeader names the hash key in the go-micro metadata of a call. A
// server puts the metadata of the call it serves into its handler's
// context, and go-micro's client sends that on every call made with it:
// the gateway sets the key once and every hop of the request carries it.
const HashKeyHeader = "Micro-Hash-Key"

// WithHashKey returns ctx whose calls carry key: with the hash strategy
// they go to the instance key hashes to, from every caller alike. An empty
// key is no key.
//
// The header holds a digest of key (32 hex digits), not key: gRPC refuses a
// header value that is not printable ASCII (a user id may be any UTF-8),
// its length is fixed whatever the key, and the user id is not in every
// call's headers.
func WithHashKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	sum := sha256.Sum256([]byte(key))
	return metadata.Set(ctx, HashKeyHeader, hex.EncodeToString(sum[:16]))
}

// hashKey is the key a call made with ctx carries, set by WithHashKey here
// or received by the server whose handler made ctx.
func hashKey(ctx context.Context) (string, bool) {
	key, ok := metadata.Get(ctx, HashKeyHeader)
	return key, ok && key != ""
}

// rendezvous orders nodes for key by rendezvous (highest random weight)
// hashing: each node scores hash(node id, key), highest first. The first
// node is the one key hashes to, and the rest are the order fail-over
// takes: when the first is dead or ejected its keys go to the second, and
// no other key moves. A node that joins takes from each of the others only
// the keys it now scores highest for (1/n of them), and one that leaves
// gives away only its own. Every caller computes the same order from the
// same node ids, with no state to share.
//
// Rendezvous rather than a ring with virtual nodes: no ring to build and
// keep in step with the registry, an even spread without tuning a number of
// virtual nodes, and the fail-over order falls out of the scores. Its cost,
// one hash per instance per call, is nothing next to a call at the sizes a
// client balances over. No library: the module graph has hash functions but
// no consistent hashing, this is a few lines, and go-micro's shard wrapper
// plugin takes a checksum modulo the number of nodes, which moves most keys
// when one joins (TestHashKeysMove).
func rendezvous(key string, nodes []*registry.Node) []*registry.Node {
	type scored struct {
		node  *registry.Node
		score uint64
	}
	s := make([]scored, len(nodes))
	for i, n := range nodes {
		s[i] = scored{n, score(n.Id, key)}
	}
	slices.SortFunc(s, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.node.Id, b.node.Id)
	})
	ordered := make([]*registry.Node, len(s))
	for i := range s {
		ordered[i] = s[i].node
	}
	return ordered
}

// score is FNV-1a of the node id and the key, then mixed: FNV-1a's bits
// alone are too little stirred for scores to compare fairly (unmixed, a
// fourth instance took 31 % of 10,000 keys, not a quarter; TestHashKeysMove).
func score(nodeID, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(nodeID))
	h.Write([]byte{0}) // ("ab", "c") and ("a", "bc") differ
	h.Write([]byte(key))
	return mix(h.Sum64())
}

// mix is the finaliser of MurmurHash3 (fmix64): every input bit changes
// each output bit with probability one half.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
