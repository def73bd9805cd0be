// Command atoll is Atoll's one binary: the hub, the embedded dev stack and
// the kubectl-style client. This package only parses flags and wires parts
// together; the parts live in hub, api and their subpackages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.As(err, new(errDiffers)) {
			os.Exit(1) // diff printed the differences: like diff(1), no error line
		}
		fmt.Fprintln(os.Stderr, "error: "+oneLine(err))
		if errors.Is(err, node.ErrRevoked) {
			os.Exit(exitRevoked) // a service manager must not restart it
		}
		os.Exit(1)
	}
}

// exitRevoked is the exit status of a node agent whose key its member
// revoked (the node unit's RestartPreventExitStatus).
const exitRevoked = 3

// oneLine renders an error as a single actionable line.
func oneLine(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		msg := p.Error()
		if p.Code != "" {
			msg += " (" + p.Code + ")"
		}
		return msg
	}
	// cobra's "unknown command" adds its suggestions on lines of their own.
	msg, suggestions, ok := strings.Cut(err.Error(), "\n\nDid you mean this?\n")
	if ok {
		msg += " (did you mean " + strings.Join(strings.Fields(suggestions), " or ") + "?)"
	}
	return strings.Join(strings.Fields(msg), " ")
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "atoll",
		Short:         "Atoll places workloads over regional clusters and proves failover with drills",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	cf := &clientFlags{}
	root.PersistentFlags().StringVar(&cf.server, "server", "", "hub URL (or ATOLL_SERVER, or the current context)")
	root.PersistentFlags().StringVar(&cf.token, "token", "", "API token (or ATOLL_TOKEN, or the current context)")
	root.PersistentFlags().StringVar(&cf.tokenFile, "token-file", "", "read the API token from this file (e.g. a hub's admin-token, a mounted secret)")
	root.PersistentFlags().StringVar(&cf.context, "context", "", "context from the config file to use")
	root.PersistentFlags().StringVar(&cf.caFile, "certificate-authority", "", "PEM file of the CA to trust for the hub's TLS (or ATOLL_CA_FILE)")
	root.PersistentFlags().DurationVar(&cf.requestTimeout, "request-timeout", 30*time.Second, "give up on a request the hub has not answered within this long (streams: until their answer starts); 0 waits forever")
	root.AddCommand(
		newHubCmd(), newDevCmd(),
		newApplyCmd(cf), newGetCmd(cf), newDescribeCmd(cf), newDeleteCmd(cf),
		newTokenCmd(cf), newHubsCmd(cf), newConfigCmd(), newMemberCmd(), newNodeCmd(), newClusterCmd(cf), newDemoHTTPCmd(), newLogsCmd(cf), newProbeCmd(cf),
		newDrillCmd(cf), newCompletionCmd(root),
		newLabelCmd(cf), newPatchCmd(cf), newDiffCmd(cf), newEditCmd(cf), newExplainCmd(cf), newVersionCmd(cf), newAPIResourcesCmd(cf),
		newScaleCmd(cf), newRolloutCmd(cf), newRebalanceCmd(cf),
	)
	refuseUnknownSubcommands(root)
	return root
}

// groupAnnotation marks a command group: it runs only to refuse an
// unknown subcommand or show its help.
const groupAnnotation = "atoll.dev/group"

// refuseUnknownSubcommands makes every command group (one with
// subcommands and nothing to run itself) refuse an unknown subcommand with
// one line and exit 1: cobra would print the group's help and exit 0,
// which a script takes for success.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Run != nil || cmd.RunE != nil || !cmd.HasParent() {
		return
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[groupAnnotation] = "true"
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q (see '%s --help')", args[0], c.CommandPath(), c.CommandPath())
		}
		return c.Help()
	}
}
