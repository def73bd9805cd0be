package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeptPort: a listen address asking for any port is left to the
// server's bind the first time (new), and has the port kept then on the
// next runs; an address with a port is used as it is.
func TestKeptPort(t *testing.T) {
	dir := t.TempDir()
	if addr, fresh := keptPort(dir, "leaf", "10.0.0.1:0"); addr != "10.0.0.1:0" || !fresh {
		t.Fatalf("first run: %s, new %v; want 10.0.0.1:0, new", addr, fresh)
	}
	if err := keepPort(dir, "leaf", "27422"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "leaf.port")); err != nil || string(b) != "27422\n" {
		t.Fatalf("kept: %q, %v", b, err)
	}
	if addr, fresh := keptPort(dir, "leaf", "10.0.0.1:0"); addr != "10.0.0.1:27422" || fresh {
		t.Fatalf("next run: %s, new %v; want 10.0.0.1:27422, not new", addr, fresh)
	}
	if addr, fresh := keptPort(dir, "leaf", "10.0.0.1:7422"); addr != "10.0.0.1:7422" || fresh {
		t.Fatalf("a port given: %s, new %v; want it as it is", addr, fresh)
	}
}
