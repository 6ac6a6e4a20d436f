package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// mustLoad builds a Directory from JSON text, failing the test on error.
func mustLoad(tb testing.TB, text string) *Directory {
	tb.Helper()
	d, err := LoadDirectory(strings.NewReader(text))
	if err != nil {
		tb.Fatalf("LoadDirectory: %v", err)
	}
	return d
}

// numberedUsers returns the JSON text of n users with ids u00, u01, ...
// given in reverse order, so that tests also see the directory sort them.
func numberedUsers(tb testing.TB, n int) string {
	tb.Helper()
	users := make([]User, 0, n)
	for i := n - 1; i >= 0; i-- {
		id := fmt.Sprintf("u%02d", i)
		users = append(users, User{ID: id, Name: "User " + id, Email: id + "@example.com"})
	}
	b, err := json.Marshal(users)
	if err != nil {
		tb.Fatalf("marshal users: %v", err)
	}
	return string(b)
}

func ids(users []User) []string {
	out := make([]string, 0, len(users))
	for _, u := range users {
		out = append(out, u.ID)
	}
	return out
}

// wantFieldError checks that err is an ErrInvalid naming field.
func wantFieldError(tb testing.TB, err error, field string) {
	tb.Helper()
	if !errors.Is(err, ErrInvalid) {
		tb.Fatalf("err = %v, want one wrapping ErrInvalid", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		tb.Fatalf("err = %v (%T), want a *FieldError", err, err)
	}
	if fe.Field != field {
		tb.Errorf("FieldError.Field = %q, want %q", fe.Field, field)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		tb.Errorf("err = %q, want a message naming the field %q", err, field)
	}
}

func TestLoadDirectoryEmbedded(t *testing.T) {
	d, err := LoadDirectory(bytes.NewReader(defaultUsers))
	if err != nil {
		t.Fatalf("LoadDirectory(users.json): %v", err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(defaultUsers, &raw); err != nil {
		t.Fatalf("users.json: %v", err)
	}
	if len(raw) == 0 {
		t.Fatal("users.json holds no users")
	}
	users, total, err := d.List(1, maxPageSize)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if total != len(raw) || len(users) != len(raw) {
		t.Errorf("List: %d users, total %d; want %d", len(users), total, len(raw))
	}
	if got := ids(users); !slices.IsSorted(got) {
		t.Errorf("List ids %v, want them sorted", got)
	}
	u, err := d.Get("ada")
	if err != nil {
		t.Fatalf("Get(ada): %v", err)
	}
	if want := (User{ID: "ada", Name: "Ada Lovelace", Email: "ada@example.com"}); u != want {
		t.Errorf("Get(ada) = %+v, want %+v", u, want)
	}
}

func TestLoadDirectoryAccepts(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name    string
		json    string
		wantIDs []string
	}{
		{"empty array", `[]`, []string{}},
		{"sorted by id", `[{"id":"b","name":"B"},{"id":"a","name":"A"},{"id":"c-1_x","name":"C"}]`, []string{"a", "b", "c-1_x"}},
		{"64-character id", `[{"id":"` + long + `","name":"Long"}]`, []string{long}},
		{"email is optional", `[{"id":"0","name":"Zero"}]`, []string{"0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustLoad(t, tt.json)
			users, total, err := d.List(1, maxPageSize)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := ids(users); !slices.Equal(got, tt.wantIDs) || total != len(tt.wantIDs) {
				t.Errorf("List = %v (total %d), want %v", got, total, tt.wantIDs)
			}
		})
	}
}

func TestLoadDirectoryRejects(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // a part of the error message
	}{
		{"duplicate id", `[{"id":"ada","name":"Ada"},{"id":"bob","name":"Bob"},{"id":"ada","name":"Ada again"}]`, `"ada": duplicate id`},
		{"uppercase id", `[{"id":"Ada","name":"Ada"}]`, `id "Ada" does not match`},
		{"empty id", `[{"id":"","name":"Nobody"}]`, `id "" does not match`},
		{"missing id", `[{"name":"Nobody"}]`, `id "" does not match`},
		{"id with a space", `[{"id":"a b","name":"AB"}]`, `does not match`},
		{"id starting with -", `[{"id":"-a","name":"A"}]`, `does not match`},
		{"id of 65 characters", `[{"id":"` + strings.Repeat("a", 65) + `","name":"Long"}]`, `does not match`},
		{"bad id names its index", `[{"id":"ok","name":"OK"},{"id":"BAD!","name":"Bad"}]`, `user 1: id "BAD!"`},
		{"empty name", `[{"id":"ada","name":""}]`, `"ada": empty name`},
		{"blank name", `[{"id":"ada","name":" \t "}]`, `"ada": empty name`},
		{"missing name", `[{"id":"ada"}]`, `"ada": empty name`},
		{"unknown field", `[{"id":"ada","name":"Ada","role":"admin"}]`, `unknown field "role"`},
		{"truncated JSON", `[{"id":"ada","name":"Ada"}`, `decode users`},
		{"not JSON", `ada,Ada Lovelace`, `decode users`},
		{"object, not array", `{"id":"ada","name":"Ada"}`, `decode users`},
		{"wrong type", `[{"id":1,"name":"Ada"}]`, `decode users`},
		{"empty input", ``, `decode users`},
		// A file of two arrays (two files concatenated, or a stray bracket
		// after an edit) is not valid JSON; only the first array would load.
		{"trailing data after the array", `[{"id":"ada","name":"Ada"}] [{"id":"bob","name":"Bob"}]`, `users`},
		{"trailing bracket", `[{"id":"ada","name":"Ada"}]]`, `users`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := LoadDirectory(strings.NewReader(tt.json))
			if err == nil {
				users, total, _ := d.List(1, maxPageSize)
				t.Fatalf("LoadDirectory(%s) = directory of %v (total %d), want an error", tt.json, ids(users), total)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDirectoryGet(t *testing.T) {
	d := mustLoad(t, `[{"id":"ada","name":"Ada Lovelace","email":"ada@example.com"},{"id":"bob","name":"Bob"}]`)

	t.Run("found", func(t *testing.T) {
		u, err := d.Get("ada")
		if err != nil {
			t.Fatalf("Get(ada): %v", err)
		}
		if want := (User{ID: "ada", Name: "Ada Lovelace", Email: "ada@example.com"}); u != want {
			t.Errorf("Get(ada) = %+v, want %+v", u, want)
		}
	})

	invalid := []struct {
		name, id string
	}{
		{"empty id", ""},
		{"malformed id", "BAD!"},
		{"uppercase id", "Ada"},
		{"id with a slash", "ada/../bob"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			u, err := d.Get(tt.id)
			if err == nil {
				t.Fatalf("Get(%q) = %+v, want an error", tt.id, u)
			}
			wantFieldError(t, err, "id")
			if errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v also wraps ErrNotFound", err)
			}
		})
	}

	t.Run("unknown", func(t *testing.T) {
		u, err := d.Get("nobody")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(nobody) = %+v, %v; want ErrNotFound", u, err)
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("err = %v also wraps ErrInvalid", err)
		}
		if !strings.Contains(err.Error(), `"nobody"`) {
			t.Errorf("err = %q, want it to name the id", err)
		}
	})
}

func TestDirectoryList(t *testing.T) {
	d := mustLoad(t, numberedUsers(t, 25))
	tests := []struct {
		name           string
		page, pageSize int
		wantFirst      string // id of the first user; "" for an empty page
		wantLen        int
	}{
		{"first page", 1, 10, "u00", 10},
		{"second page", 2, 10, "u10", 10},
		{"last, partial page", 3, 10, "u20", 5},
		{"page 0 means 1, size 0 means 10", 0, 0, "u00", 10},
		{"page 0 with a size", 0, 3, "u00", 3},
		{"size 0 on page 2", 2, 0, "u10", 10},
		{"size 1", 7, 1, "u06", 1},
		{"size 100 takes everyone", 1, 100, "u00", 25},
		{"page just past the end", 4, 10, "", 0},
		{"page far past the end", 1000, 100, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, total, err := d.List(tt.page, tt.pageSize)
			if err != nil {
				t.Fatalf("List(%d, %d): %v", tt.page, tt.pageSize, err)
			}
			if total != 25 {
				t.Errorf("total = %d, want 25", total)
			}
			if len(users) != tt.wantLen {
				t.Fatalf("List(%d, %d) = %v, want %d users", tt.page, tt.pageSize, ids(users), tt.wantLen)
			}
			if len(users) == 0 {
				return
			}
			if users[0].ID != tt.wantFirst {
				t.Errorf("first user %q, want %q", users[0].ID, tt.wantFirst)
			}
			if got := ids(users); !slices.IsSorted(got) {
				t.Errorf("page %v is not sorted", got)
			}
		})
	}

	invalid := []struct {
		name           string
		page, pageSize int
		field          string
	}{
		{"negative page", -1, 10, "page"},
		{"negative page_size", 1, -1, "page_size"},
		{"page_size 101", 1, 101, "page_size"},
		{"both wrong names page first", -1, 101, "page"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			users, total, err := d.List(tt.page, tt.pageSize)
			if err == nil {
				t.Fatalf("List(%d, %d) = %v (total %d), want an error", tt.page, tt.pageSize, ids(users), total)
			}
			wantFieldError(t, err, tt.field)
		})
	}
}

func TestDirectoryListEmpty(t *testing.T) {
	d := mustLoad(t, `[]`)
	users, total, err := d.List(0, 0)
	if err != nil || len(users) != 0 || total != 0 {
		t.Errorf("List(0, 0) on an empty directory = %v, %d, %v; want no users, 0, nil", users, total, err)
	}
}
