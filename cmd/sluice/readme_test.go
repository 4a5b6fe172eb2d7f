package main

import (
	"os"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/config"
)

// The README's configuration reference is generated from the code; this
// keeps it from going stale. Regenerate the block between the markers with
// `go run ./cmd/sluice config reference`.
func TestReadmeHasConfigReference(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "<!-- reference:start -->\n")
	end := strings.Index(s, "<!-- reference:end -->")
	if start < 0 || end < start {
		t.Fatal("README has no reference markers")
	}
	got := s[start+len("<!-- reference:start -->\n") : end]
	if strings.TrimSpace(got) != strings.TrimSpace(config.Reference()) {
		t.Fatal("README configuration reference is stale: paste `go run ./cmd/sluice config reference` between the markers")
	}
}

func TestSecretFromFile(t *testing.T) {
	f := t.TempDir() + "/pw"
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	if v, err := secret("inline", f, "main", "SASL_PASSWORD_FILE"); err != nil || v != "s3cret" {
		t.Fatalf("from file: %q %v", v, err)
	}
	if v, err := secret("inline", "", "main", "SASL_PASSWORD_FILE"); err != nil || v != "inline" {
		t.Fatalf("inline: %q %v", v, err)
	}
	if _, err := secret("", f+".missing", "main", "TOKEN_FILE"); err == nil || !strings.Contains(err.Error(), "SLUICE_MAIN_TOKEN_FILE") {
		t.Fatalf("missing file: %v", err)
	}
}
