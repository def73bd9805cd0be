package main

import (
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// lastKnownClusters lists the clusters whose figures in a workload's
// status are last known ("us-east: last known, 20 s ago"), or "-".
func lastKnownClusters(rows []api.ClusterReplicas, now time.Time) string {
	var out []string
	for _, r := range rows {
		if lk := r.LastKnown(now); lk != "" {
			out = append(out, r.Cluster+": "+lk)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}
