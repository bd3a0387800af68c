// Package ownmodule_test checks that shadowsync works from a module of a user's own:
// the program of docs/getting-started.md ("In your own module") is written, exactly as
// the page shows it, into a new module outside this repository, which is then vetted,
// built, tested and run with the go command, offline.
package ownmodule_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// commandTimeout bounds each go command run in the user's module.
const commandTimeout = 3 * time.Minute

// docPage is the page whose marked code blocks are the user's module, relative to the
// repository's root.
const docPage = "docs/getting-started.md"

// marked matches a code block the page marks as a file of the user's module:
//
//	<!-- ownmodule: main.go -->
//	```go
//	...
//	```
var marked = regexp.MustCompile("(?ms)^<!-- ownmodule: ([^ ]+) -->\n```go\n(.*?)^```$")

// modFiles returns the files the page shows for the user's module, by name.
func modFiles(t *testing.T, page string) map[string]string {
	t.Helper()
	text, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if n, m := strings.Count(string(text), "<!-- ownmodule:"), len(marked.FindAllSubmatch(text, -1)); n != m {
		t.Fatalf("%s: %d ownmodule markers but %d of them right before a ```go block", docPage, n, m)
	}
	files := map[string]string{}
	for _, m := range marked.FindAllSubmatch(text, -1) {
		name := string(m[1])
		if name != filepath.Base(name) || !strings.HasSuffix(name, ".go") {
			t.Fatalf("%s: ownmodule file %q: want a .go file name without a directory", docPage, name)
		}
		if _, dup := files[name]; dup {
			t.Fatalf("%s: ownmodule file %q marked twice", docPage, name)
		}
		files[name] = string(m[2])
	}
	for _, want := range []string{"main.go", "light_test.go"} {
		if _, ok := files[want]; !ok {
			t.Fatalf("%s shows no %s (marked <!-- ownmodule: %s -->); it shows %d file(s)", docPage, want, want, len(files))
		}
	}
	return files
}

// TestOwnModule writes the module and runs, in it, what a user would: go mod tidy,
// go vet, go build, go test and go run . — the last on the embedded localiot, where the
// program must converge and exit 0 by itself.
func TestOwnModule(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs a module of its own")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not on PATH (%v): cannot build a module of a user's own", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	files := modFiles(t, filepath.Join(root, docPage))

	dir := t.TempDir()
	if rel, err := filepath.Rel(root, dir); err != nil || !strings.HasPrefix(rel, "..") {
		t.Fatalf("the module must live outside the repository: %s is in %s", dir, root)
	}
	goMod := fmt.Sprintf(`module example.com/light

go 1.26.0

require github.com/shadowsync/shadowsync v0.0.0-00010101000000-000000000000

replace github.com/shadowsync/shadowsync => %s
`, root)
	write(t, filepath.Join(dir, "go.mod"), []byte(goMod))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "go.sum"), sum)
	for name, src := range files {
		write(t, filepath.Join(dir, name), []byte(src))
	}

	// Offline: every module needed is in the module cache, which building this
	// repository's own packages and tests filled, and go.sum is the repository's, so
	// neither a proxy nor the checksum database is asked anything. -mod=mod lets go
	// mod tidy add Ginkgo and Gomega, which only the user's tests import, as direct
	// requirements.
	env := append(os.Environ(),
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
	goCmd := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		cmd.WaitDelay = 5 * time.Second // a child still holding the output pipe after a kill
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start).Round(time.Millisecond)
		if ctx.Err() != nil {
			t.Fatalf("go %s: no result within %v:\n%s", strings.Join(args, " "), commandTimeout, out.String())
		}
		if err != nil {
			t.Fatalf("go %s (%v): %v\n%s", strings.Join(args, " "), took, err, out.String())
		}
		t.Logf("go %s: ok in %v", strings.Join(args, " "), took)
		return out.String()
	}

	goCmd("mod", "tidy")
	if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err != nil || !bytes.Contains(mod, []byte("github.com/onsi/ginkgo/v2")) {
		t.Fatalf("go.mod after go mod tidy (%v):\n%s", err, mod)
	}
	goCmd("vet", "./...")
	goCmd("build", "./...")
	goCmd("test", "-count=1", "./...")
	out := goCmd("run", ".")
	for _, want := range []string{"light light-1 connected to mqtt://127.0.0.1:", "light-1: on=true brightness=60", "converged"} {
		if !strings.Contains(out, want) {
			t.Errorf("go run . printed no %q:\n%s", want, out)
		}
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
