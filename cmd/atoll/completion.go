package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/output"
)

// newCompletionCmd is `atoll completion bash|zsh|fish`, cobra's scripts
// with the set-up steps in its help. It also completes the root's
// --context flag with the names in the config file, as only the root can.
func newCompletionCmd(root *cobra.Command) *cobra.Command {
	_ = root.RegisterFlagCompletionFunc("context", completeContexts)
	var noDesc bool
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script (kinds, names, flag values)",
		Long: `Print a script that completes atoll's commands, kinds, object names (read
from the hub of the current context) and flag values in your shell.

  bash:  source <(atoll completion bash)      # add to ~/.bashrc (needs bash-completion)
  zsh:   source <(atoll completion zsh)       # add to ~/.zshrc (after compinit)
  fish:  atoll completion fish > ~/.config/fish/completions/atoll.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(out)
				}
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, !noDesc)
			}
			return fmt.Errorf("no completion for shell %q: use bash, zsh or fish", args[0])
		},
	}
	cmd.Flags().BoolVar(&noDesc, "no-descriptions", false, "complete without the descriptions of kinds and contexts")
	return cmd
}

// completeObjects completes KIND [NAME...] and KIND/NAME... arguments;
// maxNames bounds the names after a kind (-1: any number). Names come from
// the hub of the flags or the current context; when it cannot be asked,
// there are no completions and nothing is printed.
func (f *clientFlags) completeObjects(maxNames int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		slashed := strings.Contains(toComplete, "/") || len(args) > 0 && strings.Contains(args[0], "/")
		switch {
		case slashed && maxNames < 0:
			kind, _, ok := strings.Cut(toComplete, "/")
			if !ok {
				return kindCompletions("/"), none | cobra.ShellCompDirectiveNoSpace
			}
			k, found := api.LookupKind(kind)
			if !found {
				return nil, none
			}
			var out []cobra.Completion
			for _, n := range f.objectNames(cmd.Context(), k) {
				out = append(out, kind+"/"+n)
			}
			return out, none
		case len(args) == 0:
			return kindCompletions(""), none
		case maxNames >= 0 && len(args) > maxNames:
			return nil, none
		}
		k, found := api.LookupKind(args[0])
		if !found {
			return nil, none
		}
		var out []cobra.Completion
		for _, n := range f.objectNames(cmd.Context(), k) {
			if !slices.Contains(args[1:], n) {
				out = append(out, n)
			}
		}
		return out, none
	}
}

// kindCompletions are the kinds' plurals, each with suffix, described by
// their names.
func kindCompletions(suffix string) []cobra.Completion {
	out := make([]cobra.Completion, len(api.Kinds))
	for i, k := range api.Kinds {
		out[i] = cobra.CompletionWithDesc(k.Plural+suffix, k.Name)
	}
	return out
}

// objectNames lists a kind's names, or none when the hub cannot be asked
// within a few seconds.
func (f *clientFlags) objectNames(ctx context.Context, k api.Kind) []string {
	c, err := f.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var list struct {
		Items []struct {
			Metadata api.ObjectMeta `json:"metadata"`
		} `json:"items"`
	}
	if err := c.List(ctx, k.Plural, client.ListOptions{Limit: 500}, &list); err != nil {
		return nil
	}
	names := make([]string, len(list.Items))
	for i, it := range list.Items {
		names[i] = it.Metadata.Name
	}
	return names
}

// completeFormats completes -o; jsonpath= and custom-columns= wait for
// their value after the '='.
func completeFormats(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, f := range output.Formats {
		if strings.HasPrefix(f, toComplete) {
			out = append(out, f)
		}
	}
	d := cobra.ShellCompDirectiveNoFileComp
	if len(out) == 1 && strings.HasSuffix(out[0], "=") {
		d |= cobra.ShellCompDirectiveNoSpace
	}
	return out, d
}

// completeContexts completes --context with the config file's contexts.
func completeContexts(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, len(cfg.Contexts))
	for i, c := range cfg.Contexts {
		out[i] = cobra.CompletionWithDesc(c.Name, c.Server)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
