package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

func newDeleteCmd(cf *clientFlags) *cobra.Command {
	var files []string
	var selector string
	var ignoreNotFound bool
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | KIND -l SELECTOR | -f FILE|DIR|-)",
		Short: "Delete objects by name, by label selector or as named in manifests (tokens: revoke them)",
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch {
			case len(files) > 0:
				if len(args) > 0 || selector != "" {
					return errors.New("-f names the objects itself: drop the KIND, NAME and -l arguments")
				}
				manifests, err := readAllManifests(cmd.InOrStdin(), files)
				if err != nil {
					return err
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				for _, m := range manifests {
					if err := deleteOne(cmd.Context(), c, out, m.Kind, m.Object.GetMetadata().Name, ignoreNotFound); err != nil {
						return fmt.Errorf("%s: %w", m.Source, err)
					}
				}
				return nil
			case selector != "":
				if len(args) != 1 {
					return errors.New("-l deletes the objects of one kind that match it: give the KIND, and no names")
				}
				k, c, err := cf.kindClient(args[0])
				if err != nil {
					return err
				}
				items, _, err := listAll(cmd.Context(), c, k, selector)
				if err != nil {
					return err
				}
				if len(items) == 0 {
					fmt.Fprintf(out, "No %s match %s.\n", k.Plural, selector)
					return nil
				}
				for _, raw := range items {
					if err := deleteOne(cmd.Context(), c, out, k, objectName(raw), true); err != nil {
						return err
					}
				}
				return nil
			}
			if len(args) < 2 {
				return errors.New("give a KIND and NAMEs, a KIND and -l SELECTOR, or -f FILE")
			}
			k, c, err := cf.kindClient(args[0])
			if err != nil {
				return err
			}
			for _, name := range args[1:] {
				if err := deleteOne(cmd.Context(), c, out, k, name, ignoreNotFound); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "delete the objects named in this file, folder or - (repeatable)")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "delete the objects of KIND matching this label selector, e.g. app=web")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "an object already gone is no error")
	return cmd
}

// deleteOne deletes one object and says what became of it.
func deleteOne(ctx context.Context, c *client.Client, out io.Writer, k api.Kind, name string, ignoreNotFound bool) error {
	var last struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	err := c.Delete(ctx, k.Plural, name, &last)
	if ignoreNotFound && api.ErrorCode(err) == api.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if len(last.Metadata.Finalizers) > 0 {
		fmt.Fprintf(out, "%s/%s deleting (waiting for %s)\n", strings.ToLower(k.Name), name, strings.Join(last.Metadata.Finalizers, ", "))
	} else {
		fmt.Fprintf(out, "%s/%s deleted\n", strings.ToLower(k.Name), name)
	}
	return nil
}

// objectName reads metadata.name from a raw object.
func objectName(raw json.RawMessage) string {
	var o struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Metadata.Name
}
