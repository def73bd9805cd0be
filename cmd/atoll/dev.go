package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/hub/pgserver"
)

func newDevCmd() *cobra.Command {
	o := &hubOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine: a private PostgreSQL and the hub",
		Long: `Runs the whole stack in one process for trying Atoll out and for development.

Without --database-url it starts a private PostgreSQL from this machine's
binaries, keeping its data in <data-dir>/postgres, so a restart keeps
everything. Ctrl-C stops it all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, err := newLogger(o.logLevel)
			if err != nil {
				return err
			}
			if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
				return err
			}
			if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			ln, err := net.Listen("tcp", o.listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (is another atoll dev running? pick another --listen)", o.listen, err)
			}
			if o.databaseURL == "" {
				pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(o.dataDir, "postgres"), Durable: true, Logger: log})
				if err != nil {
					ln.Close()
					if errors.Is(err, pgserver.ErrNoBinaries) {
						return fmt.Errorf("atoll dev needs PostgreSQL's server binaries (initdb, postgres): %w", err)
					}
					return err
				}
				defer pg.Stop()
				o.databaseURL = pg.URL()
				log.InfoContext(ctx, "private PostgreSQL running", "data", filepath.Join(o.dataDir, "postgres"))
			}
			url := "http://" + ln.Addr().String()
			return runHub(ctx, log, o, ln, func(tokenPath string) {
				fmt.Fprintf(os.Stderr, "\nAtoll dev is ready.\n  API:          %s/api/v1  (OpenAPI: %s/openapi.json)\n", url, url)
				if tokenPath != "" {
					fmt.Fprintf(os.Stderr, "  Admin token:  %s\n\n  export ATOLL_SERVER=%s ATOLL_TOKEN=$(cat %s)\n\n", tokenPath, url, tokenPath)
				} else {
					fmt.Fprintf(os.Stderr, "  Admin token:  from ATOLL_ADMIN_TOKEN\n\n")
				}
			})
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", defaultDevDir(), "folder for PostgreSQL's data and the admin token")
	cmd.Flags().StringVar(&o.databaseURL, "database-url", "", "use this PostgreSQL instead of a private one")
	o.addFlags(cmd, "127.0.0.1:8080")
	return cmd
}

func defaultDevDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "atoll", "dev")
	}
	return ".atoll-dev"
}
