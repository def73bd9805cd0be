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
	"github.com/atollhq/atoll/cli/rollout"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/runtime"
)

// devRegistry is atoll dev's container demo: an embedded registry on
// loopback holding an image of this binary.
type devRegistry struct {
	host    string // host:port, "" when the demo is skipped
	skipped string // why it is skipped
	ref     string // the demo image's reference
	exe     string // the binary the image holds
}

// startDevRegistry serves a registry on a loopback port kept across
// restarts (the demo workload names it); applyContainerDemo pushes the
// image later. When this machine cannot run containers, it says why and
// starts nothing: dev runs on without the container demo.
func startDevRegistry(ctx context.Context, log *slog.Logger, dataDir, bin string) *devRegistry {
	d := &devRegistry{exe: filepath.Join(bin, "atoll")}
	if ok, why := runtime.ContainerSupport(""); !ok {
		d.skipped = why
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
	return d
}

// pushSelfImage builds an image of exe (with its shared libraries when
// it is not static) whose command is `atoll demo-http`, pushes it and
// returns its digest.
func pushSelfImage(ctx context.Context, exe, ref string) (string, error) {
	img, err := image.ExecutableImage(exe, "atoll", v1.Config{Cmd: []string{"demo-http"}})
	if err != nil {
		return "", err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

// applyContainerDemo pushes the image (the registry keeps it in memory:
// every start pushes it again) and creates, once, demo-container: one
// replica of it serving demo-http. It first lets the stack settle (until
// demo-web is ready, or a while has passed): building and pulling an
// image of the whole binary is heavy work for a small machine, which the
// regions' first heartbeats and node joins should not wait behind.
func applyContainerDemo(ctx context.Context, log *slog.Logger, d *devRegistry, hubURL, tokenPath, dataDir string) error {
	if d.host == "" {
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
	c := client.New(hubURL, admin, nil)
	settle := time.NewTimer(2 * time.Minute)
	defer settle.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for settled := false; !settled; {
		var w api.Workload
		err := c.Get(ctx, "workloads", "demo-web", &w)
		var p *api.Problem
		settled = (err == nil && w.Status.ReadyReplicas >= w.Spec.Replicas) || (errors.As(err, &p) && p.Code == api.CodeNotFound)
		if settled {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-settle.C:
			settled = true
		case <-tick.C:
		}
	}
	digest, err := pushSelfImage(ctx, d.exe, d.ref)
	if err != nil {
		return fmt.Errorf("push the container demo's image: %w", err)
	}
	log.InfoContext(ctx, "container demo image pushed", "image", d.ref, "digest", digest)
	marker := filepath.Join(dataDir, "demo-container-applied")
	if _, err := os.Stat(marker); err == nil {
		return restartOnNewDigest(ctx, log, c, digest)
	}
	w := api.Workload{Metadata: api.ObjectMeta{Name: "demo-container", Labels: map[string]string{"app": "demo-container"}}, Spec: api.WorkloadSpec{
		Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: d.ref,
			Env:       []api.EnvVar{{Name: "GREETING", Value: "hello from a container in atoll dev"}},
			Resources: api.Resources{CPU: "100m", Memory: "64Mi"},
			Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 2}},
	}}
	err = c.Create(ctx, "workloads", w, nil)
	var p *api.Problem
	if err != nil && !(errors.As(err, &p) && p.Code == api.CodeAlreadyExists) {
		return fmt.Errorf("demo workload demo-container: %w", err)
	}
	return os.WriteFile(marker, []byte("the container demo workload was applied; delete this file to apply it again\n"), 0o600)
}

// restartOnNewDigest restarts demo-container when its revision runs
// another digest than the one just pushed (a rebuilt atoll): the hub
// pinned the revision to the old image, which the embedded registry
// (in memory) no longer holds, so a node without it in its cache could
// not start it. A restart is a new revision, which the hub resolves again.
func restartOnNewDigest(ctx context.Context, log *slog.Logger, c *client.Client, digest string) error {
	revs, err := c.Revisions(ctx, "demo-container")
	var p *api.Problem
	if errors.As(err, &p) && p.Code == api.CodeNotFound {
		return nil // deleted by its user
	}
	if err != nil || len(revs.Items) == 0 {
		return err
	}
	if pinned := revs.Items[len(revs.Items)-1].ImageDigest; pinned == "" || pinned == digest {
		return nil
	}
	if _, err := rollout.Restart(ctx, c, "demo-container", time.Now()); err != nil {
		return fmt.Errorf("restart demo-container on the rebuilt image: %w", err)
	}
	log.InfoContext(ctx, "demo-container restarted: atoll was rebuilt, so its image has a new digest", "digest", digest)
	return nil
}
