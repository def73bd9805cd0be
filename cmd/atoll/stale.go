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

// staleLines are describe's lines about figures that are history: those
// of a cluster that is not Ready (a workload's rows of such clusters say
// so in replicas.Describe).
func staleLines(kind string, status json.RawMessage, now time.Time) []string {
	var lines []string
	if kind == "Cluster" {
		var st api.ClusterStatus
		_ = json.Unmarshal(status, &st)
		health := st.Health
		if health == "" {
			health = api.HealthUnknown
		}
		if lk := api.LastKnown(health, st.LastHeartbeatTime, now); lk != "" {
			lines = append(lines, fmt.Sprintf("the cluster is %s: its capacity, nodes and replicas below are %s", health, lk))
		}
	}
	return lines
}
