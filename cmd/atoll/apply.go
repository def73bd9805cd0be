package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/apply"
)

// readAllManifests reads every -f argument; nothing is returned when any
// document is bad, so that nothing is changed.
func readAllManifests(stdin io.Reader, files []string) ([]api.Manifest, error) {
	if len(files) == 0 {
		return nil, errors.New("-f is required: a file, a folder of .yaml/.yml/.json files, or - for standard input")
	}
	var manifests []api.Manifest
	for _, f := range files {
		ms, err := readManifests(stdin, f)
		if err != nil {
			return nil, err
		}
		manifests = append(manifests, ms...)
	}
	if len(manifests) == 0 {
		return nil, errors.New("no objects found in the given files")
	}
	return manifests, nil
}

// selectManifests keeps the manifests whose labels match selector.
func selectManifests(ms []api.Manifest, selector string) ([]api.Manifest, error) {
	if selector == "" {
		return ms, nil
	}
	sel, err := api.ParseSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("-l: %w", err)
	}
	var out []api.Manifest
	for _, m := range ms {
		if sel.Matches(m.Object.GetMetadata().Labels) {
			out = append(out, m)
		}
	}
	return out, nil
}

func ref(k api.Kind, name string) string { return strings.ToLower(k.Name) + "/" + name }

func newApplyCmd(cf *clientFlags) *cobra.Command {
	var files []string
	var dryRun, selector string
	var prune bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [--dry-run=client|server] [-l SELECTOR [--prune]]",
		Short: "Create or update objects from YAML or JSON manifests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, suffix := apply.Write, ""
			switch dryRun {
			case "", "none":
			case "client":
				mode, suffix = apply.ClientDryRun, " (dry run)"
			case "server":
				mode, suffix = apply.ServerDryRun, " (server dry run)"
			default:
				return fmt.Errorf("--dry-run=%s: use client, server or none", dryRun)
			}
			if prune && selector == "" {
				return errors.New("--prune needs a label selector (-l): without one it would delete every other object of the kinds applied")
			}
			// Read and check everything before changing anything.
			manifests, err := readAllManifests(cmd.InOrStdin(), files)
			if err != nil {
				return err
			}
			manifests, err = selectManifests(manifests, selector)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, m := range manifests {
				r, err := apply.Apply(cmd.Context(), c, m, mode)
				if err != nil {
					return fmt.Errorf("%s: %w", m.Source, err)
				}
				line := ref(m.Kind, m.Object.GetMetadata().Name) + " " + r.Action
				if r.Note != "" {
					line += " (" + r.Note + ")"
				}
				fmt.Fprintln(out, line+suffix)
			}
			if !prune {
				return nil
			}
			gone, err := apply.Prune(cmd.Context(), c, manifests, selector)
			if err != nil {
				return err
			}
			for _, p := range gone {
				for _, name := range p.Names {
					if mode != apply.Write {
						fmt.Fprintf(out, "%s pruned%s\n", ref(p.Kind, name), suffix)
						continue
					}
					if err := c.Delete(cmd.Context(), p.Kind.Plural, name, nil); err != nil && api.ErrorCode(err) != api.CodeNotFound {
						return fmt.Errorf("prune %s: %w", ref(p.Kind, name), err)
					}
					fmt.Fprintf(out, "%s pruned\n", ref(p.Kind, name))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file, folder or - (repeatable)")
	cmd.Flags().StringVar(&dryRun, "dry-run", "none", "client: say what would be done, reading only; server: have the hub check every write and store nothing")
	cmd.Flags().Lookup("dry-run").NoOptDefVal = "client"
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "apply only the manifests with matching labels; with --prune, the objects a prune may delete")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete the objects of the kinds applied that match -l and are in none of the files")
	return cmd
}

// errDiffers is diff's answer when live objects differ from the
// manifests; the process exits 1 as kubectl diff does.
type errDiffers struct{ n int }

func (e errDiffers) Error() string { return fmt.Sprintf("%d object(s) differ from the manifests", e.n) }

func newDiffCmd(cf *clientFlags) *cobra.Command {
	var files []string
	var cluster string
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR|- [--cluster C]",
		Short: "Show how apply would change live objects, as a unified diff (exit 1 when it would)",
		Long: "Shows, for each object in the manifests, a unified diff from the live object to the one apply would store, " +
			"as the hub answers a server-side dry run (status and the fields every write moves left out). " +
			"Exits 0 when nothing would change and 1 when something would. " +
			"With --cluster, each workload's effective template in that cluster instead (spec.overrides that select it applied), and the replicas an override gives it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			manifests, err := readAllManifests(cmd.InOrStdin(), files)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var target api.Target
			if cluster != "" {
				var cl api.Cluster
				if err := c.Get(cmd.Context(), "clusters", cluster, &cl); err != nil {
					return fmt.Errorf("--cluster %s: %w", cluster, err)
				}
				target = api.Target{Name: cluster, Labels: cl.Metadata.Labels}
			}
			differ := 0
			for _, m := range manifests {
				name := ref(m.Kind, m.Object.GetMetadata().Name)
				live, err := apply.Live(cmd.Context(), c, m)
				if err != nil {
					return fmt.Errorf("%s: %w", m.Source, err)
				}
				r, err := apply.Apply(cmd.Context(), c, m, apply.ServerDryRun)
				if err != nil {
					return fmt.Errorf("%s: %w", m.Source, err)
				}
				if r.Object == nil {
					// A kind the hub does not dry-run: the manifest as
					// it stands.
					r.Object = mustJSON(m.Object)
				}
				var d string
				if cluster != "" {
					if m.Kind.Name != "Workload" {
						continue // only a workload runs something per cluster
					}
					d, err = apply.ClusterDiff(name, target, live, r.Object)
				} else {
					d, err = apply.Diff(name, live, r.Object)
				}
				if err != nil {
					return err
				}
				if d != "" {
					differ++
					fmt.Fprint(cmd.OutOrStdout(), d)
				}
			}
			if differ > 0 {
				return errDiffers{differ}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file, folder or - (repeatable)")
	cmd.Flags().StringVar(&cluster, "cluster", "", "show what this cluster would run of each workload (overrides applied)")
	return cmd
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
