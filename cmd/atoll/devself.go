package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// installSelf keeps a copy of this executable as <dataDir>/bin/atoll and
// returns that folder. atoll dev's node agents look commands up there
// first, so replicas whose command is "atoll" (the examples, the demo)
// run whether or not atoll is on the PATH, and keep running across a
// restart of a dev stack started with `go run`, whose own executable is a
// temporary build deleted when it exits. The copy is replaced (by a
// rename: replicas running the old one keep it) only when it differs.
func installSelf(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "bin")
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this executable: %w", err)
	}
	self, err := os.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("read this executable: %w", err)
	}
	dst := filepath.Join(dir, "atoll")
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, self) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := writeFileAtomic(dst, self, 0o755); err != nil {
		return "", fmt.Errorf("keep a copy of this executable: %w", err)
	}
	return dir, nil
}

// repairDemoCommand points demo-web back at "atoll" when an earlier dev
// pinned it to an executable that is gone (`go run`'s temporary build).
func repairDemoCommand(ctx context.Context, c *client.Client) error {
	var w api.Workload
	if err := c.Get(ctx, "workloads", "demo-web", &w); err != nil {
		var p *api.Problem
		if errors.As(err, &p) && p.Code == api.CodeNotFound {
			return nil
		}
		return err
	}
	cmd := w.Spec.Template.Command
	if !filepath.IsAbs(cmd) {
		return nil
	}
	if _, err := os.Stat(cmd); err == nil {
		return nil
	}
	patch := []byte(`{"spec":{"template":{"command":"atoll"}}}`)
	return c.Patch(ctx, "workloads", "demo-web", patch, nil)
}
