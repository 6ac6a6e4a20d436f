package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"

	"github.com/example/micro-starter/pkg/wrappers"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// keyLog records the hash key in the metadata of each call the fakes get.
type keyLog struct {
	mu   sync.Mutex
	keys []string // "" for a call without one
}

func (l *keyLog) record(ctx context.Context) {
	key, _ := metadata.Get(ctx, wrappers.HashKeyHeader)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
}

func (l *keyLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

type keyedUsers struct {
	*fakeUsers
	log *keyLog
}

func (k keyedUsers) Get(ctx context.Context, in *userpb.GetRequest, opts ...client.CallOption) (*userpb.GetResponse, error) {
	k.log.record(ctx)
	return k.fakeUsers.Get(ctx, in, opts...)
}

func (k keyedUsers) List(ctx context.Context, in *userpb.ListRequest, opts ...client.CallOption) (*userpb.ListResponse, error) {
	k.log.record(ctx)
	return k.fakeUsers.List(ctx, in, opts...)
}

type keyedHello struct {
	*fakeHello
	log *keyLog
}

func (k keyedHello) Greet(ctx context.Context, in *hellopb.GreetRequest, opts ...client.CallOption) (*hellopb.GreetResponse, error) {
	k.log.record(ctx)
	return k.fakeHello.Greet(ctx, in, opts...)
}

// TestAPIHashKey: the calls made for a request about one user carry that
// user's hash key, so that with --selector hash they go to the instance
// the user hashes to; other calls carry none. An id over the limit is
// refused and makes no call.
func TestAPIHashKey(t *testing.T) {
	keyOf := func(userID string) string {
		key, _ := metadata.Get(wrappers.WithHashKey(context.Background(), userID), wrappers.HashKeyHeader)
		return key
	}
	tests := []struct {
		method, target, body string
		status               int
		keys                 []string // of the calls made, in order
	}{
		{"GET", "/users/ada", "", http.StatusOK, []string{keyOf("ada")}},
		{"GET", "/users/alan", "", http.StatusOK, []string{keyOf("alan")}},
		{"GET", "/hello?user_id=ada", "", http.StatusOK, []string{keyOf("ada")}},
		{"POST", "/hello", `{"user_id":"alan"}`, http.StatusOK, []string{keyOf("alan")}},
		{"GET", "/hello?name=Bob", "", http.StatusOK, []string{""}},
		{"GET", "/users", "", http.StatusOK, []string{""}},
		{"GET", "/users/" + strings.Repeat("a", maxIDBytes+1), "", http.StatusBadRequest, nil},
		{"GET", "/hello?user_id=" + strings.Repeat("a", maxIDBytes+1), "", http.StatusBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target[:min(len(tt.target), 40)], func(t *testing.T) {
			log := &keyLog{}
			f := newFixture(t, &fakeUsers{get: getAda, list: listUsers}, &fakeHello{greet: greet}, nil)
			f.api.users = keyedUsers{f.users, log}
			f.api.hello = keyedHello{f.hello, log}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			if rec := f.serve(t, tt.method, tt.target, body); rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			got := log.all()
			if len(got) != len(tt.keys) {
				t.Fatalf("%d calls with keys %q, want keys %q", len(got), got, tt.keys)
			}
			for i := range got {
				if got[i] != tt.keys[i] {
					t.Errorf("call %d: hash key %q, want %q", i, got[i], tt.keys[i])
				}
			}
		})
	}
}
