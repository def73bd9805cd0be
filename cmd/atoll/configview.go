package main

import (
	"errors"
	"fmt"

	"github.com/atollhq/atoll/cli/output"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// redacted stands for a token in `config view` without --raw.
const redacted = "REDACTED"

func newConfigViewCmd() *cobra.Command {
	var raw bool
	var format string
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Print the config file, tokens redacted (--raw shows them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "yaml" && format != "json" {
				return fmt.Errorf("-o %s: use yaml or json", format)
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if !raw {
				for i := range cfg.Contexts {
					if cfg.Contexts[i].Token != "" {
						cfg.Contexts[i].Token = redacted
					}
				}
			}
			if format == "json" {
				return output.WriteData(cmd.OutOrStdout(), "json", cfg)
			}
			y, err := yaml.Marshal(cfg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "show the tokens")
	cmd.Flags().StringVarP(&format, "output", "o", "yaml", "yaml or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newCurrentContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "current-context",
		Short: "Print the name of the context in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return errors.New("no context is in use (see 'atoll config use-context')")
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), cfg.CurrentContext)
			return err
		},
	}
}

func newDeleteContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "delete-context NAME",
		Short:             "Remove a context (when it is the current one, none is in use after)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.find(args[0]) == nil {
				return fmt.Errorf("context %q is not in %s", args[0], configPath())
			}
			kept := cfg.Contexts[:0]
			for _, c := range cfg.Contexts {
				if c.Name != args[0] {
					kept = append(kept, c)
				}
			}
			cfg.Contexts = kept
			note := ""
			if cfg.CurrentContext == args[0] {
				cfg.CurrentContext = ""
				note = "; no context is in use now (see 'atoll config use-context')"
			}
			if err := cfg.save(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "context %q deleted from %s%s\n", args[0], configPath(), note)
			return err
		},
	}
}
