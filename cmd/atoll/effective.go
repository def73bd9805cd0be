package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// describeEffective prints what a cluster runs of a workload: the
// template with the overrides that select the cluster applied, and the
// replicas (the cluster's share from status, or an override's).
func describeEffective(ctx context.Context, c *client.Client, out io.Writer, name, cluster string) error {
	var w api.Workload
	if err := c.Get(ctx, "workloads", name, &w); err != nil {
		return err
	}
	var cl api.Cluster
	if err := c.Get(ctx, "clusters", cluster, &cl); err != nil {
		return err
	}
	share, placed := int32(0), false
	for _, cr := range w.Status.Clusters {
		if cr.Cluster == cluster {
			share, placed = cr.Desired, true
		}
	}
	tmpl, replicas, applied := w.Spec.Effective(api.Target{Name: cluster, Labels: cl.Metadata.Labels}, share)
	fmt.Fprintf(out, "Workload:   %s\nCluster:    %s (region %s)\n", name, cluster, cl.Metadata.Labels[api.LabelRegion])
	if len(applied) == 0 {
		fmt.Fprintln(out, "Overrides:  none select this cluster: it runs spec.template as written")
	} else {
		fmt.Fprintf(out, "Overrides:  %s (in this order)\n", strings.Join(applied, ", "))
	}
	switch {
	case !placed && replicas == share:
		fmt.Fprintln(out, "Replicas:   none placed here now")
	case !placed:
		fmt.Fprintf(out, "Replicas:   none placed here now (an override makes it %d where placed)\n", replicas)
	default:
		fmt.Fprintf(out, "Replicas:   %d\n", replicas)
	}
	b, err := json.Marshal(tmpl)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Template:")
	for _, line := range strings.Split(strings.TrimRight(string(y), "\n"), "\n") {
		fmt.Fprintln(out, "  "+line)
	}
	return nil
}
