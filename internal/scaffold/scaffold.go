// Package scaffold adds a service to this repository (New) and renames the
// module of a copy of it (Rename). Both check everything before they write,
// never overwrite what they did not create, and leave a tree that builds.
//
// The services it writes are rendered from templates/service, which mirror
// services/hello; the tests render them into a copy of the repository and
// build, test and run the result, so the templates cannot drift from the
// example services unnoticed.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

//go:embed templates/service
var templates embed.FS

// ErrUsage marks an error in what the caller asked for (a bad or taken
// name, a bad module path), as opposed to a failure while doing it:
// errors.Is(err, ErrUsage).
var ErrUsage = errors.New("usage error")

type usageError struct{ error }

func (usageError) Is(target error) bool { return target == ErrUsage }

// UsageErrorf returns an error that is ErrUsage, with the message alone.
func UsageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func usageErrorf(format string, args ...any) error { return UsageErrorf(format, args...) }

// Names a service cannot take although no services/<name> exists. The
// Makefile builds the services into bin/, next to its tools; a service
// binary named like one of these would overwrite it, or run in its place.
var (
	// binTools are what the Makefile puts in bin/ besides the services:
	// tools, and directories where bin/<name> could not be built.
	// TestBinToolsMatchMakefile keeps this list and the Makefile in step.
	binTools = []string{"bench", "benchstat", "consul", "etcd", "etcdctl", "jaeger", "linux", "plain",
		"protoc-gen-go", "protoc-gen-go-grpc", "protoc-gen-micro", "scaffold", "standin"}
	// pathCommands run with bin/ first on PATH: what the Makefile runs so
	// (PATH="$(BIN):$$PATH" go ...; protoc), and what the go command itself
	// runs (git for version stamps, the C compiler for -race), and the
	// programs the tests start from PATH (internal/stack, the gateway's
	// browser test).
	pathCommands = []string{"go", "protoc", "git", "gcc", "cc", "prometheus", "chromium"}
)

const maxNameLen = 40

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// CheckName reports whether name can be a new service's name on its own:
// a lowercase letter, then lowercase letters, digits or single '-', not
// ending in '-', and not the name of a tool in bin/ or a command run with
// bin/ first on PATH. New also checks that it is not taken.
func CheckName(name string) error {
	switch {
	case name == "":
		return usageErrorf("service name is empty")
	case !nameRE.MatchString(name):
		return usageErrorf("service name %q: want a lowercase letter first, then lowercase letters, digits or '-' (e.g. orders, order-items)", name)
	case strings.HasSuffix(name, "-") || strings.Contains(name, "--"):
		return usageErrorf("service name %q: '-' only between letters or digits", name)
	case len(name) > maxNameLen:
		return usageErrorf("service name %q: longer than %d characters", name, maxNameLen)
	case slices.Contains(binTools, name):
		return usageErrorf("service name %q is reserved: the Makefile puts a tool or directory at bin/%s", name, name)
	case slices.Contains(pathCommands, name):
		return usageErrorf("service name %q is reserved: bin/%s would run in place of the %s command where bin/ is first on PATH (make test, make proto)", name, name, name)
	}
	return nil
}

// names are the identifiers derived from a service name, as the templates
// use them. For "order-items":
type names struct {
	Name     string // order-items: registry name, directory, binary, compose service
	Pascal   string // OrderItems
	Service  string // OrderItemsService: the protobuf service, and its Go name
	ProtoPkg string // order_items: the protobuf package
	GoPkg    string // orderitemspb: the generated Go package
	Module   string // the module path, from go.mod
}

// newNames derives the identifiers. The protobuf service's name is
// already what protoc-gen-micro makes of it in Go (camelCase leaves it as
// it is), so the templates can spell the generated names: for "e2e" the
// service is E2EService and main calls RegisterE2EServiceHandler.
func newNames(name, module string) names {
	var pascal strings.Builder
	for _, part := range strings.Split(name, "-") {
		pascal.WriteString(camelCase(part))
	}
	return names{
		Name:     name,
		Pascal:   pascal.String(),
		Service:  pascal.String() + "Service",
		ProtoPkg: strings.ReplaceAll(name, "-", "_"),
		GoPkg:    strings.ReplaceAll(name, "-", "") + "pb",
		Module:   module,
	}
}

// camelCase is protoc-gen-micro's generator.CamelCase (go-micro.dev/v4
// v4.7.0, which `make tools` builds), the Go name it gives a protobuf
// service; protoc-gen-go's strs.GoCamelCase is the same for names without
// '.'. A lowercase letter is capitalised at the start, after a digit and
// after a '_', which is dropped; other characters stay: "e2e" is "E2E",
// "order_items" is "OrderItems", "order_2nd" is "Order_2Nd".
func camelCase(s string) string {
	isLower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	if s == "" {
		return ""
	}
	t := make([]byte, 0, 32)
	i := 0
	if s[0] == '_' {
		t = append(t, 'X')
		i++
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c == '_' && i+1 < len(s) && isLower(s[i+1]) {
			continue
		}
		if isDigit(c) {
			t = append(t, c)
			continue
		}
		if isLower(c) {
			c ^= ' '
		}
		t = append(t, c)
		for i+1 < len(s) && isLower(s[i+1]) {
			i++
			t = append(t, s[i])
		}
	}
	return string(t)
}

// render returns the files of a new service, by path relative to the
// repository root.
func render(n names) (map[string][]byte, error) {
	const dir = "templates/service"
	files := map[string][]byte{}
	err := fs.WalkDir(templates, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(p).Delims("[[", "]]").Option("missingkey=error").Parse(string(src))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, n); err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, dir+"/"), ".tmpl")
		rel = strings.ReplaceAll(rel, "NAME", n.Name)
		files[path.Join("services", n.Name, rel)] = buf.Bytes()
		return nil
	})
	return files, err
}

// New adds the service name to the repository at root: services/<name>
// with its proto contract and generated code, handler, tests and main, an
// entry in docker-compose.yml (and docker-compose.ha.yml where there is
// one) and in the Makefile's SERVICES, and its
// Kubernetes manifest (addToKubernetes). It runs
// protoc with the plugins in root/bin (make tools) or on PATH. A bad or
// taken name is an ErrUsage error and nothing is written; a failure
// midway removes what was written.
func New(root, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	module, err := modulePath(root)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "services", name)
	if _, err := os.Lstat(dir); err == nil {
		return usageErrorf("service %q exists: %s", name, dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	n := newNames(name, module)
	if err := checkPackages(root, n); err != nil {
		return err
	}
	makefile, err := addToMakefile(filepath.Join(root, "Makefile"), name)
	if err != nil {
		return err
	}
	compose, err := addToCompose(filepath.Join(root, "docker-compose.yml"), name, composeEntry)
	if err != nil {
		return err
	}
	composeEdits := []edit{compose}
	haPath := filepath.Join(root, "docker-compose.ha.yml")
	if _, err := os.Stat(haPath); err == nil {
		ha, err := addToCompose(haPath, name, haComposeEntry)
		if err != nil {
			return err
		}
		composeEdits = append(composeEdits, ha)
	}
	k8s, err := addToKubernetes(root, name)
	if err != nil {
		return err
	}
	files, err := render(n)
	if err != nil {
		return fmt.Errorf("rendering the templates: %w", err)
	}
	protoc, err := findProtoc(root)
	if err != nil {
		return err
	}

	// Everything is written under a staging directory in root first (Go
	// ignores names starting with '.'), then moved into place in one
	// rename.
	stage, err := os.MkdirTemp(root, ".scaffold-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for rel, data := range files {
		if err := writeNew(filepath.Join(stage, filepath.FromSlash(rel)), data, 0o644); err != nil {
			return err
		}
	}
	protoRel := path.Join("services", name, "proto", name+".proto")
	if err := protoc.generate(stage, protoRel); err != nil {
		return err
	}

	if err := os.Rename(filepath.Join(stage, "services", name), dir); err != nil {
		return fmt.Errorf("moving the new service into place: %w", err)
	}
	undo := func() { os.RemoveAll(dir) }
	var edits edits
	for _, e := range slices.Concat([]edit{makefile}, composeEdits, k8s) {
		if err := edits.apply(e); err != nil {
			edits.revert()
			undo()
			return err
		}
	}
	return nil
}

var (
	protoPackageLine = regexp.MustCompile(`(?m)^\s*package\s+([A-Za-z0-9_.]+)\s*;`)
	goPackageOption  = regexp.MustCompile(`(?m)^\s*option\s+go_package\s*=\s*"([^"]*)"`)
)

// checkPackages refuses a name whose protobuf or Go package is an existing
// service's (services/*/proto/*.proto): a binary that links two protobuf
// packages of one name, each with its PingRequest, panics as it starts,
// and a program cannot import two Go packages of one name without
// renaming one. Names New derives
// differ in their protobuf packages, but "order-items" and "orderitems"
// share the Go package orderitemspb.
func checkPackages(root string, n names) error {
	protos, err := filepath.Glob(filepath.Join(root, "services", "*", "proto", "*.proto"))
	if err != nil {
		return err
	}
	for _, p := range protos {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if m := protoPackageLine.FindSubmatch(data); m != nil && string(m[1]) == n.ProtoPkg {
			return usageErrorf("service name %q: its protobuf package %s is already %s's", n.Name, n.ProtoPkg, rel)
		}
		if m := goPackageOption.FindSubmatch(data); m != nil {
			pkg := string(m[1])
			if i := strings.LastIndexByte(pkg, ';'); i >= 0 {
				pkg = pkg[i+1:]
			} else {
				pkg = path.Base(pkg)
			}
			if pkg == n.GoPkg {
				return usageErrorf("service name %q: its Go package %s is already %s's (choose a name that differs in more than '-')", n.Name, n.GoPkg, rel)
			}
		}
	}
	return nil
}

// modulePath reads the module path from root/go.mod.
func modulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%w (is %s the repository root?)", err, root)
	}
	m := regexp.MustCompile(`(?m)^module\s+"?([^\s"]+)"?\s*$`).FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("%s: no module line", filepath.Join(root, "go.mod"))
	}
	return string(m[1]), nil
}

// edit is a file's new content, and its old one to restore on failure.
type edit struct {
	path     string
	old, new []byte
	mode     fs.FileMode
}

// edits applies edits one by one, remembering them so revert can undo.
type edits []edit

func (es *edits) apply(e edit) error {
	if err := writeReplace(e.path, e.new, e.mode); err != nil {
		return err
	}
	*es = append(*es, e)
	return nil
}

func (es *edits) revert() {
	for _, e := range *es {
		if e.old == nil {
			os.Remove(e.path)
			continue
		}
		writeReplace(e.path, e.old, e.mode) //nolint:errcheck // best effort: already failing
	}
}

func readEdit(p string) (edit, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return edit{}, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return edit{}, err
	}
	return edit{path: p, old: data, mode: fi.Mode().Perm()}, nil
}

var servicesLine = regexp.MustCompile(`(?m)^SERVICES\s*:=(.*)$`)

// addToMakefile returns the Makefile with name added to its SERVICES line.
func addToMakefile(p, name string) (edit, error) {
	e, err := readEdit(p)
	if err != nil {
		return edit{}, err
	}
	idx := servicesLine.FindAllSubmatchIndex(e.old, -1)
	if len(idx) != 1 {
		return edit{}, fmt.Errorf("%s: want exactly one line `SERVICES := ...`, found %d", p, len(idx))
	}
	list := strings.Fields(string(e.old[idx[0][2]:idx[0][3]]))
	if slices.Contains(list, name) {
		return edit{}, usageErrorf("service %q is already in the Makefile's SERVICES", name)
	}
	end := idx[0][3]
	// Keep a trailing comment or spaces after the list where they are.
	line := string(e.old[idx[0][2]:end])
	trimmed := strings.TrimRight(line, " \t")
	insertAt := idx[0][2] + len(trimmed)
	if i := strings.Index(line, "#"); i >= 0 {
		insertAt = idx[0][2] + len(strings.TrimRight(line[:i], " \t"))
	}
	e.new = slices.Concat(e.old[:insertAt], []byte(" "+name), e.old[insertAt:])
	return e, nil
}

// composeEntry is a service's entry in docker-compose.yml, like hello's:
// the locked-down stack starts a service only with its own certificate and
// registry credentials, which make certs writes for every service in
// SERVICES.
const composeEntry = `  NAME:
    <<: *service
    image: micro-starter/NAME:dev
    env_file:
      - deploy/${REGISTRY:-consul}.env
      - certs/NAME.${REGISTRY:-consul}.env # its token or user (make certs)
    volumes:
      - ./certs/ca.crt:/certs/ca.crt:ro
      - ./certs/NAME.crt:/certs/service.crt:ro
      - ./certs/NAME.key:/certs/service.key:ro
      - ./certs/NAME.etcd-password:/run/secrets/etcd-password:ro
`

// haComposeEntry is a service's entry in docker-compose.ha.yml (make up
// PROFILE=ha), like hello's: without it a new service would know only one
// member of the clustered registry.
const haComposeEntry = `  NAME:
    env_file: deploy/${REGISTRY:-consul}-ha.env
`

// addToCompose returns the compose file p with entry (NAME replaced by
// name) at the end of its top-level services: map.
func addToCompose(p, name, entry string) (edit, error) {
	e, err := readEdit(p)
	if err != nil {
		return edit{}, err
	}
	lines := strings.SplitAfter(string(e.old), "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimRight(l, " \t\r\n") == "services:" {
			start = i
			break
		}
	}
	if start < 0 {
		return edit{}, fmt.Errorf("%s: no top-level services: map", p)
	}
	end := len(lines) // the line after the map's last line
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "#") {
			end = i
			break
		}
		if strings.TrimRight(l, " \t\r\n") == "  "+name+":" {
			return edit{}, usageErrorf("%s already has a service %q", filepath.Base(p), name)
		}
	}
	// Before the blank lines and top-level comments that end the map.
	for end > start+1 {
		l := lines[end-1]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			end--
			continue
		}
		break
	}
	last := lines[end-1]
	sep := "\n"
	if !strings.HasSuffix(last, "\n") {
		sep = "\n\n"
	}
	var b strings.Builder
	for _, l := range lines[:end] {
		b.WriteString(l)
	}
	b.WriteString(sep + strings.ReplaceAll(entry, "NAME", name))
	for _, l := range lines[end:] {
		b.WriteString(l)
	}
	e.new = []byte(b.String())
	return e, nil
}

// addToKubernetes returns the edits that give name a manifest in
// deploy/k8s/base: hello.yaml with the name replaced (its Deployment and
// PodDisruptionBudget; the NetworkPolicies and the overlays find it by its
// labels), listed after hello.yaml in the base's kustomization. A tree
// without hello's manifest gets none.
func addToKubernetes(root, name string) ([]edit, error) {
	base := filepath.Join(root, "deploy", "k8s", "base")
	hello, err := os.ReadFile(filepath.Join(base, "hello.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	file := filepath.Join(base, name+".yaml")
	if _, err := os.Lstat(file); err == nil {
		return nil, usageErrorf("%s exists", file)
	}
	kust, err := readEdit(filepath.Join(base, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	const helloItem = "  - hello.yaml\n"
	i := bytes.Index(kust.old, []byte(helloItem))
	if i < 0 {
		return nil, fmt.Errorf("%s: no resource %q to list %s.yaml after", kust.path, strings.TrimSpace(helloItem), name)
	}
	at := i + len(helloItem)
	kust.new = slices.Concat(kust.old[:at], []byte("  - "+name+".yaml\n"), kust.old[at:])
	// hello.yaml opens with how it is copied; the copy says what it is.
	body := string(hello)
	for strings.HasPrefix(body, "#") {
		_, body, _ = strings.Cut(body, "\n")
	}
	manifest := "# " + name + ": Deployment and PodDisruptionBudget (make new: hello.yaml with the name replaced).\n" +
		strings.ReplaceAll(body, "hello", name)
	return []edit{{path: file, new: []byte(manifest), mode: 0o644}, kust}, nil
}

// writeNew creates p and its directories; it fails if p exists.
func writeNew(p string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeReplace replaces p's content in one rename, so a reader never sees
// half a file.
func writeReplace(p string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
