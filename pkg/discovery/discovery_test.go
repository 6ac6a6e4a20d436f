package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

func TestParseAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"consul:8500", []string{"consul:8500"}, true},
		{"a:1, b:2", []string{"a:1", "b:2"}, true},
		{"a:1,,b:2", nil, false},
		{"a:1,", nil, false},
	} {
		got, err := ParseAddresses(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(got, tc.want)) {
			t.Errorf("ParseAddresses(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestNewRejectsUnknownRegistry(t *testing.T) {
	for _, name := range Names {
		c := Default()
		c.Name = name
		if _, err := New(c); err != nil {
			t.Errorf("New(%s): %v", name, err)
		}
	}
	c := Default()
	c.Name = "zookeeper"
	if _, err := New(c); err == nil {
		t.Error("New(zookeeper): want an error")
	}
}

func TestPingGivesUpOnUnreachableRegistry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := Config{Name: "etcd", Addresses: []string{addr}, Timeout: 200 * time.Millisecond}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	tries := 0
	err = Ping(context.Background(), c, r, 2, 10*time.Millisecond, func(string, ...any) { tries++ })
	if !errors.Is(err, ErrUnreachable) || tries != 2 {
		t.Fatalf("Ping: %v after %d logged tries, want ErrUnreachable after 2", err, tries)
	}
}

func TestPingSkipsServerlessRegistries(t *testing.T) {
	c := Config{Name: "memory", Timeout: time.Second}
	r, _ := New(c)
	if err := Ping(context.Background(), c, r, 1, 0, t.Logf); err != nil {
		t.Fatal(err)
	}
}

func TestReady(t *testing.T) {
	r := registry.NewMemoryRegistry()
	var none *NoInstanceError
	if err := Ready(context.Background(), r, time.Second, "user"); !errors.As(err, &none) || none.Service != "user" {
		t.Fatalf("Ready with no user instance = %v, want a NoInstanceError for user", err)
	}
	err := r.Register(&registry.Service{Name: "user", Nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Ready(context.Background(), r, time.Second, "user"); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func TestCallDoesNotWaitForHungCall(t *testing.T) {
	hung := make(chan struct{})
	defer close(hung)
	err := Call(context.Background(), 50*time.Millisecond, func() error { <-hung; return nil })
	if err == nil {
		t.Fatal("Call: want an error for a call that never returns")
	}
}
