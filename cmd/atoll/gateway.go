package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/entry"
	"github.com/atollhq/atoll/telemetry"
)

func newGatewayCmd() *cobra.Command {
	var cfg entry.Config
	var targets []string
	var metricsListen string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "gateway --listen ADDR --region-gateway REGION=URL ...",
		Short: "Run the global entry: routes to the regional gateways by health and measured latency",
		Long: `Runs the global entry, what you put behind your DNS name or anycast
address. Each request goes to the healthy regional gateway (atoll member
--gateway-listen) that answers its health checks fastest, and to the next
one when a gateway cannot be reached. Requests name their service as the
regional gateways expect: Host <service>.svc.atoll (or one of the
service's host names), or the path /svc/<service>/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.newLogger()
			if err != nil {
				return err
			}
			for _, t := range targets {
				region, url, ok := strings.Cut(t, "=")
				if !ok || region == "" || url == "" {
					return fmt.Errorf("--region-gateway %q: want REGION=http://host:port", t)
				}
				cfg.Targets = append(cfg.Targets, entry.Target{Region: region, URL: url})
			}
			tel, err := telemetry.Setup(cmd.Context(), "atoll-gateway", version)
			if err != nil {
				return err
			}
			cfg.Logger, cfg.Meter = log, tel.Meter
			e, err := entry.New(cfg)
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
			if err := e.Start(); err != nil {
				return err
			}
			defer e.Stop()
			fmt.Fprintf(cmd.OutOrStdout(), "global entry on http://%s\n", e.Addr())
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8000", "address to serve on")
	f.StringArrayVar(&targets, "region-gateway", nil, "a regional gateway, REGION=http://host:port (repeatable)")
	f.DurationVar(&cfg.CheckEvery, "check-every", 0, "health check period of each regional gateway (default 500ms)")
	f.StringVar(&metricsListen, "metrics-listen", "", "address serving /metrics (Prometheus); empty: none")
	logs.add(f)
	return cmd
}
