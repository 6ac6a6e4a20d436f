package scaffold

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// protoc runs the generators `make proto` runs: Debian's protoc with
// protoc-gen-go and protoc-gen-micro, built into bin/ by `make tools`.
type protoc struct {
	path string
	env  []string // PATH with root/bin first, so protoc finds the plugins
}

// protocTimeout bounds one protoc run; it takes milliseconds.
const protocTimeout = time.Minute

// findProtoc finds protoc and its plugins, in root/bin first, then on PATH.
func findProtoc(root string) (*protoc, error) {
	bin, err := filepath.Abs(filepath.Join(root, "bin"))
	if err != nil {
		return nil, err
	}
	pathEnv := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	look := func(name, hint string) (string, error) {
		for _, dir := range filepath.SplitList(pathEnv) {
			if dir == "" {
				continue
			}
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s not found in %s or on PATH: %s", name, bin, hint)
	}
	p, err := look("protoc", "apt-get install -y protobuf-compiler")
	if err != nil {
		return nil, err
	}
	for _, plugin := range []string{"protoc-gen-go", "protoc-gen-micro"} {
		if _, err := look(plugin, "run make tools"); err != nil {
			return nil, err
		}
	}
	env := []string{"PATH=" + pathEnv}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return &protoc{path: p, env: env}, nil
}

// generate runs protoc on the file rel (slash-separated, relative to dir)
// exactly as the Makefile's proto rule does from the repository root, so
// the output is byte for byte what `make proto` writes.
func (p *protoc) generate(dir, rel string) error {
	ctx, cancel := context.WithTimeout(context.Background(), protocTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, "--proto_path=.",
		"--go_out=paths=source_relative:.", "--micro_out=paths=source_relative:.", rel)
	cmd.Dir = dir
	cmd.Env = p.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("protoc %s: %v\n%s", rel, err, out)
	}
	return nil
}
