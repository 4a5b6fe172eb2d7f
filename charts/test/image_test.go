package test

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const repoRoot = "../.."

// TestBuildStatic copies the Docker build context (the repository filtered by
// .dockerignore, as `docker build` sends it), runs scripts/build-static there
// as the Dockerfile does, and checks the binary: a static ELF (no program
// interpreter, no shared libraries) carrying the version given in VERSION.
// Building in the filtered copy also proves .dockerignore keeps what the
// build needs.
func TestBuildStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	if m, _ := filepath.Glob(filepath.Join(repoRoot, "cmd", "sluice", "*.go")); len(m) == 0 {
		t.Skip("cmd/sluice does not exist yet: nothing to build, static ELF and version stamp not checked")
	}
	ctx := t.TempDir()
	copyBuildContext(t, repoRoot, ctx)

	out := filepath.Join(t.TempDir(), "sluice")
	version := fmt.Sprintf("v0.0.0-imagetest.%d", os.Getpid())
	cmd := exec.Command("sh", filepath.Join(ctx, "scripts", "build-static"), out)
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "VERSION="+version)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-static in the Docker build context: %v\n%s", err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("not an ELF file: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a PT_INTERP program header: it needs a dynamic loader")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil {
		t.Errorf("read DT_NEEDED: %v", err)
	} else if len(libs) > 0 {
		t.Errorf("binary needs shared libraries (DT_NEEDED): %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -s -w did not take effect")
	}

	// -X main.version: the string is in the binary, and `sluice version` prints it.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(version)) {
		t.Errorf("binary does not contain the version %q: -X main.version did not take effect", version)
	}
	got, err := exec.Command(out, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice version: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), version) {
		t.Errorf("sluice version printed %q, want it to contain %q", got, version)
	}
}

// copyBuildContext copies the files of src that .dockerignore does not
// exclude into dst.
func copyBuildContext(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
}

func copyFile(from, to string) error {
	info, err := os.Stat(from)
	if err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestDockerfile checks the image recipe without a Docker engine: the build
// goes through scripts/build-static (the only place of the build flags) and
// the final stage is distroless, non-root, with the spool directory set.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	stages := regexp.MustCompile(`(?m)^FROM\s`).Split(text, -1)[1:]
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !regexp.MustCompile(`^(--platform=\S+\s+)?golang:\$\{GO_VERSION\}`).MatchString(build) ||
		!strings.Contains(text, "ARG GO_VERSION=1.26") {
		t.Errorf("builder stage must be golang:1.26")
	}
	if !strings.Contains(build, "scripts/build-static /out/sluice") {
		t.Error("builder stage must run scripts/build-static /out/sluice")
	}
	if strings.Contains(text, "-ldflags") || strings.Contains(text, "CGO_ENABLED") || strings.Contains(text, "go build") {
		t.Error("build flags belong in scripts/build-static only")
	}
	for _, want := range []string{
		"gcr.io/distroless/static-debian12:nonroot",
		"\nUSER 65532:65532\n",
		"\nENV SLUICE_SPOOL_DIR=/var/lib/sluice\n",
		"\nEXPOSE 7103\n",
		`ENTRYPOINT ["/usr/local/bin/sluice"]`,
	} {
		if !strings.Contains(final, want) {
			t.Errorf("final stage lacks %q", strings.TrimSpace(want))
		}
	}
	if regexp.MustCompile(`(?m)^RUN\s`).MatchString(final) {
		t.Error("final stage runs commands: the distroless image has no shell")
	}
	script, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "build-static"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=$VERSION"`, "./cmd/sluice"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("scripts/build-static lacks %q", want)
		}
	}
}
