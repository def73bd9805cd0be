package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/runtime"
)

// devRegistry is atoll dev's container demo: an embedded registry on
// loopback holding an image of this binary.
type devRegistry struct {
	host    string        // host:port, "" when the demo is skipped
	skipped string        // why it is skipped
	ref     string        // the demo image's reference
	pushed  chan struct{} // closed once the image is pushed (or failed)
	err     error         // the push's error
}

// startDevRegistry serves a registry on a loopback port kept across
// restarts (the demo workload names it) and pushes an image of the copy
// of atoll in bin in the background. When this machine cannot run
// containers, it says why and starts nothing: dev runs on without the
// container demo.
func startDevRegistry(ctx context.Context, log *slog.Logger, dataDir, bin string) *devRegistry {
	d := &devRegistry{pushed: make(chan struct{})}
	if ok, why := runtime.ContainerSupport(""); !ok {
		d.skipped = why
		close(d.pushed)
		log.WarnContext(ctx, "the container demo is skipped", "why", why)
		return d
	}
	addr, err := stablePort(dataDir, "registry", "127.0.0.1:0")
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		d.skipped = "no port for the embedded registry: " + err.Error()
		close(d.pushed)
		log.WarnContext(ctx, "the container demo is skipped", "why", d.skipped)
		return d
	}
	d.host = ln.Addr().String()
	d.ref = d.host + "/atoll/demo:dev"
	srv := &http.Server{Handler: registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.ErrorContext(ctx, "embedded registry", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		defer close(d.pushed)
		d.err = pushSelfImage(ctx, filepath.Join(bin, "atoll"), d.ref)
		if d.err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "the container demo's image was not pushed", "err", d.err)
			}
			return
		}
		log.InfoContext(ctx, "container demo image pushed", "image", d.ref)
	}()
	return d
}

// pushSelfImage builds an image of exe (with its shared libraries when
// it is not static) whose command is `atoll demo-http`, and pushes it.
func pushSelfImage(ctx context.Context, exe, ref string) error {
	img, err := image.ExecutableImage(exe, "atoll", v1.Config{Cmd: []string{"demo-http"}})
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img, remote.WithContext(ctx))
}

// applyContainerDemo creates, once, demo-container: one replica of the
// pushed image serving demo-http.
func applyContainerDemo(ctx context.Context, d *devRegistry, hubURL, tokenPath, dataDir string) error {
	if d.host == "" {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.pushed:
	}
	if d.err != nil {
		return d.err
	}
	marker := filepath.Join(dataDir, "demo-container-applied")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	admin := os.Getenv("ATOLL_ADMIN_TOKEN")
	if admin == "" {
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			return err
		}
		admin = strings.TrimSpace(string(b))
	}
	w := api.Workload{Metadata: api.ObjectMeta{Name: "demo-container", Labels: map[string]string{"app": "demo-container"}}, Spec: api.WorkloadSpec{
		Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: d.ref,
			Env:       []api.EnvVar{{Name: "GREETING", Value: "hello from a container in atoll dev"}},
			Resources: api.Resources{CPU: "100m", Memory: "64Mi"},
			Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 2}},
	}}
	err := client.New(hubURL, admin, nil).Create(ctx, "workloads", w, nil)
	var p *api.Problem
	if err != nil && !(errors.As(err, &p) && p.Code == api.CodeAlreadyExists) {
		return fmt.Errorf("demo workload demo-container: %w", err)
	}
	return os.WriteFile(marker, []byte("the container demo workload was applied; delete this file to apply it again\n"), 0o600)
}
