package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"

	userpb "github.com/example/micro-starter/services/user/proto"
)

const testInstance = "user-test-1"

func newTestHandler(tb testing.TB) *Handler {
	tb.Helper()
	return &Handler{dir: mustLoad(tb, numberedUsers(tb, 25)), instance: testInstance}
}

// wantMicroError checks that err is a go-micro error with id and code whose
// detail contains detail.
func wantMicroError(tb testing.TB, err error, id string, code int32, detail string) {
	tb.Helper()
	e, ok := merrors.As(err)
	if !ok {
		tb.Fatalf("err = %v (%T), want a go-micro *errors.Error", err, err)
	}
	if e.Id != id || e.Code != code {
		tb.Errorf("err id %q code %d, want id %q code %d (err %v)", e.Id, e.Code, id, code, err)
	}
	if !strings.Contains(e.Detail, detail) {
		tb.Errorf("err detail %q, want it to contain %q", e.Detail, detail)
	}
	// What a caller sees after the error went over the wire as JSON text.
	if p := merrors.FromError(errors.New(err.Error())); p.Code != code || p.Id != id {
		tb.Errorf("error parsed from its text: id %q code %d, want %q %d", p.Id, p.Code, id, code)
	}
}

func TestHandlerErrors(t *testing.T) {
	h := newTestHandler(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		call   func() error
		id     string
		code   int32
		detail string
	}{
		{"Get empty id", func() error { return h.Get(ctx, &userpb.GetRequest{}, &userpb.GetResponse{}) }, "user.Get", 400, "id: required"},
		{"Get malformed id", func() error { return h.Get(ctx, &userpb.GetRequest{Id: "BAD!"}, &userpb.GetResponse{}) }, "user.Get", 400, `id: "BAD!"`},
		{"Get unknown id", func() error { return h.Get(ctx, &userpb.GetRequest{Id: "nobody"}, &userpb.GetResponse{}) }, "user.Get", 404, `"nobody"`},
		{"List negative page", func() error { return h.List(ctx, &userpb.ListRequest{Page: -1}, &userpb.ListResponse{}) }, "user.List", 400, "page: "},
		{"List page_size 101", func() error { return h.List(ctx, &userpb.ListRequest{PageSize: 101}, &userpb.ListResponse{}) }, "user.List", 400, "page_size: "},
		{"List negative page_size", func() error { return h.List(ctx, &userpb.ListRequest{PageSize: -5}, &userpb.ListResponse{}) }, "user.List", 400, "page_size: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMicroError(t, tt.call(), tt.id, tt.code, tt.detail)
		})
	}
}

func TestHandlerGet(t *testing.T) {
	h := newTestHandler(t)
	var rsp userpb.GetResponse
	if err := h.Get(context.Background(), &userpb.GetRequest{Id: "u07"}, &rsp); err != nil {
		t.Fatalf("Get(u07): %v", err)
	}
	u := rsp.GetUser()
	if u.GetId() != "u07" || u.GetName() != "User u07" || u.GetEmail() != "u07@example.com" {
		t.Errorf("Get(u07) user = %v", u)
	}
	if rsp.Instance != testInstance {
		t.Errorf("Instance = %q, want %q", rsp.Instance, testInstance)
	}
}

func TestHandlerList(t *testing.T) {
	h := newTestHandler(t)
	tests := []struct {
		name           string
		page, pageSize int32
		want           []string
	}{
		{"defaults", 0, 0, []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09"}},
		{"page 2 of 3", 2, 3, []string{"u03", "u04", "u05"}},
		{"last page", 5, 6, []string{"u24"}},
		{"past the end", 9, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rsp userpb.ListResponse
			if err := h.List(context.Background(), &userpb.ListRequest{Page: tt.page, PageSize: tt.pageSize}, &rsp); err != nil {
				t.Fatalf("List: %v", err)
			}
			var got []string
			for _, u := range rsp.Users {
				got = append(got, u.GetId())
				if u.GetName() != "User "+u.GetId() {
					t.Errorf("user %s has name %q", u.GetId(), u.GetName())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("users %v, want %v", got, tt.want)
			}
			if rsp.Total != 25 {
				t.Errorf("Total = %d, want 25", rsp.Total)
			}
			if rsp.Instance != testInstance {
				t.Errorf("Instance = %q, want %q", rsp.Instance, testInstance)
			}
		})
	}
}

func TestRPCErrorDefault(t *testing.T) {
	// An error the directory does not classify is the service's own failure.
	wantMicroError(t, rpcError("user.Get", errors.New("disk on fire")), "user.Get", 500, "disk on fire")
	// Classification goes through wrapping.
	wantMicroError(t, rpcError("user.List", fmt.Errorf("outer: %w", &FieldError{"page", "bad"})), "user.List", 400, "page: bad")
	wantMicroError(t, rpcError("user.Get", fmt.Errorf("outer: %w", ErrNotFound)), "user.Get", 404, "not found")
}
