package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api/client"
)

// clusterGuard asks before a cluster is deregistered (by `atoll delete
// cluster` or `atoll cluster deregister`): that revokes its member's
// identity at once and for good. --yes confirms; at a terminal, typing the
// cluster's name does; otherwise the command is refused. --force asks the
// hub to deregister a cluster whose member still heartbeats, which it
// refuses otherwise.
type clusterGuard struct {
	yes, force bool
}

func (g *clusterGuard) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&g.yes, "yes", false, "confirm deregistering clusters without being asked (their members' identities are revoked at once)")
	cmd.Flags().BoolVar(&g.force, "force", false, "deregister clusters whose members still heartbeat (Ready or Suspect); the hub refuses otherwise")
}

// confirm asks for name, or returns why it may not go on.
func (g *clusterGuard) confirm(cmd *cobra.Command, name string) error {
	if g.yes {
		return nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !isTerminal(in) {
		return fmt.Errorf("deregistering cluster %s revokes its member's identity at once and for good (it must join again with a new join token): pass --yes to confirm", name)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Deregister cluster %s? Its member's NATS identity and member token are revoked at once; it must join again with a new join token.\nType the cluster's name to confirm: ", name)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return err
	}
	if strings.TrimSpace(line) != name {
		return fmt.Errorf("not confirmed: cluster %s is left as it is", name)
	}
	return nil
}

// deregister deletes cluster name, with force when asked; last receives
// the cluster's last state.
func (g *clusterGuard) deregister(ctx context.Context, c *client.Client, name string, last any) error {
	var q url.Values
	if g.force {
		q = url.Values{"force": {"true"}}
	}
	return c.Raw(ctx, http.MethodDelete, "/api/v1/clusters/"+url.PathEscape(name), q, nil, last)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
