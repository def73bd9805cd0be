package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/node"
)

func newNodeCmd() *cobra.Command {
	var cfg node.Config
	var labels []string
	var cpu, memory, joinTokenFile, cacheMax string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "node --member NATS_URL --name NAME --data-dir DIR",
		Short: "Run a node agent: runs the replicas its member binds to this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.newLogger()
			if err != nil {
				return err
			}
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cpu != "" {
				if cfg.MilliCPU, err = api.ParseCPU(cpu); err != nil {
					return fmt.Errorf("--cpu: %w", err)
				}
			}
			if memory != "" {
				if cfg.Memory, err = api.ParseMemory(memory); err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
			}
			if cacheMax != "" {
				if cfg.Images.MaxBytes, err = api.ParseMemory(cacheMax); err != nil {
					return fmt.Errorf("--image-cache-max: %w", err)
				}
			}
			// A missing file is no token: an enrolled node needs none.
			if cfg.JoinToken, err = joinToken("", os.Getenv("ATOLL_NODE_JOIN_TOKEN"), joinTokenFile); err != nil {
				return err
			}
			cfg.Logger, cfg.Version = log, version
			a, err := node.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.MemberURL, "member", "nats://127.0.0.1:4223", "the region's NATS URL (the member's --nats-listen)")
	f.StringVar(&cfg.Name, "name", "", "the node's name (DNS-1123 label)")
	f.StringVar(&joinTokenFile, "join-token-file", "", "file holding the member's node join token (its data folder's node-join-token; or ATOLL_NODE_JOIN_TOKEN): enrolls this node's key the first time; later starts connect with the key in --data-dir, and a missing file is no token")
	f.StringVar(&cfg.Zone, "zone", "", "the node's zone")
	f.StringVar(&cfg.Host, "advertise-host", "", "the address other machines reach this node's replicas at (the region's gateways proxy to it); default 127.0.0.1")
	f.StringSliceVar(&labels, "label", nil, "node label k=v (repeatable)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "folder for replica state and logs")
	f.StringVar(&cpu, "cpu", "", "allocatable CPU, e.g. 4 or 3500m (default: the machine's cores)")
	f.StringVar(&memory, "memory", "", "allocatable memory, e.g. 8Gi (default: the machine's memory)")
	f.BoolVar(&cfg.KeepReplicasOnExit, "keep-replicas-on-exit", false, "let replica processes outlive the agent (a restarted agent adopts them); by default they die with it")
	f.StringSliceVar(&cfg.Images.Insecure, "registry-insecure", nil, "registry (host or host:port) oci images may be pulled from over plain HTTP (repeatable); every other registry is HTTPS only")
	f.StringVar(&cfg.Images.CAFile, "registry-ca", "", "PEM file of CAs trusted for registries, besides the system's roots")
	f.StringVar(&cfg.Images.CredentialsFile, "registry-credentials", "", "docker config.json style file with registry credentials (read at each pull, never logged)")
	f.StringVar(&cacheMax, "image-cache-max", "", "size the node's image cache is kept under, e.g. 20Gi (default 10Gi)")
	f.DurationVar(&cfg.Images.MaxAge, "image-cache-max-age", 0, "how long an unused image stays in the cache (default 168h)")
	logs.add(f)
	return cmd
}
