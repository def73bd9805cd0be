package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// cliConfig is ~/.config/atoll/config.yaml: named contexts, each a hub and
// a token, and the one in use.
type cliConfig struct {
	CurrentContext string       `json:"current-context,omitempty"`
	Contexts       []cliContext `json:"contexts,omitempty"`
}

type cliContext struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	Token  string `json:"token,omitempty"`
	CAFile string `json:"certificate-authority,omitempty"`
}

func configPath() string {
	if p := os.Getenv("ATOLL_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".atoll-config.yaml"
	}
	return filepath.Join(dir, "atoll", "config.yaml")
}

func loadConfig() (*cliConfig, error) {
	data, err := os.ReadFile(configPath())
	if errors.Is(err, os.ErrNotExist) {
		return &cliConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	// The bounded YAML reader of manifests: aliases cannot blow up here
	// either, and unknown fields are errors.
	var c cliConfig
	js, err := api.YAMLToJSON(data)
	if err == nil {
		err = api.DecodeStrict(js, &c)
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", configPath(), err)
	}
	return &c, nil
}

func (c *cliConfig) save() error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	p := configPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return os.WriteFile(p, data, 0o600) // it holds tokens
}

func (c *cliConfig) find(name string) *cliContext {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i]
		}
	}
	return nil
}

// clientFlags are the global connection flags.
type clientFlags struct {
	server, token, context, caFile string
	tokenFile                      string
	requestTimeout                 time.Duration
}

// client resolves server and token: flags (--token, then --token-file),
// then ATOLL_SERVER/ATOLL_TOKEN, then the chosen or current context.
func (f *clientFlags) client() (*client.Client, error) {
	server, token, caFile := f.server, f.token, f.caFile
	if token == "" && f.tokenFile != "" {
		var err error
		if token, err = readSecretFile("--token-file", f.tokenFile); err != nil {
			return nil, err
		}
	}
	explicitToken := token != ""
	if server == "" {
		server = os.Getenv("ATOLL_SERVER")
	}
	if caFile == "" {
		caFile = os.Getenv("ATOLL_CA_FILE")
	}
	if token == "" {
		token = os.Getenv("ATOLL_TOKEN")
	}
	if server == "" || token == "" || f.context != "" {
		cfg, err := loadConfig()
		if err != nil {
			return nil, err
		}
		name := f.context
		if name == "" {
			name = cfg.CurrentContext
		}
		if name != "" {
			ctx := cfg.find(name)
			if ctx == nil {
				return nil, fmt.Errorf("context %q is not in %s (see 'atoll config get-contexts')", name, configPath())
			}
			if server == "" || f.context != "" && f.server == "" {
				server = ctx.Server
			}
			if token == "" || f.context != "" && !explicitToken {
				token = ctx.Token
			}
			if caFile == "" {
				caFile = ctx.CAFile
			}
		}
	}
	if server == "" {
		return nil, errors.New("no hub to talk to: pass --server, set ATOLL_SERVER, or add a context with 'atoll config set-context'")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	if token == "" {
		return nil, errors.New("no API token: pass --token or --token-file, set ATOLL_TOKEN, or add one to a context with 'atoll config set-context'")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.requestTimeout < 0 {
		return nil, fmt.Errorf("--request-timeout: %s is negative (0 means no limit)", f.requestTimeout)
	}
	// Streams (watches, logs -f, drill run) last as long as they must, but
	// their answer must start within the timeout too: a paused hub does
	// not hang any command.
	tr.ResponseHeaderTimeout = f.requestTimeout
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("certificate authority %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	c := client.New(server, token, &http.Client{Transport: tr})
	c.SetRequestTimeout(f.requestTimeout)
	return c, nil
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage the contexts in " + "~/.config/atoll/config.yaml"}
	var server, token, tokenFile, caFile string
	set := &cobra.Command{
		Use:   "set-context NAME --server URL [--token T | --token-file F]",
		Short: "Add or change a context (and use it when none is in use)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokenFile != "" {
				if token != "" {
					return errors.New("--token and --token-file do not go together: give one")
				}
				var err error
				if token, err = readSecretFile("--token-file", tokenFile); err != nil {
					return err
				}
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			c := cfg.find(args[0])
			if c == nil {
				if server == "" {
					return errors.New("--server is required for a new context")
				}
				cfg.Contexts = append(cfg.Contexts, cliContext{Name: args[0]})
				c = &cfg.Contexts[len(cfg.Contexts)-1]
			}
			if server != "" {
				c.Server = server
			}
			if token != "" {
				c.Token = token
			}
			if caFile != "" {
				c.CAFile = caFile
			}
			if cfg.CurrentContext == "" {
				cfg.CurrentContext = args[0]
			}
			if err := cfg.save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q saved in %s\n", args[0], configPath())
			return nil
		},
	}
	set.Flags().StringVar(&server, "server", "", "hub URL")
	set.Flags().StringVar(&token, "token", "", "API token")
	set.Flags().StringVar(&tokenFile, "token-file", "", "read the API token to store from this file")
	set.Flags().StringVar(&caFile, "certificate-authority", "", "PEM file of the CA to trust for the hub's TLS")
	// These flags shadow the global ones on purpose: here they are values to store.
	use := &cobra.Command{
		Use: "use-context NAME", Short: "Make NAME the current context", Args: cobra.ExactArgs(1),
		ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.find(args[0]) == nil {
				return fmt.Errorf("context %q is not in %s", args[0], configPath())
			}
			cfg.CurrentContext = args[0]
			if err := cfg.save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "now using context %q\n", args[0])
			return nil
		},
	}
	get := &cobra.Command{
		Use: "get-contexts", Short: "List contexts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			sort.Slice(cfg.Contexts, func(i, j int) bool { return cfg.Contexts[i].Name < cfg.Contexts[j].Name })
			t := newTable(cmd.OutOrStdout(), "CURRENT", "NAME", "SERVER")
			for _, c := range cfg.Contexts {
				cur := ""
				if c.Name == cfg.CurrentContext {
					cur = "*"
				}
				t.row(cur, c.Name, c.Server)
			}
			return t.flush()
		},
	}
	cmd.AddCommand(set, use, get, newConfigViewCmd(), newCurrentContextCmd(), newDeleteContextCmd())
	return cmd
}
