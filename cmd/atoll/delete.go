package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

func newDeleteCmd(cf *clientFlags) *cobra.Command {
	var files []string
	var selector string
	var ignoreNotFound bool
	var guard clusterGuard
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
					if err := deleteOne(cmd, c, &guard, m.Kind, m.Object.GetMetadata().Name, ignoreNotFound); err != nil {
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
					if err := deleteOne(cmd, c, &guard, k, objectName(raw), true); err != nil {
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
				if err := deleteOne(cmd, c, &guard, k, name, ignoreNotFound); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "delete the objects named in this file, folder or - (repeatable)")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "delete the objects of KIND matching this label selector, e.g. app=web")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "an object already gone is no error")
	guard.addFlags(cmd)
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if k, err := kindArg(firstOr(args, "")); guard.force && len(files) == 0 && (err != nil || k.Name != "Cluster") {
			return errors.New("--force applies to clusters only")
		}
		return nil
	}
	return cmd
}

// deleteOne deletes one object and says what became of it; a cluster
// only once its guard lets it.
func deleteOne(cmd *cobra.Command, c *client.Client, g *clusterGuard, k api.Kind, name string, ignoreNotFound bool) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	var last struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	var err error
	if k.Name == "Cluster" {
		if err := g.confirm(cmd, name); err != nil {
			return err
		}
		err = g.deregister(ctx, c, name, &last)
	} else {
		err = c.Delete(ctx, k.Plural, name, &last)
	}
	if ignoreNotFound && api.ErrorCode(err) == api.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if k.Name == "Cluster" {
		fmt.Fprintf(out, "cluster/%s deregistered\n", name)
	} else if len(last.Metadata.Finalizers) > 0 {
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

func firstOr(args []string, def string) string {
	if len(args) == 0 {
		return def
	}
	return args[0]
}
