package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/patch"
)

func newLabelCmd(cf *clientFlags) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "label KIND NAME key=value... key-... [--overwrite]",
		Short: "Set or remove labels of an object",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := patch.ParseLabelArgs(args[2:])
			if err != nil {
				return err
			}
			k, c, err := cf.kindClient(args[0])
			if err != nil {
				return err
			}
			ref := strings.ToLower(k.Name) + "/" + args[1]
			// The patch carries the version read: a label written in
			// between is a conflict, retried from a fresh read.
			for attempt := 0; ; attempt++ {
				var cur struct {
					Metadata api.ObjectMeta `json:"metadata"`
				}
				if err := c.Get(cmd.Context(), k.Plural, args[1], &cur); err != nil {
					return err
				}
				p, changed, err := patch.LabelPatch(ch, cur.Metadata.Labels, cur.Metadata.ResourceVersion, overwrite)
				if err != nil {
					return fmt.Errorf("%s: %w", ref, err)
				}
				if !changed {
					fmt.Fprintf(cmd.OutOrStdout(), "%s not labeled (no change)\n", ref)
					return nil
				}
				err = c.PatchAs(cmd.Context(), k.Plural, args[1], client.MergePatch, p, nil)
				if api.ErrorCode(err) == api.CodeConflict && attempt < 3 {
					continue
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s labeled\n", ref)
				return nil
			}
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "allow changing the value of a label the object has")
	return cmd
}

func newPatchCmd(cf *clientFlags) *cobra.Command {
	var typ, text, file string
	cmd := &cobra.Command{
		Use:   "patch KIND NAME --type merge|json (-p PATCH | --patch-file FILE)",
		Short: "Change an object with a JSON merge patch (RFC 7386) or a JSON patch (RFC 6902)",
		Example: `  atoll patch workload web -p '{"spec":{"replicas":3}}'
  atoll patch workload web --type json -p '[{"op":"replace","path":"/spec/replicas","value":3}]'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			switch {
			case text != "" && file != "":
				return errors.New("give -p or --patch-file, not both")
			case text != "":
				body = []byte(text)
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("--patch-file: %w", err)
				}
				body = b
			default:
				return errors.New("-p PATCH (or --patch-file FILE) is required")
			}
			js, err := patch.Check(typ, body)
			if err != nil {
				return err
			}
			k, c, err := cf.kindClient(args[0])
			if err != nil {
				return err
			}
			var before, after struct {
				Metadata api.ObjectMeta `json:"metadata"`
			}
			if err := c.Get(cmd.Context(), k.Plural, args[1], &before); err != nil {
				return err
			}
			if err := c.PatchAs(cmd.Context(), k.Plural, args[1], patch.Types[typ], js, &after); err != nil {
				return err
			}
			ref := strings.ToLower(k.Name) + "/" + args[1]
			if after.Metadata.ResourceVersion == before.Metadata.ResourceVersion {
				fmt.Fprintf(cmd.OutOrStdout(), "%s patched (no change)\n", ref)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s patched\n", ref)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "merge", "merge (RFC 7386 JSON merge patch) or json (RFC 6902 JSON patch)")
	cmd.Flags().StringVarP(&text, "patch", "p", "", "the patch, as JSON (or YAML for a merge patch)")
	cmd.Flags().StringVar(&file, "patch-file", "", "read the patch from this file")
	return cmd
}
