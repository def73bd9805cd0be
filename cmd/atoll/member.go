package main

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/telemetry"
)

func newMemberCmd() *cobra.Command {
	var cfg member.Config
	var labels []string
	var joinTokenFile, metricsListen string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "member --join-token-file FILE --name NAME --region R --data-dir DIR",
		Short: "Run a regional member cluster: joins the hub, runs the region's NATS, heartbeats",
		Long: `Runs one regional member cluster.

The first start joins the hub with a join token ('atoll token create NAME
--join --secret-file FILE' on the hub), read from --join-token-file (or
ATOLL_JOIN_TOKEN): a token on the command line (--join-token) is visible
to every local user in ps. The member keeps its identity in --data-dir
(mode 0600) and later starts use it instead of the join token. When the
hub is unreachable at a later start, the member runs on its kept
credentials and keeps retrying.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.newLogger()
			if err != nil {
				return err
			}
			if cfg.JoinToken, err = joinToken(cfg.JoinToken, os.Getenv("ATOLL_JOIN_TOKEN"), joinTokenFile); err != nil {
				return err
			}
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			cfg.Version, cfg.Logger = version, log
			tel, err := telemetry.Setup(cmd.Context(), "atoll-member", version)
			if err != nil {
				return err
			}
			cfg.Meter = tel.Meter
			m, err := member.New(cfg)
			if err != nil {
				return err
			}
			if metricsListen != "" {
				stop, err := serveMetrics(metricsListen, tel)
				if err != nil {
					return err
				}
				defer stop()
			}
			err = m.Run(cmd.Context())
			if errors.Is(err, member.ErrRefused) {
				return fmt.Errorf("the hub refused this member: %w", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Hub, "hub", "", "the hub's API URL (default: the one in the join token)")
	f.StringVar(&joinTokenFile, "join-token-file", "", "read the join token for the first start from this file (a mounted secret), trimmed; a missing file is no token, as a member that already joined needs none")
	f.StringVar(&cfg.JoinToken, "join-token", "", "the join token itself (or ATOLL_JOIN_TOKEN); prefer --join-token-file: a command line is visible to every local user (ps)")
	f.StringVar(&cfg.Name, "name", "", "the cluster's name (DNS-1123 label)")
	f.StringVar(&cfg.Region, "region", "", "the cluster's region, e.g. eu-west")
	f.StringVar(&cfg.Zone, "zone", "", "the cluster's zone")
	f.StringVar(&cfg.Provider, "provider", "", "the cluster's provider, e.g. aws")
	f.StringSliceVar(&labels, "label", nil, "custom cluster label k=v (repeatable)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "folder for the member's identity and state")
	f.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4223", "address of the region's NATS, where node agents connect (port 0 picks one)")
	f.StringVar(&cfg.GatewayListen, "gateway-listen", "", "address of the region's service gateway (HTTP; tcp service ports listen on the same host); empty: no gateway")
	f.BoolVar(&cfg.GatewayLocalPeers, "gateway-local-peers", false, "let the gateway route to other regions' replicas on this machine's loopback (every region on one machine, for trials); otherwise it refuses them")
	f.StringVar(&cfg.DNSListen, "dns-listen", "", "address answering DNS for <service>.svc.atoll (A and SRV, UDP and TCP) from the gateway's table; empty: none")
	f.StringVar(&metricsListen, "metrics-listen", "", "address serving /metrics (Prometheus) for the member and its gateway; empty: none")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "override the heartbeat interval the hub asks for")
	f.DurationVar(&cfg.FenceAfter, "fence-after", 3*time.Second, "stop exclusive workloads after this long without a heartbeat ack from the hub (the hub waits this plus a margin before re-placing them)")
	logs.add(f)
	cmd.AddCommand(newRevokeNodeCmd())
	return cmd
}

func newRevokeNodeCmd() *cobra.Command {
	var dataDir, natsURL string
	var forget bool
	cmd := &cobra.Command{
		Use:   "revoke-node NAME --data-dir DIR [--forget]",
		Short: "Revoke a node agent's key: the member closes its connections and refuses it from then on",
		Long: `Revokes a node agent's key on the region's NATS, with the region's
admin key from the member's data folder (run it on the member's machine).
The member closes the node's connections at once, its agent stops (exit
status 3, which the node unit does not restart), and neither its key nor
its name may join again, join token or not.

--forget drops the node's entry instead, revoked or not: its name may then
join again with a new key (delete node.nk in the node's data folder and
start it with --join-token-file). Rotate the node join token too if the
old key may have been stolen with it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("--data-dir is required: the member's data folder holds the region's admin key")
			}
			if err := member.RevokeNode(cmd.Context(), natsURL, dataDir, args[0], forget); err != nil {
				return err
			}
			if forget {
				fmt.Fprintf(cmd.OutOrStdout(), "node %s forgotten: it may join again with a new key\n", args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s revoked\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the member's data folder")
	cmd.Flags().StringVar(&natsURL, "nats", "nats://127.0.0.1:4223", "the region's NATS (the member's --nats-listen)")
	cmd.Flags().BoolVar(&forget, "forget", false, "drop the node's entry (revoked or not), so its name may join again with a new key")
	return cmd
}

// joinToken picks the join token: the flag, then the environment, then the
// file. A missing file means no token: once joined, a member starts on its
// own identity, and the file may well be gone.
func joinToken(flag, env, file string) (string, error) {
	if t := cmp.Or(flag, env); t != "" || file == "" {
		return t, nil
	}
	t, err := readSecretFile("--join-token-file", file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return t, err
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: use key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// serveMetrics serves /metrics on addr until stop.
func serveMetrics(addr string, tel *telemetry.Providers) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", tel.Metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
