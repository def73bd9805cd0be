// Package describe renders `atoll describe KIND NAME` for people: one
// object as a summary in words, kubectl's way, instead of a dump of its
// spec and status. A workload reads as what it asks for (replicas, the
// command, resources in CPU and MiB, probes, its placement, failover,
// disruption and rollout policies in words), then its conditions with
// their reasons, where the hub placed it and why, its replicas per
// cluster (cli/replicas) and its recent events. A cluster reads as its
// health (its figures labelled last known when it is not Ready), cordon,
// drain and taints, and its capacity in cores and GiB; a drill as its
// fault, objectives, phase apart from verdict, the plan's warnings, the
// report (RTO per workload and what blocked it) and its timeline; a token
// as its role, expiry and uses, never its secret. Any other kind reads as
// its metadata, then its fields as indented key: value lines.
//
// Every function here is pure: it takes the decoded object (or the
// object's JSON as the hub answered it) and the time to measure ages
// against, and writes text. It must not talk to the hub, read flags or
// files, or decide anything about the objects it shows; the raw object
// stays `atoll get KIND NAME -o yaml|json`'s (cli/output).
package describe
