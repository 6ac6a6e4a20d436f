package scaffold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
)

// CheckModule reports whether m can be the repository's module path.
func CheckModule(m string) error {
	if m == "" {
		return usageErrorf("module path is empty")
	}
	if err := module.CheckPath(m); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// Rename rewrites the module path of the repository at root to newModule
// everywhere: the module lines of every go.mod (tools/ included), imports,
// protobuf go_package options, docs and scripts: each occurrence of the
// old path in a text file that git tracks or would track (outside a git
// work tree: any file but those in .git, bin/ and .cache). The generated protobuf code is
// regenerated with protoc rather than edited, since its embedded
// descriptors carry the go_package string with its length. Changed Go
// files are gofmt'ed. Nothing is written unless every new file could be
// made; a write that fails midway restores the files already written.
func Rename(root, newModule string) error {
	if err := CheckModule(newModule); err != nil {
		return err
	}
	oldModule, err := modulePath(root)
	if err != nil {
		return err
	}
	if oldModule == newModule {
		return usageErrorf("the module is already %s", newModule)
	}
	files, err := listFiles(root)
	if err != nil {
		return err
	}

	var changes []edit
	var protos []string // every .proto file, with its new content staged
	staged := map[string][]byte{}
	for _, rel := range files {
		if isGenerated(rel) {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		e, err := readEdit(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree but still tracked
		}
		if err != nil {
			return err
		}
		if bytes.IndexByte(e.old, 0) >= 0 {
			continue // binary
		}
		newData, n := replacePath(e.old, oldModule, newModule)
		if strings.HasSuffix(rel, ".proto") {
			protos = append(protos, rel)
			staged[rel] = newData
		}
		if n == 0 {
			continue
		}
		if strings.HasSuffix(rel, ".go") {
			if formatted, err := format.Source(newData); err == nil {
				newData = formatted // import order may change
			}
		}
		e.new = newData
		changes = append(changes, e)
	}

	if len(protos) > 0 {
		gen, err := regenerate(root, protos, staged)
		if err != nil {
			return err
		}
		changes = append(changes, gen...)
	}

	var done edits
	for _, e := range changes {
		if bytes.Equal(e.old, e.new) {
			continue
		}
		if err := done.apply(e); err != nil {
			done.revert()
			return fmt.Errorf("writing %s: %w (files already rewritten were restored)", e.path, err)
		}
	}
	return nil
}

// isGenerated reports whether rel is protobuf code that Rename regenerates.
func isGenerated(rel string) bool {
	return strings.HasSuffix(rel, ".pb.go") || strings.HasSuffix(rel, ".pb.micro.go")
}

// replacePath replaces the module path old, and the paths under it, in
// data: old must not be part of a longer path element on either side
// (the path of module a/b is no part of a/b-c/d).
func replacePath(data []byte, old, new string) ([]byte, int) {
	var out bytes.Buffer
	n := 0
	rest := data
	for {
		i := bytes.Index(rest, []byte(old))
		if i < 0 {
			out.Write(rest)
			return out.Bytes(), n
		}
		end := i + len(old)
		before := i > 0 && isPathChar(rest[i-1]) && rest[i-1] != '/'
		// A '.' that ends a sentence is no part of the path.
		after := end < len(rest) && isPathChar(rest[end]) && rest[end] != '/' &&
			(rest[end] != '.' || end+1 < len(rest) && isPathChar(rest[end+1]))
		out.Write(rest[:i])
		if before || after {
			out.WriteString(old)
		} else {
			out.WriteString(new)
			n++
		}
		rest = rest[end:]
	}
}

func isPathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0
}

// regenerate runs protoc on the new .proto files in a staging directory
// and returns the generated files as edits of root. The whole proto tree
// is staged so that imports between .proto files resolve.
func regenerate(root string, protos []string, staged map[string][]byte) ([]edit, error) {
	pc, err := findProtoc(root)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(root, ".scaffold-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	for _, rel := range protos {
		if err := writeNew(filepath.Join(stage, filepath.FromSlash(rel)), staged[rel], 0o644); err != nil {
			return nil, err
		}
	}
	var out []edit
	for _, rel := range protos {
		if err := pc.generate(stage, rel); err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(rel, ".proto")
		for _, gen := range []string{base + ".pb.go", base + ".pb.micro.go"} {
			data, err := os.ReadFile(filepath.Join(stage, filepath.FromSlash(gen)))
			if err != nil {
				return nil, fmt.Errorf("protoc %s: %w", rel, err)
			}
			p := filepath.Join(root, filepath.FromSlash(gen))
			e, err := readEdit(p)
			if errors.Is(err, fs.ErrNotExist) {
				e = edit{path: p, mode: 0o644} // old nil: revert removes it
			} else if err != nil {
				return nil, err
			}
			e.new = data
			out = append(out, e)
		}
	}
	return out, nil
}

// listFiles lists the files Rename considers, slash-separated and relative
// to root: what git tracks plus untracked files it does not ignore, or
// outside a git work tree every regular file but those under .git, bin/
// and .cache.
func listFiles(root string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		var files []string
		seen := map[string]bool{}
		for _, f := range strings.Split(string(out), "\x00") {
			if f != "" && !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
		return files, nil
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" || rel == ".cache" || strings.HasPrefix(path.Base(rel), ".scaffold-") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}
