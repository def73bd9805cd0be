package controller

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/atollhq/atoll/member/scheduler"
	"github.com/atollhq/atoll/protocol"
)

// StandbyNodes decides which nodes pull each standby image ahead of need
// (warm standby): the nodes the scheduler would pick for the replicas a
// failover could bring (StandbyImage.Replicas, at least one), as the
// region is now, each image on its own (a failover brings one workload's
// replicas onto the region as it is, not onto the other standby
// workloads'). Replicas with no room now are placed as if they asked for
// nothing, so the nodes their selectors and tolerations allow still hold
// the image when room is made. A Ready node that holds an image already
// (held: node -> images it was asked for and reported present) keeps it,
// so the picks moving with the region's load do not pull it again
// elsewhere and again. A node gets at most protocol.MaxNodeImages
// images, in the list's order. The answer maps node -> image
// references, sorted.
func StandbyNodes(nodes map[string]NodeView, bindings []protocol.Binding, images []protocol.StandbyImage, held map[string][]string) map[string][]string {
	out := map[string][]string{}
	if len(images) == 0 {
		return out
	}
	snap := schedulerSnapshot(Snapshot{Nodes: nodes, Bindings: bindings})
	for _, im := range images {
		n := max(im.Replicas, 1)
		s := scheduler.New(snap)
		req := scheduler.Request{Workload: "standby/" + im.Workload,
			Policy: scheduler.Policy{Strategy: im.Scheduling.Strategy, ZoneSpread: im.Scheduling.ZoneSpread, AntiAffinity: true}}
		for i := range n {
			req.Replicas = append(req.Replicas, schedulerReplica(fmt.Sprintf("standby-%s-%d", im.Workload, i), req.Workload, im.Template))
		}
		plan := s.Schedule(req)
		picked := map[string]bool{}
		for _, b := range plan.Bindings {
			picked[b.Node] = true
		}
		if len(plan.Pending) > 0 {
			// No room now: where its rules allow, ignoring requests and ports.
			retry := scheduler.Request{Workload: req.Workload, Policy: req.Policy}
			for _, p := range plan.Pending {
				r := schedulerReplica(p.Replica+"-any", req.Workload, im.Template)
				r.Requests, r.HostPorts = scheduler.Resources{}, nil
				retry.Replicas = append(retry.Replicas, r)
			}
			for _, b := range s.Schedule(retry).Bindings {
				picked[b.Node] = true
			}
		}
		for node, refs := range held {
			if nodes[node].Ready && slices.Contains(refs, im.Image) {
				picked[node] = true
			}
		}
		for node := range picked {
			if len(out[node]) < protocol.MaxNodeImages && !slices.Contains(out[node], im.Image) {
				out[node] = append(out[node], im.Image)
			}
		}
	}
	for node := range out {
		sort.Strings(out[node])
	}
	return out
}

// StandbyPresence is each standby image's presence on the nodes asked to
// hold it (assigned, by StandbyNodes), from what those nodes last
// reported (node -> its images' states; a node that has not reported an
// image yet counts as pulling it). Nodes no longer Ready do not count.
func StandbyPresence(images []protocol.StandbyImage, assigned map[string][]string, reported map[string][]protocol.NodeImage, nodes map[string]NodeView) []protocol.ImagePresence {
	out := make([]protocol.ImagePresence, 0, len(images))
	for _, im := range images {
		p := protocol.ImagePresence{Workload: im.Workload, Generation: im.Generation, Image: im.Image}
		for _, node := range slices.Sorted(maps.Keys(assigned)) {
			if !slices.Contains(assigned[node], im.Image) || !nodes[node].Ready {
				continue
			}
			p.Wanted++
			i := slices.IndexFunc(reported[node], func(ni protocol.NodeImage) bool { return ni.Image == im.Image })
			switch {
			case i < 0:
				p.Pulling++
			case reported[node][i].State == protocol.ImagePresent:
				p.Present++
			case reported[node][i].State == protocol.ImageFailed:
				p.Failed++
				if p.Message == "" {
					p.Message = node + ": " + reported[node][i].Message
				}
			default:
				p.Pulling++
			}
		}
		out = append(out, p)
	}
	return out
}
