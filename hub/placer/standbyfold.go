package placer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// Events of warm standby, on the workload.
const (
	// ReasonImagePrepulled: every node a cluster asked holds the image
	// ahead of a failover.
	ReasonImagePrepulled = "ImagePrepulled"
	// ReasonPrepullFailed: a cluster's nodes could not pull it ahead
	// (the registry's answer; deduplicated per cluster).
	ReasonPrepullFailed = "PrepullFailed"
)

// imageEvent is a warm standby transition to record.
type imageEvent struct {
	cluster, reason, message string
}

// observeImagesLocked keeps a cluster's report of its standby images and
// notes the transitions worth an event: an image now held by every node
// asked, a pull ahead that failed (again, with a new answer).
func (f *StatusFolder) observeImagesLocked(cluster string, images []protocol.ImagePresence) {
	seen := map[string]bool{}
	if len(images) > protocol.MaxStandbyImages {
		images = images[:protocol.MaxStandbyImages]
	}
	for _, p := range images {
		if !api.IsDNSLabel(p.Workload) || len(p.Image) > 1024 {
			continue
		}
		p.Message = api.Truncate(p.Message, 1024)
		seen[p.Workload] = true
		byCluster := f.images[p.Workload]
		if byCluster == nil {
			byCluster = map[string]protocol.ImagePresence{}
			f.images[p.Workload] = byCluster
		}
		old, had := byCluster[cluster]
		if had && old == p {
			continue
		}
		byCluster[cluster] = p
		f.dirty[p.Workload] = true
		warm := p.Wanted > 0 && p.Present >= p.Wanted
		wasWarm := had && old.Image == p.Image && old.Wanted > 0 && old.Present >= old.Wanted
		switch {
		case warm && !wasWarm:
			f.imageEvents[p.Workload] = append(f.imageEvents[p.Workload], imageEvent{cluster, ReasonImagePrepulled,
				fmt.Sprintf("%s holds %s ahead of a failover on %d of %d node(s)", cluster, p.Image, p.Present, p.Wanted)})
		case p.Failed > 0 && (!had || old.Message != p.Message || old.Failed == 0):
			f.imageEvents[p.Workload] = append(f.imageEvents[p.Workload], imageEvent{cluster, ReasonPrepullFailed,
				fmt.Sprintf("%d of %d node(s) of %s could not pull %s ahead of a failover: %s", p.Failed, p.Wanted, cluster, p.Image, p.Message)})
		}
	}
	for w, byCluster := range f.images {
		if _, ok := byCluster[cluster]; ok && !seen[w] {
			delete(byCluster, cluster)
			if len(byCluster) == 0 {
				delete(f.images, w)
			}
			f.dirty[w] = true
		}
	}
}

// imageRowsLocked is a workload's status.images, by cluster.
func (f *StatusFolder) imageRowsLocked(workload string) []api.ClusterImage {
	byCluster := f.images[workload]
	if len(byCluster) == 0 {
		return nil
	}
	out := make([]api.ClusterImage, 0, len(byCluster))
	for cluster, p := range byCluster {
		row := api.ClusterImage{Cluster: cluster, Image: p.Image, Generation: p.Generation, Wanted: p.Wanted, Present: p.Present,
			Pulling: p.Pulling, Failed: p.Failed, Message: p.Message}
		if t, ok := f.heard[cluster]; ok {
			row.ReportedAt = &t
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b api.ClusterImage) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out
}

// recordImageEvents writes a workload's warm standby events.
func (f *StatusFolder) recordImageEvents(ctx context.Context, tx *pgstore.Tx, workload string, evs []imageEvent) error {
	ref := api.ObjectReference{Kind: "Workload", Name: workload}
	for _, e := range evs {
		var err error
		if e.reason == ReasonPrepullFailed {
			err = events.Dedup(ctx, tx, f.now(), ref, api.EventWarning, e.reason, e.cluster, e.message, "member/"+e.cluster, 1)
		} else {
			err = events.Record(ctx, tx, f.now(), ref, api.EventNormal, e.reason, e.message, "member/"+e.cluster)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
