package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/entry"
	"github.com/atollhq/atoll/hub/pgserver"
	"github.com/atollhq/atoll/internal/ports"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/telemetry"
)

func newDevCmd() *cobra.Command {
	o := &hubOptions{}
	var noDemo bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine: a private PostgreSQL, the hub and three regions",
		Long: `Runs the whole stack in one process for trying Atoll out and for development.

Without --database-url it starts a private PostgreSQL from this machine's
binaries, keeping its data in <data-dir>/postgres, so a restart keeps
everything; the hub connects to it as atoll_hub, which is not a superuser,
and migrates as atoll_owner. The NATS signing keys kept in the database are
sealed with the key in <data-dir>/atoll.key (mode 0600), made at the first
start: keep it with the data folder. Three member clusters (us-east, eu-west, ap-south) run in the
same process and join through the same registration path as separate
'atoll member' processes. Ctrl-C stops it all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, err := o.logs.newLogger()
			if err != nil {
				return err
			}
			if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
				return err
			}
			if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			bin, err := installSelf(o.dataDir)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", o.listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (is another atoll dev running? pick another --listen)", o.listen, err)
			}
			// Members keep the leaf URL they registered with: keep the ports
			// the first run's NATS bound, so a restarted dev does not strand
			// them. The first run lets NATS pick them as it binds (a port
			// picked first and bound a moment later could be taken
			// meanwhile, on a busy machine) and writes them down then.
			leafKept, leafNew := keptPort(o.dataDir, "leaf", o.leafListen)
			natsKept, natsNew := keptPort(o.dataDir, "nats", o.natsListen)
			o.leafListen, o.natsListen = leafKept, natsKept
			o.natsStarted = func(leafPort int, clientURL string) error {
				if leafNew {
					if err := keepPort(o.dataDir, "leaf", strconv.Itoa(leafPort)); err != nil {
						return err
					}
				}
				if natsNew {
					u, err := url.Parse(clientURL)
					if err != nil {
						return fmt.Errorf("keep the nats port: %w", err)
					}
					return keepPort(o.dataDir, "nats", u.Port())
				}
				return nil
			}
			if o.db.url == "" {
				pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(o.dataDir, "postgres"), Durable: true, Logger: log})
				if err != nil {
					ln.Close()
					if errors.Is(err, pgserver.ErrNoBinaries) {
						return fmt.Errorf("atoll dev needs PostgreSQL's server binaries (initdb, postgres): %w", err)
					}
					return err
				}
				defer pg.Stop()
				// The hub connects as a role that is not a superuser;
				// migrations run as the database's owner.
				o.db.url, o.db.migrateURL = pg.HubURL(), pg.OwnerURL()
				log.InfoContext(ctx, "private PostgreSQL running", "data", filepath.Join(o.dataDir, "postgres"))
			}
			reg := &devRegistry{skipped: "--no-demo"}
			if !noDemo {
				reg = startDevRegistry(ctx, log, o.dataDir, bin)
			}
			if reg.host != "" {
				// The hub resolves the demo image's tag there.
				o.registry.Insecure = []string{reg.host}
			}
			url := "http://" + ln.Addr().String()
			var members sync.WaitGroup
			defer members.Wait()
			gateways, err := devGatewayAddrs(o.dataDir)
			if err != nil {
				ln.Close()
				return err
			}
			// Drills' probes send through each region's gateway (named by
			// its region) and the global entry ("global").
			entryListen, err := stablePort(o.dataDir, "entry", "127.0.0.1:0")
			if err != nil {
				ln.Close()
				return err
			}
			o.entryPoints = map[string]string{"global": "http://" + entryListen}
			for _, r := range devRegions {
				o.entryPoints[r] = "http://" + gateways[r]
			}
			return runHub(ctx, log, o, ln, func(tokenPath string, tel *telemetry.Providers) {
				if err := startDevMembers(ctx, &members, log, url, tokenPath, o.dataDir, bin, reg.host, gateways, tel); err != nil {
					log.ErrorContext(ctx, "the dev regions did not start", "err", err)
				}
				entryAddr, err := startDevEntry(ctx, &members, log, o.dataDir, gateways, tel)
				if err != nil {
					log.ErrorContext(ctx, "the dev global entry did not start", "err", err)
				}
				if !noDemo {
					if err := applyDemo(ctx, url, tokenPath, o.dataDir); err != nil {
						log.ErrorContext(ctx, "the demo workloads were not applied", "err", err)
					}
				}
				if !noDemo {
					members.Add(1)
					go func() {
						defer members.Done()
						if err := applyContainerDemo(ctx, log, reg, url, tokenPath, o.dataDir); err != nil && ctx.Err() == nil {
							log.ErrorContext(ctx, "the container demo workload was not applied", "err", err)
						}
					}()
				}
				printDevBanner(cmd.OutOrStdout(), url, tokenPath, gateways, entryAddr)
				if reg.skipped != "" && !noDemo {
					fmt.Fprintf(cmd.OutOrStdout(), "Container demo skipped: %s.\n\n", reg.skipped)
				} else if !noDemo {
					fmt.Fprintf(cmd.OutOrStdout(), "Container demo: workload demo-container runs image %s (embedded registry) with runc.\n\n", reg.ref)
				}
				log.InfoContext(ctx, "atoll dev is ready", "console", url+"/", "api", url+"/api/v1", "admin_token", tokenPath, "regions", devRegions)
			})
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", defaultDevDir(), "folder for PostgreSQL's data, the admin token and the key-encryption key")
	cmd.Flags().BoolVar(&noDemo, "no-demo", false, "do not apply the demo workloads at first start")
	cmd.Flags().StringVar(&o.db.url, "database-url", "", "use this PostgreSQL instead of a private one")
	cmd.Flags().StringVar(&o.db.migrateURL, "migrate-database-url", "", "with --database-url: the schema owner's URL, for migrations (default: --database-url)")
	addKeyFlag(cmd.Flags(), &o.keyFiles, "; else <data-dir>/"+keyFileName+", made at the first start")
	o.generateKey = true
	o.addFlags(cmd, "127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:0")
	return cmd
}

// printDevBanner tells a person where everything is and what to try next.
// It goes to standard output, apart from the logs on standard error.
func printDevBanner(w io.Writer, url, tokenPath string, gateways map[string]string, entryAddr string) {
	fmt.Fprintf(w, "\nAtoll dev is ready.\n")
	fmt.Fprintf(w, "  Console:      %s/\n", url)
	fmt.Fprintf(w, "  API:          %s/api/v1  (OpenAPI: %s/openapi.json)\n", url, url)
	fmt.Fprintf(w, "  Regions:      %s (joining)\n", strings.Join(devRegions, ", "))
	for _, r := range devRegions {
		fmt.Fprintf(w, "  Gateway:      http://%s/svc/demo-web/  (%s; DNS %s)\n", gateways[r], r, gateways["dns-"+r])
	}
	if entryAddr != "" {
		fmt.Fprintf(w, "  Global entry: http://%s/svc/demo-web/  (atoll gateway: the nearest healthy region)\n", entryAddr)
	}
	if tokenPath == "" {
		fmt.Fprintf(w, "  Admin token:  from ATOLL_ADMIN_TOKEN\n\n")
		return
	}
	fmt.Fprintf(w, "  Admin token:  %s (sign in to the console with it)\n\n", tokenPath)
	fmt.Fprintf(w, "Next, in another terminal:\n")
	fmt.Fprintf(w, "  go build -o atoll ./cmd/atoll\n")
	fmt.Fprintf(w, "  export ATOLL_SERVER=%s ATOLL_TOKEN=$(cat %s)\n", url, tokenPath)
	fmt.Fprintf(w, "  ./atoll get clusters\n\n")
}

// applyDemo creates, at first start only, two demo workloads: a small web
// service the binary itself serves (demo-http, from the copy installSelf
// keeps) on three replicas, one per region, and simulated replicas
// weighted by free capacity.
func applyDemo(ctx context.Context, hubURL, tokenPath, dataDir string) error {
	admin := os.Getenv("ATOLL_ADMIN_TOKEN")
	if admin == "" {
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			return err
		}
		admin = strings.TrimSpace(string(b))
	}
	c := client.New(hubURL, admin, nil)
	marker := filepath.Join(dataDir, "demo-applied")
	if _, err := os.Stat(marker); err == nil {
		if err := repairDemoCommand(ctx, c); err != nil {
			return err
		}
		return ensureDemoService(ctx, c)
	}
	demos := []api.Workload{
		{Metadata: api.ObjectMeta{Name: "demo-web", Labels: map[string]string{"app": "demo-web"}}, Spec: api.WorkloadSpec{
			Replicas: 3,
			Template: api.ReplicaTemplate{Driver: "process", Command: "atoll", Args: []string{"demo-http"},
				Env:       []api.EnvVar{{Name: "GREETING", Value: "hello from atoll dev"}},
				Resources: api.Resources{CPU: "50m", Memory: "32Mi"},
				Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 2}},
			Placement: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: api.LabelRegion, MinGroups: 3}}},
		}},
		{Metadata: api.ObjectMeta{Name: "demo-ledger", Labels: map[string]string{"app": "demo-ledger"}}, Spec: api.WorkloadSpec{
			Replicas:  12,
			Template:  api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "250m", Memory: "128Mi"}, Sim: &api.SimSpec{StartLatency: "300ms"}},
			Placement: &api.PlacementPolicy{Weights: &api.WeightPolicy{Type: "dynamic"}},
		}},
	}
	for _, w := range demos {
		err := c.Create(ctx, "workloads", w, nil)
		var p *api.Problem
		if err != nil && !(errors.As(err, &p) && p.Code == api.CodeAlreadyExists) {
			return fmt.Errorf("demo workload %s: %w", w.Metadata.Name, err)
		}
	}
	if err := ensureDemoService(ctx, c); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte("the demo workloads were applied; delete this file to apply them again\n"), 0o600)
}

// ensureDemoService exposes demo-web as a service through every gateway
// and the global entry (its own region first, then the others), when the
// workload exists and the service does not: a dev folder from before
// services gets it at its next start.
func ensureDemoService(ctx context.Context, c *client.Client) error {
	var p *api.Problem
	if err := c.Get(ctx, "workloads", "demo-web", &api.Workload{}); errors.As(err, &p) && p.Code == api.CodeNotFound {
		return nil
	}
	svc := api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"}, Metadata: api.ObjectMeta{Name: "demo-web", Labels: map[string]string{"app": "demo-web"}},
		Spec: api.ServiceSpec{Workload: "demo-web", Ports: []api.ServicePort{{Name: "http", Protocol: "http"}},
			Health:   &api.ServiceHealth{Path: "/healthz"},
			Locality: &api.LocalityPolicy{Failover: devRegions}, Retries: &api.RetryPolicy{Attempts: 2}}}
	err := c.Create(ctx, "services", svc, nil)
	if err != nil && !(errors.As(err, &p) && p.Code == api.CodeAlreadyExists) {
		return fmt.Errorf("demo service demo-web: %w", err)
	}
	return nil
}

// devRegions are the member clusters atoll dev runs, one per region.
var devRegions = []string{"us-east", "eu-west", "ap-south"}

// startDevMembers runs one in-process member per dev region. They join
// through the same path as separate member processes: a join token and
// the registration API.
func startDevMembers(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, hubURL, tokenPath, dataDir, bin, registry string, gateways map[string]string, tel *telemetry.Providers) error {
	admin := os.Getenv("ATOLL_ADMIN_TOKEN")
	if admin == "" && tokenPath != "" {
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			return err
		}
		admin = strings.TrimSpace(string(b))
	}
	joinToken := ""
	for _, region := range devRegions {
		dir := filepath.Join(dataDir, "members", region)
		if _, err := os.Stat(filepath.Join(dir, "identity.json")); err == nil {
			continue // joined before: it comes back with its own credentials
		}
		if joinToken == "" {
			if admin == "" {
				return errors.New("no admin token to make a join token with (set ATOLL_ADMIN_TOKEN)")
			}
			var created api.Token
			name := fmt.Sprintf("dev-join-%d", time.Now().Unix())
			err := client.New(hubURL, admin, nil).Create(ctx, "tokens", api.Token{Metadata: api.ObjectMeta{Name: name},
				Spec: api.TokenSpec{Type: api.TokenJoin, TTL: "10m", Uses: int32(len(devRegions)), Description: "atoll dev regions"}}, &created)
			if err != nil {
				return fmt.Errorf("make a join token: %w", err)
			}
			joinToken = created.Status.Secret
		}
	}
	for _, region := range devRegions {
		m, err := member.New(member.Config{
			Hub: hubURL, JoinToken: joinToken, Name: region, Region: region, Zone: region + "-a", Provider: "dev",
			DataDir: filepath.Join(dataDir, "members", region), NATSListen: "127.0.0.1:0", Version: version, Logger: log,
			GatewayListen: gateways[region], GatewayLocalPeers: true, DNSListen: gateways["dns-"+region], Meter: tel.Meter,
		})
		if err != nil {
			return err
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "dev region stopped", "region", region, "err", err)
			}
		}()
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-m.Ready():
			}
			runDevNodes(ctx, log, region, m.NATSURL(), m.NodeJoinToken(), filepath.Join(dataDir, "members", region, "nodes"), bin, registry)
		}()
	}
	return nil
}

// runDevNodes runs a region's three node agents in-process (8 cores and
// 16 GiB each, one per zone) until ctx ends. Their replicas' commands are
// looked up in bin (installSelf's copy of atoll) first; they pull oci
// images from registry (the embedded one, plain HTTP on loopback).
func runDevNodes(ctx context.Context, log *slog.Logger, region, memberURL, joinToken, dir, bin, registry string) {
	path := bin
	if p := os.Getenv("PATH"); p != "" {
		path += string(filepath.ListSeparator) + p
	}
	var wg sync.WaitGroup
	for i, zone := range []string{"a", "b", "c"} {
		name := fmt.Sprintf("%s-node-%d", region, i+1)
		ncfg := node.Config{MemberURL: memberURL, JoinToken: joinToken, Name: name, Zone: region + "-" + zone, DataDir: filepath.Join(dir, name),
			MilliCPU: 8000, Memory: 16 << 30, Version: version, Logger: log, Runtime: runtime.Config{Path: path}}
		if registry != "" {
			ncfg.Images.Insecure = []string{registry}
		}
		a, err := node.New(ncfg)
		if err != nil {
			log.ErrorContext(ctx, "dev node", "node", name, "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "dev node stopped", "node", name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// devGatewayAddrs are the regions' gateway addresses, one stable port per
// region (kept in <data-dir>/gateway-<region>.port), and their DNS
// servers' (under "dns-<region>").
func devGatewayAddrs(dataDir string) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range devRegions {
		addr, err := stablePort(dataDir, "gateway-"+r, "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		out[r] = addr
		if out["dns-"+r], err = stablePort(dataDir, "dns-"+r, "127.0.0.1:0"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startDevEntry runs the global entry (what `atoll gateway` runs) in
// front of the dev regions' gateways until ctx ends.
func startDevEntry(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, dataDir string, gateways map[string]string, tel *telemetry.Providers) (string, error) {
	addr, err := stablePort(dataDir, "entry", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var targets []entry.Target
	for _, r := range devRegions {
		targets = append(targets, entry.Target{Region: r, URL: "http://" + gateways[r]})
	}
	e, err := entry.New(entry.Config{Listen: addr, Targets: targets, Logger: log, Meter: tel.Meter})
	if err != nil {
		return "", err
	}
	if err := e.Start(); err != nil {
		return "", err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		e.Stop()
	}()
	return e.Addr(), nil
}

// keptPort is addr with the port a previous run kept for name (keepPort)
// when addr asks for any port (0); new says none was kept: the caller
// binds port 0 and keeps the one it got.
func keptPort(dataDir, name, addr string) (kept string, new bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, false
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, name+".port")); err == nil {
		return net.JoinHostPort(host, strings.TrimSpace(string(b))), false
	}
	return addr, true
}

// keepPort writes down port as name's for the next runs (keptPort).
func keepPort(dataDir, name, port string) error {
	if err := os.WriteFile(filepath.Join(dataDir, name+".port"), []byte(port+"\n"), 0o600); err != nil {
		return fmt.Errorf("keep the %s port: %w", name, err)
	}
	return nil
}

// stablePort turns a "host:0" listen address into one with the port saved
// in <dataDir>/<name>.port, picking and saving a free one the first time.
// Other addresses are returned as they are.
func stablePort(dataDir, name, addr string) (string, error) {
	kept, fresh := keptPort(dataDir, name, addr)
	if !fresh {
		return kept, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	free, err := ports.Free(host)
	if err != nil {
		return "", fmt.Errorf("pick a %s port: %w", name, err)
	}
	_, picked, _ := net.SplitHostPort(free)
	if err := keepPort(dataDir, name, picked); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, picked), nil
}

func defaultDevDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "atoll", "dev")
	}
	return ".atoll-dev"
}
