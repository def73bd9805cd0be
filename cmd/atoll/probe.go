package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// newProbeCmd checks one endpoint and exits 0 or 1: the healthcheck of a
// container image that has no shell, curl or wget (distroless).
func newProbeCmd(cf *clientFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 when a hub endpoint answers 2xx (http[s]://host:port/readyz) or a NATS server greets (nats://host:port); for container healthchecks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			caFile := cf.caFile
			if caFile == "" {
				caFile = os.Getenv("ATOLL_CA_FILE")
			}
			what, err := probe(ctx, args[0], caFile)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), what)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// probe checks rawURL once and says what it found.
func probe(ctx context.Context, rawURL, caFile string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("probe %q: want a URL such as http://127.0.0.1:8080/readyz or nats://127.0.0.1:4223", rawURL)
	}
	switch u.Scheme {
	case "http", "https":
		return probeHTTP(ctx, u, caFile)
	case "nats":
		return probeNATS(ctx, u)
	}
	return "", fmt.Errorf("probe %q: scheme %q: use http, https or nats", rawURL, u.Scheme)
}

func probeHTTP(ctx context.Context, u *url.URL, caFile string) (string, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a healthcheck asks the endpoint itself
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return "", fmt.Errorf("certificate authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", fmt.Errorf("certificate authority %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", u, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("probe %s: %s", u, resp.Status)
	}
	return fmt.Sprintf("%s: %s", u, resp.Status), nil
}

// probeNATS connects and reads the INFO line every NATS server sends
// first, without logging in.
func probeNATS(ctx context.Context, u *url.URL) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", u, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	greeting := make([]byte, len("INFO "))
	if _, err := io.ReadFull(conn, greeting); err != nil {
		return "", fmt.Errorf("probe %s: no greeting: %w", u, err)
	}
	if string(greeting) != "INFO " {
		return "", fmt.Errorf("probe %s: not a NATS server (it began with %q)", u, greeting)
	}
	return fmt.Sprintf("%s: NATS server greeted", u), nil
}
