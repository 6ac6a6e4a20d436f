package rpcserver

import (
	"net"
	"testing"

	"google.golang.org/grpc/peer"
)

// The remote addresses held stay few and small whatever the connections
// come and go (keyed by the *peer.Peer, 1,024 of them were held, each with
// its TLS connection's state); an address of a type that cannot be a map
// key is formatted per call.
func TestRemotesBounded(t *testing.T) {
	var r remotes
	for i := range 1000 {
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000 + i}
		if got := r.of(&peer.Peer{Addr: addr}); got != addr.String() {
			t.Fatalf("remote %q, want %q", got, addr.String())
		}
	}
	n := 0
	r.m.Range(func(k, _ any) bool {
		n++
		if _, ok := k.(net.Addr); !ok {
			t.Errorf("key %T, want the net.Addr", k)
			return false
		}
		return true
	})
	if n > 256 {
		t.Errorf("%d remotes held, want at most 256", n)
	}
	if got := r.of(&peer.Peer{Addr: sliceAddr{"a", "b"}}); got != "a,b" {
		t.Errorf("remote %q, want a,b", got)
	}
}

// sliceAddr is a net.Addr that cannot be a map key.
type sliceAddr []string

func (sliceAddr) Network() string  { return "test" }
func (a sliceAddr) String() string { return a[0] + "," + a[1] }
