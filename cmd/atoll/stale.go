package main

import (
	"encoding/json"
	"fmt"
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

// staleLines are describe's lines about figures that are history: a
// cluster that is not Ready, a workload's rows of such clusters.
func staleLines(kind string, status json.RawMessage, now time.Time) []string {
	var lines []string
	switch kind {
	case "Cluster":
		var st api.ClusterStatus
		_ = json.Unmarshal(status, &st)
		health := st.Health
		if health == "" {
			health = api.HealthUnknown
		}
		if lk := api.LastKnown(health, st.LastHeartbeatTime, now); lk != "" {
			lines = append(lines, fmt.Sprintf("the cluster is %s: its capacity, nodes and replicas below are %s", health, lk))
		}
	case "Workload":
		var st api.WorkloadStatus
		_ = json.Unmarshal(status, &st)
		for _, r := range st.Clusters {
			if lk := r.LastKnown(now); lk != "" {
				lines = append(lines, fmt.Sprintf("%s (%s): its row below is %s", r.Cluster, r.ClusterHealth, lk))
			}
		}
	}
	return lines
}
