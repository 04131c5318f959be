package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The key secret is made on the first run, readable by its owner only, and
// read back unchanged on the next, so bare keys keep their client ids.
func TestKeySecretPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key-secret")
	first, err := keySecret(path)
	if err != nil {
		t.Fatalf("keySecret(new) = %v", err)
	}
	if len(first) != 32 {
		t.Errorf("new secret has %d bytes, want 32", len(first))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the secret was not written: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("secret file mode %v, want 0600", mode)
	}
	again, err := keySecret(path)
	if err != nil {
		t.Fatalf("keySecret(existing) = %v", err)
	}
	if !bytes.Equal(first, again) {
		t.Error("the secret changed between two runs")
	}
}
