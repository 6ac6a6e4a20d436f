package scaffold

import (
	"errors"
	"go/format"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
		{"b2b", ""},
		{"e2e", ""},
		{"v2api", ""},
		{"order-2nd", ""},
		{"a-b-c", ""},
		{"x1", ""},
		{"func", ""},    // a Go keyword: the Go package is funcpb
		{"string", ""},  // a predeclared Go identifier
		{"message", ""}, // a protobuf keyword
		{strings.Repeat("a", maxNameLen), ""},
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
		{"benchstat", "reserved: the Makefile puts a tool or directory at bin/benchstat"},
		{"linux", "reserved"},
		{"go", "in place of the go command"},
		{"protoc", "in place of the protoc command"},
		{"x'; touch pwned; echo '", "lowercase letter first"},
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
	tests := []struct{ name, pascal, protoPkg, goPkg string }{
		{"orders", "Orders", "orders", "orderspb"},
		{"order-items", "OrderItems", "order_items", "orderitemspb"},
		// A letter after a digit starts a word for protoc-gen-micro.
		{"e2e", "E2E", "e2e", "e2epb"},
		{"b2b", "B2B", "b2b", "b2bpb"},
		{"v2api", "V2Api", "v2api", "v2apipb"},
		{"order-2nd", "Order2Nd", "order_2nd", "order2ndpb"},
		{"a-b-c", "ABC", "a_b_c", "abcpb"},
		{"x1", "X1", "x1", "x1pb"},
	}
	for _, tt := range tests {
		n := newNames(tt.name, "example.com/m")
		want := names{Name: tt.name, Pascal: tt.pascal, Service: tt.pascal + "Service",
			ProtoPkg: tt.protoPkg, GoPkg: tt.goPkg, Module: "example.com/m"}
		if n != want {
			t.Errorf("newNames(%q) = %+v, want %+v", tt.name, n, want)
		}
	}
}

// TestServiceNameIsGeneratorsOwn checks, for every name CheckName accepts
// up to 5 characters of a, b, 1, 2 and '-', that the protobuf service's
// name is the Go name protoc-gen-micro gives it, so that main.go's
// Register<Service>Handler is the generated function, and that the other
// names are what protobuf and Go accept. TestNewNamesBuild runs the real
// generators and compiler on a sample.
func TestServiceNameIsGeneratorsOwn(t *testing.T) {
	protoIdent := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	checked := 0
	var each func(prefix string)
	each = func(prefix string) {
		if len(prefix) == 5 {
			return
		}
		for _, c := range "ab12-" {
			name := prefix + string(c)
			each(name)
			if CheckName(name) != nil {
				continue
			}
			checked++
			n := newNames(name, "example.com/m")
			if got := camelCase(n.Service); got != n.Service {
				t.Errorf("%q: service %s, which protoc-gen-micro names %s in Go", name, n.Service, got)
			}
			if !token.IsIdentifier(n.Service) || !token.IsExported(n.Service) {
				t.Errorf("%q: service %s is not an exported Go identifier", name, n.Service)
			}
			if !token.IsIdentifier(n.GoPkg) || token.IsKeyword(n.GoPkg) {
				t.Errorf("%q: Go package %s is not a Go identifier", name, n.GoPkg)
			}
			if !protoIdent.MatchString(n.ProtoPkg) {
				t.Errorf("%q: protobuf package %s", name, n.ProtoPkg)
			}
		}
	}
	each("")
	if checked < 1000 {
		t.Fatalf("checked %d names, want them all", checked)
	}
}

// camelCase is copied from protoc-gen-micro's generator.CamelCase; these
// are its outputs (and protoc-gen-go's GoCamelCase's).
func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"hello": "Hello", "HelloService": "HelloService", "e2e": "E2E", "E2eService": "E2EService",
		"order_items": "OrderItems", "order_2nd": "Order_2Nd", "_x": "XX", "v2api": "V2Api", "ABc": "ABc",
	} {
		if got := camelCase(in); got != want {
			t.Errorf("camelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBinToolsMatchMakefile keeps binTools and pathCommands in step with
// the Makefile: every bin/<x> it makes, and every command it runs with
// bin/ first on PATH, is a name CheckName refuses.
func TestBinToolsMatchMakefile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\(BIN\)/([A-Za-z0-9._-]+)`).FindAllSubmatch(data, -1) {
		made[string(m[1])] = true
	}
	if !made["consul"] || !made["benchstat"] {
		t.Fatalf("found %v in the Makefile, want at least consul and benchstat", made)
	}
	if got, want := slices.Sorted(maps.Keys(made)), slices.Sorted(slices.Values(binTools)); !slices.Equal(got, want) {
		t.Errorf("the Makefile puts %v in bin/, binTools is %v", got, want)
	}
	onPath := regexp.MustCompile(`PATH="\$\(BIN\):\$\$PATH"\s+([A-Za-z0-9._-]+)`).FindAllSubmatch(data, -1)
	if len(onPath) == 0 {
		t.Fatal(`no PATH="$(BIN):$$PATH" command in the Makefile`)
	}
	for _, m := range onPath {
		if cmd := string(m[1]); !slices.Contains(pathCommands, cmd) {
			t.Errorf("the Makefile runs %s with bin/ first on PATH; pathCommands is %v", cmd, pathCommands)
		}
	}
	for _, name := range slices.Concat(binTools, pathCommands) {
		if err := CheckName(name); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("CheckName(%q) = %v, want it reserved", name, err)
		}
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
		"services/hello/proto/hello.proto": "syntax = \"proto3\";\n\npackage hello;\n\n" +
			"option go_package = \"example.com/m/services/hello/proto;hellopb\";\n",
		// A service written by hand, its packages not named after it.
		"services/legacy/proto/orders.proto": "syntax = \"proto3\";\npackage orders_v1;\noption go_package = \"example.com/m/services/legacy/proto\";\n",
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
		{"benchstat", "reserved"},
		{"hel-lo", "Go package hellopb is already services/hello/proto/hello.proto's"},
		{"orders-v1", "protobuf package orders_v1 is already services/legacy/proto/orders.proto's"},
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
	c, err := addToCompose(filepath.Join(root, "docker-compose.yml"), "order-items", composeEntry)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(composeFixture, "    image: elsewhere\n",
		"    image: elsewhere\n\n"+`  order-items:
    <<: *service
    image: micro-starter/order-items:dev
    env_file:
      - deploy/${REGISTRY:-consul}.env
      - certs/order-items.${REGISTRY:-consul}.env # its token or user (make certs)
    volumes:
      - ./certs/ca.crt:/certs/ca.crt:ro
      - ./certs/order-items.crt:/certs/service.crt:ro
      - ./certs/order-items.key:/certs/service.key:ro
      - ./certs/order-items.etcd-password:/run/secrets/etcd-password:ro
`, 1)
	if string(c.new) != want {
		t.Errorf("compose:\n%s\nwant:\n%s", c.new, want)
	}
}

// TestComposeEntryIsHellos: a new service's entry in each compose file is
// hello's with the name replaced, so that it gets what the stack gives every
// service (its certificate, its registry credentials, in the HA profile every
// registry member) and starts in `make up`.
func TestComposeEntryIsHellos(t *testing.T) {
	tests := []struct{ file, entry string }{
		{"docker-compose.yml", composeEntry},
		{"docker-compose.ha.yml", haComposeEntry},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			compose, err := os.ReadFile(filepath.Join("..", "..", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, rest, ok := strings.Cut(string(compose), "\n  hello:\n")
			if !ok {
				t.Fatalf("%s has no hello service", tt.file)
			}
			hello := "  hello:\n"
			for _, l := range strings.SplitAfter(rest, "\n") {
				if strings.TrimSpace(l) == "" || !strings.HasPrefix(l, "    ") {
					break
				}
				hello += l
			}
			if want := strings.ReplaceAll(tt.entry, "NAME", "hello"); hello != want {
				t.Errorf("hello's entry in %s:\n%s\nthe scaffold's, for hello:\n%s", tt.file, hello, want)
			}
		})
	}
}

// TestAddToKubernetes: a new service's manifest is the repository's
// hello.yaml with the name replaced, listed after hello's in the base's
// kustomization; an existing one is refused, and a tree without the
// manifests gets none.
func TestAddToKubernetes(t *testing.T) {
	root := fixture(t)
	if edits, err := addToKubernetes(root, "order-items"); err != nil || edits != nil {
		t.Fatalf("without deploy/k8s: %v, %v; want no edit and no error", edits, err)
	}
	for _, f := range []string{"hello.yaml", "kustomization.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "k8s", "base", f))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(root, "deploy", "k8s", "base", f), string(data))
	}
	edits, err := addToKubernetes(root, "order-items")
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) != 2 {
		t.Fatalf("%d edits, want the manifest and the kustomization", len(edits))
	}
	manifest, kust := string(edits[0].new), string(edits[1].new)
	if got, want := edits[0].path, filepath.Join(root, "deploy", "k8s", "base", "order-items.yaml"); got != want || edits[0].old != nil {
		t.Errorf("manifest edit of %s (old %q), want a new %s", got, edits[0].old, want)
	}
	for _, want := range []string{
		"\n  name: order-items\n", "image: micro-starter/order-items:dev", "secretName: order-items-tls",
		"{name: order-items-registry, key: token, optional: true}", "app.kubernetes.io/component: service",
	} {
		if !strings.Contains(manifest, want) {
			t.Errorf("manifest lacks %q:\n%s", want, manifest)
		}
	}
	head, body, _ := strings.Cut(manifest, "\n")
	if strings.Contains(body, "hello") || !strings.HasPrefix(head, "# order-items: ") {
		t.Errorf("manifest names hello below its first line, or does not open with its own name:\n%s", manifest)
	}
	if !strings.Contains(kust, "  - hello.yaml\n  - order-items.yaml\n") {
		t.Errorf("kustomization does not list order-items.yaml after hello.yaml:\n%s", kust)
	}
	mustWrite(t, edits[0].path, manifest)
	if _, err := addToKubernetes(root, "order-items"); !errors.Is(err, ErrUsage) {
		t.Errorf("with order-items.yaml there: %v, want a usage error", err)
	}
}
