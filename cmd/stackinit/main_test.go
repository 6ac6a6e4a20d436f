package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/example/micro-starter/internal/stack"
	"github.com/example/micro-starter/pkg/service"
)

func TestSecretsWritesEachOnceAndKeepsThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(dir, 0o755); err != nil { // as make certs leaves it
		t.Fatal(err)
	}
	mustRun(t, "secrets", "-dir", dir, "-key-mode", "0640", "-services", "user hello")
	first := readDir(t, dir)
	wantFiles := []string{"consul-acl.json", "consul-management.token", "etcd-root.password",
		"hello.consul-token", "hello.consul.env", "hello.etcd-password", "hello.etcd.env", "stackinit.json",
		"user.consul-token", "user.consul.env", "user.etcd-password", "user.etcd.env"}
	if got := slices.Sorted(maps.Keys(first)); !slices.Equal(got, wantFiles) {
		t.Fatalf("files %v, want %v", got, wantFiles)
	}
	// Every file holds a secret: only the owner and, with -key-mode, the
	// containers' users read it; the folder keeps other local users out.
	for name := range first {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v (%v), want 0640", name, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v (%v), want 0700", dir, fi.Mode().Perm(), err)
	}
	for _, name := range []string{"consul-management.token", "user.consul-token", "hello.consul-token"} {
		if err := checkUUID(first[name]); err != nil {
			t.Errorf("%s = %q: %v", name, first[name], err)
		}
	}
	distinct := map[string]bool{}
	for _, name := range []string{"consul-management.token", "user.consul-token", "hello.consul-token", "etcd-root.password", "user.etcd-password", "hello.etcd-password"} {
		distinct[first[name]] = true
	}
	if len(distinct) != 6 {
		t.Errorf("the six secrets are not distinct: %v", first)
	}

	// The derived files carry the secrets as Consul and the init step read them.
	var acl struct {
		ACL struct {
			Enabled       bool
			DefaultPolicy string `json:"default_policy"`
			Tokens        struct {
				InitialManagement string `json:"initial_management"`
			}
		}
	}
	mustUnmarshal(t, first["consul-acl.json"], &acl)
	if !acl.ACL.Enabled || acl.ACL.DefaultPolicy != "deny" || acl.ACL.Tokens.InitialManagement != first["consul-management.token"] {
		t.Errorf("consul-acl.json: %s", first["consul-acl.json"])
	}
	var s secrets
	mustUnmarshal(t, first["stackinit.json"], &s)
	if s.ConsulManagementToken != first["consul-management.token"] || s.EtcdRootPassword != first["etcd-root.password"] ||
		len(s.Accounts) != 2 || s.Accounts[0].Name != "user" || s.Accounts[0].ConsulToken != first["user.consul-token"] ||
		s.Accounts[1].EtcdPassword != first["hello.etcd-password"] {
		t.Errorf("stackinit.json: %s", first["stackinit.json"])
	}

	if got, want := first["user.consul.env"], "MICRO_REGISTRY_TOKEN="+first["user.consul-token"]; got != want {
		t.Errorf("user.consul.env: %q, want %q", got, want)
	}
	if got, want := first["hello.etcd.env"], "MICRO_REGISTRY_USERNAME=hello"; got != want {
		t.Errorf("hello.etcd.env: %q, want %q", got, want)
	}

	// Again with one more service: only its files are new, the derived
	// ones take it in, and nothing else changes.
	out := mustRun(t, "secrets", "-dir", dir, "-key-mode", "0640", "-services", "user hello orders")
	if want := "wrote orders.consul-token orders.etcd-password stackinit.json orders.consul.env orders.etcd.env in"; !strings.Contains(out, want) {
		t.Errorf("second run: %q, want %q", out, want)
	}
	second := readDir(t, dir)
	for name, v := range first {
		if name != "stackinit.json" && second[name] != v {
			t.Errorf("%s changed from %q to %q", name, v, second[name])
		}
	}
	if out := mustRun(t, "secrets", "-dir", dir, "-key-mode", "0640", "-services", "user hello orders"); !strings.Contains(out, "up to date") {
		t.Errorf("third run: %q, want up to date", out)
	}
}

func TestSecretsRefusesWhatItCannotUse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "consul-management.token"), []byte("root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"secrets", "-dir", dir, "-services", "user"}, false, "consul-management.token: not a UUID"},
		{[]string{"secrets", "-dir", dir}, true, "no service named"},
		{[]string{"secrets", "-dir", dir, "-key-mode", "0044", "-services", "user"}, true, "-key-mode"},
		{[]string{"nope"}, true, "unknown step"},
		{[]string{"init", "extra"}, true, "unexpected argument"},
	} {
		err := run(context.Background(), append([]string{"stackinit"}, tc.args...), os.Getenv, io.Discard)
		var u *service.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &u) != tc.usage {
			t.Errorf("%v: %v, want an error with %q (usage error: %v)", tc.args, err, tc.want, tc.usage)
		}
	}
}

// TestInitLocksTheRegistriesDown runs the secrets step, a Consul agent with
// the ACL config it wrote, and an etcd, then the init step twice (the
// compose stack runs it on every up): each service may register only under
// its own name, and nobody without credentials may register at all.
func TestInitLocksTheRegistriesDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul and etcd")
	}
	dir := t.TempDir()
	mustRun(t, "secrets", "-dir", dir, "-services", "user hello")
	secret := func(name string) string { return readDir(t, dir)[name] }

	consulPath, err := exec.LookPath("consul")
	if err != nil {
		t.Fatalf("consul not on PATH: run make tools and put bin/ on PATH: %v", err)
	}
	ports := stack.MustFreePorts(t, 5)
	consul, dns := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[4])
	stack.MustStart(t, "consul", consulPath, "agent", "-dev", "-node", "stackinit",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file", filepath.Join(dir, "consul-acl.json"),
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[4]), "-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-hcl", "disable_update_check = true")
	etcd := stack.MustStartRegistry(t, "etcd")

	for range 2 {
		mustRun(t, "init", "-secrets", filepath.Join(dir, "stackinit.json"), "-consul", consul, "-etcd", etcd.Addr, "-timeout", "30s")
	}

	register := func(token, service string) int {
		body := fmt.Sprintf(`{"ID": "%s-1", "Name": %q, "Port": 9090}`, service, service)
		req, err := http.NewRequest(http.MethodPut, "http://"+consul+"/v1/agent/service/register", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Consul-Token", token)
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		return rsp.StatusCode
	}
	put := func(user, password, key string) error {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Addr}, Username: user, Password: password, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Put(ctx, key, "x")
		return err
	}
	for _, tc := range []struct {
		who, token, user, password string
		service                    string
		allowed                    bool
	}{
		{"user", secret("user.consul-token"), "user", secret("user.etcd-password"), "user", true},
		{"user", secret("user.consul-token"), "user", secret("user.etcd-password"), "hello", false},
		{"hello", secret("hello.consul-token"), "hello", secret("hello.etcd-password"), "hello", true},
		{"nobody", "", "", "", "user", false},
	} {
		want := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[tc.allowed]
		if got := register(tc.token, tc.service); got != want {
			t.Errorf("consul: %s registering %s: %d, want %d", tc.who, tc.service, got, want)
		}
		err := put(tc.user, tc.password, "/micro/registry/"+tc.service+"/"+tc.service+"-1")
		if (err == nil) != tc.allowed {
			t.Errorf("etcd: %s writing under %s: %v, want allowed %v", tc.who, tc.service, err, tc.allowed)
		}
	}

	// DNS queries carry no token: Consul answers them all the same, from
	// what init let the anonymous token read. user-1 registered no
	// address of its own: its A record is the node's.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := stack.LookupService(ctx, stack.DNSResolver(dns, "udp"), "user.service.consul")
	if want := (stack.DNSAnswer{A: []string{"127.0.0.1"}, SRV: []string{"127.0.0.1:9090"}}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("DNS, user.service.consul: %+v, %v; want %+v", got, err, want)
	}
}

func TestInitGivesUpAfterTimeout(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "secrets", "-dir", dir, "-services", "user")
	free := mustRefusingAddr(t)
	err := run(context.Background(), []string{"stackinit", "init", "-secrets", filepath.Join(dir, "stackinit.json"),
		"-consul", free, "-etcd", free, "-timeout", "2s"}, os.Getenv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not set up within 2s") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("init with no registry: %v, want it to give up naming the registry's last answer", err)
	}
}

// mustRefusingAddr returns a loopback address whose port the test holds,
// bound but not listening: connections to it are refused, and no process
// started meanwhile (other packages test side by side) can take the port,
// as one could a port merely found free.
func mustRefusingAddr(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"stackinit"}, args...), os.Getenv, &out); err != nil {
		t.Fatalf("stackinit %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// readDir returns each file of dir and its content, trimmed.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[d.Name()] = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

// TestRetryKeepsLastAnswer: a try cut short by the deadline must not hide
// the registry's real answer (seen in CI: "context deadline exceeded"
// instead of "connection refused" on a loaded machine).
func TestRetryKeepsLastAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	calls := 0
	err := retry(ctx, 200*time.Millisecond, time.Millisecond, func(try context.Context) error {
		if calls++; calls == 1 {
			return errors.New("dial tcp: connection refused")
		}
		<-try.Done()
		return fmt.Errorf("read policy: %w", try.Err())
	}, func(error) {})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("retry: %v, want the answer before the deadline (connection refused)", err)
	}
}
