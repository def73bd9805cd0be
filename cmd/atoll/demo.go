package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// newDemoHTTPCmd is a small HTTP server the binary itself provides, so
// demo and test workloads need nothing else installed.
func newDemoHTTPCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-http",
		Short:  "Serve a small HTTP demo on $PORT (for demo and test workloads)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			port := os.Getenv("PORT")
			if port == "" {
				port = "8080"
			}
			greeting := os.Getenv("GREETING")
			if greeting == "" {
				greeting = "hello from atoll"
			}
			// DEMO_STATUS makes every answer but /healthz that status: a
			// replica that is ready yet fails its requests (tests of
			// rollouts' traffic gates).
			status := http.StatusOK
			if v := os.Getenv("DEMO_STATUS"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 200 || n > 599 {
					return fmt.Errorf("DEMO_STATUS %q: want an HTTP status from 200 to 599", v)
				}
				status = n
			}
			replica, _ := os.Hostname()
			if r := os.Getenv("ATOLL_REPLICA"); r != "" {
				replica = r
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				fmt.Fprintf(w, "%s (replica %s)\n", greeting, replica)
			})
			ln, err := net.Listen("tcp", net.JoinHostPort("", port))
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			fmt.Fprintf(cmd.OutOrStdout(), "demo-http serving on :%s\n", port)
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}
