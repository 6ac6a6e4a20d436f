package scaffold

import (
	"errors"
	"go/format"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // "" for a good name
	}{
		{"orders", ""},
		{"order-items", ""},
		{"a", ""},
		{"v2-api", ""},
		{"", "empty"},
		{"Orders", "lowercase letter first"},
		{"1orders", "lowercase letter first"},
		{"orders_x", "lowercase letter first"},
		{"-x", "lowercase letter first"},
		{"order items", "lowercase letter first"},
		{"orders/x", "lowercase letter first"},
		{"../orders", "lowercase letter first"},
		{"orders-", "'-' only between"},
		{"order--items", "'-' only between"},
		{strings.Repeat("a", maxNameLen+1), "longer than"},
		{"consul", "reserved"},
		{"etcd", "reserved"},
		{"protoc-gen-go", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.name)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckName(%q) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("CheckName(%q) = %v, not ErrUsage", tt.name, err)
			}
		})
	}
}

func TestCheckModule(t *testing.T) {
	tests := []struct {
		module string
		ok     bool
	}{
		{"github.com/acme/shop", true},
		{"example.com/shop", true},
		{"gitlab.example.org/team/sub/shop", true},
		{"github.com/acme/shop/v2", true},
		{"", false},
		{"shop", false}, // no dot in the first element
		{"github.com/acme/shop/", false},
		{"/github.com/acme/shop", false},
		{"github.com/acme//shop", false},
		{"github.com/acme/shop go", false},
		{"github.com/Acme/shop;x", false},
		{"-github.com/acme/shop", false},
		{"github.com/acme/../shop", false},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			err := CheckModule(tt.module)
			if tt.ok && err != nil {
				t.Fatalf("CheckModule(%q) = %v, want nil", tt.module, err)
			}
			if !tt.ok && !errors.Is(err, ErrUsage) {
				t.Fatalf("CheckModule(%q) = %v, want a usage error", tt.module, err)
			}
		})
	}
}

func TestNames(t *testing.T) {
	n := newNames("order-items", "example.com/m")
	want := names{Name: "order-items", Pascal: "OrderItems", Service: "OrderItemsService",
		ProtoPkg: "order_items", GoPkg: "orderitemspb", Module: "example.com/m"}
	if n != want {
		t.Errorf("newNames = %+v, want %+v", n, want)
	}
}

func TestReplacePath(t *testing.T) {
	const old, new = "github.com/example/micro-starter", "github.com/acme/shop"
	tests := []struct{ in, want string }{
		{"module " + old + "\n", "module " + new + "\n"},
		{`import "` + old + `/pkg/service"`, `import "` + new + `/pkg/service"`},
		{`go_package = "` + old + `/services/x/proto;xpb";`, `go_package = "` + new + `/services/x/proto;xpb";`},
		{"https://" + old + ".", "https://" + new + "."},
		{old + "-x/pkg", old + "-x/pkg"}, // another module
		{"my" + old, "my" + old},         // another path
		{old + "2", old + "2"},           // another path
		{old + " and " + old, new + " and " + new},
	}
	for _, tt := range tests {
		got, _ := replacePath([]byte(tt.in), old, new)
		if string(got) != tt.want {
			t.Errorf("replacePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRender renders the templates for a name with '-' and checks that the
// Go files are gofmt'ed Go and that the names line up. TestNewAndRename
// builds, tests and runs what they render.
func TestRender(t *testing.T) {
	files, err := render(newNames("order-items", "example.com/m"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, data := range files {
		got = append(got, p)
		if strings.HasSuffix(p, ".go") {
			formatted, err := format.Source(data)
			if err != nil {
				t.Errorf("%s: %v\n%s", p, err, data)
			} else if string(formatted) != string(data) {
				t.Errorf("%s is not gofmt'ed", p)
			}
		}
		if strings.Contains(string(data), "[[") || strings.Contains(string(data), "<no value>") {
			t.Errorf("%s: template left unexpanded:\n%s", p, data)
		}
	}
	for _, want := range []string{
		"services/order-items/main.go", "services/order-items/main_test.go",
		"services/order-items/handler.go", "services/order-items/handler_test.go",
		"services/order-items/proto/order-items.proto",
	} {
		if files[want] == nil {
			t.Errorf("no %s among %v", want, got)
		}
	}
	proto := string(files["services/order-items/proto/order-items.proto"])
	for _, want := range []string{"package order_items;", `go_package = "example.com/m/services/order-items/proto;orderitemspb"`, "service OrderItemsService {"} {
		if !strings.Contains(proto, want) {
			t.Errorf("proto lacks %q:\n%s", want, proto)
		}
	}
	main := string(files["services/order-items/main.go"])
	for _, want := range []string{`service.Setup{Name: "order-items"}`, "orderitemspb.RegisterOrderItemsServiceHandler(", `"example.com/m/pkg/service"`} {
		if !strings.Contains(main, want) {
			t.Errorf("main.go lacks %q", want)
		}
	}
}

// fixture is a repository root with just what New reads before it writes.
func fixture(tb testing.TB) string {
	tb.Helper()
	root := tb.TempDir()
	for p, data := range map[string]string{
		"go.mod":                 "module example.com/m\n\ngo 1.26\n",
		"Makefile":               "X := 1\nSERVICES := user hello extra # the services\nBIN := bin\n",
		"docker-compose.yml":     composeFixture,
		"services/user/main.go":  "package main\n",
		"services/hello/main.go": "package main\n",
	} {
		mustWrite(tb, filepath.Join(root, p), data)
	}
	return root
}

const composeFixture = `x-service: &service
  env_file: deploy/consul.env

services:
  user:
    <<: *service
    image: micro-starter/user:dev

  hello:
    <<: *service
    image: micro-starter/hello:dev
    depends_on:
      user:
        condition: service_healthy

  composed:
    image: elsewhere

# a comment after the services

volumes:
  data: {}
`

func mustWrite(tb testing.TB, p, data string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// snapshot maps each file under root to its content, and each directory to "/".
func snapshot(tb testing.TB, root string) map[string]string {
	tb.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			m[rel] = "/"
			return nil
		}
		data, err := os.ReadFile(p)
		m[rel] = string(data)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestNewRejectsWithoutWriting(t *testing.T) {
	tests := []struct{ name, wantErr string }{
		{"Orders", "lowercase letter first"},
		{"1orders", "lowercase letter first"},
		{"orders_x", "lowercase letter first"},
		{"", "empty"},
		{"-x", "lowercase letter first"},
		{"user", "exists"},
		{"extra", "already in the Makefile"},       // listed, no directory
		{"composed", "docker-compose.yml already"}, // a compose service
		{"etcd", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t)
			before := snapshot(t, root)
			err := New(root, tt.name)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
				t.Fatalf("New(%q) = %v, want a usage error containing %q", tt.name, err, tt.wantErr)
			}
			if after := snapshot(t, root); !maps.Equal(before, after) {
				t.Errorf("New(%q) wrote files: before %v\nafter %v", tt.name, before, after)
			}
		})
	}
}

// A protoc that fails leaves the tree as it was: no service directory, no
// staging directory, Makefile and compose file unchanged.
func TestNewFailingProtocWritesNothing(t *testing.T) {
	root := fixture(t)
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-micro"} {
		p := filepath.Join(root, "bin", tool)
		mustWrite(t, p, "#!/bin/sh\necho broken >&2\nexit 1\n")
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", "")
	before := snapshot(t, root)
	err := New(root, "orders")
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("New = %v, want protoc's error", err)
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Errorf("New wrote files: before %v\nafter %v", before, after)
	}
}

func TestNewWithoutProtoc(t *testing.T) {
	root := fixture(t)
	t.Setenv("PATH", "")
	before := snapshot(t, root)
	if err := New(root, "orders"); err == nil || !strings.Contains(err.Error(), "protoc not found") {
		t.Fatalf("New = %v, want protoc not found", err)
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Errorf("New wrote files")
	}
}

func TestAddToMakefileAndCompose(t *testing.T) {
	root := fixture(t)
	mk, err := addToMakefile(filepath.Join(root, "Makefile"), "order-items")
	if err != nil {
		t.Fatal(err)
	}
	if want := "X := 1\nSERVICES := user hello extra order-items # the services\nBIN := bin\n"; string(mk.new) != want {
		t.Errorf("Makefile:\n%s\nwant:\n%s", mk.new, want)
	}
	c, err := addToCompose(filepath.Join(root, "docker-compose.yml"), "order-items")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(composeFixture, "    image: elsewhere\n",
		"    image: elsewhere\n\n  order-items:\n    <<: *service\n    image: micro-starter/order-items:dev\n", 1)
	if string(c.new) != want {
		t.Errorf("compose:\n%s\nwant:\n%s", c.new, want)
	}
}
