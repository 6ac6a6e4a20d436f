package scaffold

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// cmdTimeout bounds each go command the tests run; with the build cache
// warm each takes seconds.
const cmdTimeout = 3 * time.Minute

// TestNewAndRename is the proof of issue #6 on a copy of this repository:
// New adds a service that builds, passes its own tests, registers in a
// real etcd under its name and answers a call by that name from another
// program through pkg/wrappers' client; Rename then moves the copy, new
// service included, to another module path that builds, vets and tests.
func TestNewAndRename(t *testing.T) {
	if testing.Short() {
		t.Skip("copies the repository, builds it and starts etcd")
	}
	lookPath(t, "etcd")
	lookPath(t, "protoc")
	root := repoRoot(t)
	dir := copyRepo(t, root)
	oldModule, err := modulePath(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	const name = "order-items"
	if err := New(dir, name); err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := New(dir, name); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("New a second time = %v, want an error that it exists", err)
	}
	checkRegenerates(t, dir, "services/order-items/proto/order-items.proto")
	mustWrite(t, filepath.Join(dir, "cmd", "pingcheck", "main.go"), strings.ReplaceAll(pingcheck, "MODULE", oldModule))

	// vet type-checks every package and its tests; the build of the whole
	// tree comes after Rename below, new service included.
	goCmd(t, dir, "vet", "./...")
	goCmd(t, dir, "test", "-count=1", "./services/"+name+"/...")
	bin := t.TempDir()
	goCmd(t, dir, "build", "-o", bin+string(filepath.Separator), "./services/"+name, "./cmd/pingcheck")
	t.Logf("new: built and tested in %v", time.Since(start).Round(time.Millisecond))

	etcd := stack.MustStartRegistry(t, "etcd").Addr
	stack.MustStart(t, name, filepath.Join(bin, name), "--registry", "etcd", "--registry_address", etcd,
		"--server_address", "127.0.0.1:0", "--shutdown_drain", "0s")
	var got struct {
		Message, Instance string
		EmptyCode         int32
		EmptyDetail       string
	}
	poll.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "pingcheck"), "--registry", "etcd",
			"--registry_address", etcd, "--server_address", "127.0.0.1:0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pingcheck: %v\n%s", err, out)
		}
		return json.Unmarshal(lastLine(out), &got)
	})
	if got.Message != "hello from pingcheck" || !strings.HasPrefix(got.Instance, name+"-") {
		t.Errorf("Ping by name answered %+v, want the message back from an instance %s-<id>", got, name)
	}
	if got.EmptyCode != 400 || !strings.Contains(got.EmptyDetail, "message") {
		t.Errorf("Ping with an empty message: code %d detail %q, want a 400 naming the field", got.EmptyCode, got.EmptyDetail)
	}
	t.Logf("new: called by name through etcd after %v", time.Since(start).Round(time.Millisecond))

	const newModule = "github.com/acme/shop"
	if err := Rename(dir, newModule); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if m, err := modulePath(dir); err != nil || m != newModule {
		t.Fatalf("module after Rename = %q, %v", m, err)
	}
	goCmd(t, dir, "build", "./...")
	goCmd(t, dir, "vet", "./...") // type-checks every test file too
	// The tests of the code Rename regenerated (the services' protobuf
	// descriptors are checked as their packages load) and of the scaffold
	// itself. pkg/ and integration/ only had their imports rewritten, which
	// vet has checked; their tests would add 15 s and prove nothing more.
	goCmd(t, dir, "test", "-short", "-count=1", "./services/...", "./internal/...", "./cmd/...")
	files, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		// bench/grpcbare's plain grpc-go stubs embed the services'
		// go_package too; make rename regenerates them after Rename with
		// make proto (and make proto-check fails while they are stale).
		if strings.HasPrefix(f, "bench/grpcbare/") && strings.HasSuffix(f, ".pb.go") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(oldModule)) {
			t.Errorf("%s still contains %s", f, oldModule)
		}
	}
	checkRegenerates(t, dir, "services/order-items/proto/order-items.proto")
	checkRegenerates(t, dir, "services/hello/proto/hello.proto")
	t.Logf("rename: built and tested after %v", time.Since(start).Round(time.Millisecond))
}

// pingcheck calls the new service by its registry name through the client
// every service uses, as another service of the copy would, and prints
// what it got as JSON.
const pingcheck = `// Command pingcheck calls order-items by name (scaffold's test).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	merrors "go-micro.dev/v4/errors"

	"MODULE/pkg/service"
	orderitemspb "MODULE/services/order-items/proto"
)

func main() {
	cfg, _, _, err := service.Setup{Name: "pingcheck"}.Parse(os.Args, os.Getenv, io.Discard)
	if err != nil {
		fail(err)
	}
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := orderitemspb.NewOrderItemsService("order-items", svc.Client())
	rsp, err := c.Ping(ctx, &orderitemspb.PingRequest{Message: "hello from pingcheck"})
	if err != nil {
		fail(err)
	}
	_, err = c.Ping(ctx, &orderitemspb.PingRequest{})
	e := merrors.FromError(err)
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"message": rsp.Message, "instance": rsp.Instance, "emptyCode": e.Code, "emptyDetail": e.Detail,
	})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pingcheck:", err)
	os.Exit(1)
}
`

func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}

// checkRegenerates runs protoc on rel in a scratch copy of its directory
// and checks the committed generated code is what it writes, as make
// proto-check does.
func checkRegenerates(tb testing.TB, root, rel string) {
	tb.Helper()
	pc, err := findProtoc(root)
	if err != nil {
		tb.Fatal(err)
	}
	scratch := tb.TempDir()
	src, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, filepath.Join(scratch, rel), string(src))
	if err := pc.generate(scratch, rel); err != nil {
		tb.Fatal(err)
	}
	base := strings.TrimSuffix(rel, ".proto")
	for _, gen := range []string{base + ".pb.go", base + ".pb.micro.go"} {
		want, err := os.ReadFile(filepath.Join(scratch, gen))
		if err != nil {
			tb.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, gen))
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			tb.Errorf("%s differs from what protoc writes", gen)
		}
	}
}

// repoRoot is this repository's root, two levels up from the package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatal(err)
	}
	return root
}

// copyRepo copies the files git tracks and the untracked ones it does not
// ignore (the work tree as a commit of it would be) into a temporary
// directory, which is not a git work tree, removed when the test ends.
//
// The directory's name is the same on every run from one clone: the go
// command keys compiled packages by their directory too, so a new name
// each run would compile every package of the copy afresh (~25 s) where
// the same name finds them in the build cache.
func copyRepo(tb testing.TB, root string) string {
	tb.Helper()
	files, err := listFiles(root)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("micro-starter-scaffold-%d-%x", os.Getuid(), sum[:6]))
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	for _, f := range files {
		if strings.HasPrefix(f, ".scaffold-") {
			continue
		}
		src := filepath.Join(root, filepath.FromSlash(f))
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted but still tracked
		}
		if err != nil {
			tb.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// goCmd runs the go command in dir with the environment's build cache.
func goCmd(tb testing.TB, dir string, args ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	tb.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// lookPath fails rather than skips on a missing tool, so that a broken
// set-up never looks like a green run.
func lookPath(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Fatalf("%s not on PATH: make test puts bin/ (make tools) on PATH; protoc: apt-get install -y protobuf-compiler", name)
	}
}
