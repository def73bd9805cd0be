package controller

import (
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// stampData sets, on the template of each desired workload that uses
// configs or secrets and that the hub did not pin (a hub from before it
// pinned them), api.AnnotationData: the newest versions of those the
// member holds (0 when it holds none). New values are then a new
// template, and the replicas roll as for any template change (the update
// strategy's surge and unavailability apply). A template the hub pinned
// keeps its pins: the hub rolls new values as revisions (wave by wave
// under a progressive rollout), and replicas get the pinned versions.
// Workloads without references are left as they are; desired is changed
// in place (the store hands out copies), each stamped template's
// annotations cloned.
func stampData(desired map[string]protocol.DesiredWorkload, held map[string]int64) {
	for name, d := range desired {
		if d.Deleted || d.Template.Annotations[api.AnnotationData] != "" {
			continue
		}
		refs := d.Template.DataRefs("")
		if len(refs) == 0 {
			continue
		}
		ids := map[string]bool{}
		for _, r := range refs {
			ids[protocol.DataID(r.Kind, r.Name)] = true
		}
		parts := make([]string, 0, len(ids))
		for id := range ids {
			parts = append(parts, id+"="+strconv.FormatInt(held[id], 10))
		}
		sort.Strings(parts)
		ann := maps.Clone(d.Template.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[api.AnnotationData] = strings.Join(parts, ",")
		d.Template.Annotations = ann
		desired[name] = d
	}
}
