package rollout

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/output"
)

// History prints a workload's revisions as a table, oldest first; with
// revision > 0, that revision's details and template as YAML.
func History(ctx context.Context, c *client.Client, name string, revision int64, out io.Writer, now time.Time) error {
	revs, err := c.Revisions(ctx, name)
	if err != nil {
		return err
	}
	if revision > 0 {
		r, err := pick(name, revs.Items, revision)
		if err != nil {
			return err
		}
		return printRevision(out, name, r)
	}
	if len(revs.Items) == 0 {
		// Stored before the hub kept revisions, and not changed since.
		fmt.Fprintf(out, "workload/%s has no revisions yet: its next template change records its template so far and the new one\n", name)
		return nil
	}
	fmt.Fprintf(out, "workload/%s\n", name)
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tCHANGE-CAUSE\tBY\tAGE\tTEMPLATE-HASH")
	for _, r := range revs.Items {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Number, orNone(r.ChangeCause), r.Actor, age(r.CreatedAt, now), r.TemplateHash)
	}
	return tw.Flush()
}

func printRevision(out io.Writer, name string, r api.Revision) error {
	t, err := yaml.Marshal(r.Template)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "workload/%s with revision #%d\n", name, r.Number)
	fmt.Fprintf(out, "Change-Cause:\t%s\nBy:\t%s\nCreated:\t%s\nGeneration:\t%d\nTemplate-Hash:\t%s\n",
		orNone(r.ChangeCause), r.Actor, r.CreatedAt.Format(time.RFC3339), r.Generation, r.TemplateHash)
	if r.ImageDigest != "" {
		// What every cluster runs of the template's image tag.
		fmt.Fprintf(out, "Image-Digest:\t%s\n", r.ImageDigest)
	}
	fmt.Fprintln(out, "Template:")
	for _, line := range strings.Split(strings.TrimRight(string(t), "\n"), "\n") {
		fmt.Fprintln(out, "  "+line)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	q := strconv.Quote(s) // one line, whatever it holds
	return q[1 : len(q)-1]
}

// age renders how long ago t was, kubectl style.
func age(t, now time.Time) string { return output.Duration(now.Sub(t)) }
