package traffic

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Summarize is a service's traffic over [from, to] for people: the total,
// a row per region of the endpoints that answered, and a row per region
// and revision when more than one revision answered (a rollout). Pure:
// regionOf names a cluster's region ("" unknown), revisionAt the
// workload's revision for a generation (0 unknown).
func Summarize(service, workload string, samples []Sample, regionOf func(cluster string) string, revisionAt func(gen int64) int64, from, to time.Time) api.ServiceTraffic {
	span := to.Sub(from)
	out := api.ServiceTraffic{Service: service, Workload: workload, Window: api.Duration(span.Round(time.Second).String()), From: from.UTC(), To: to.UTC(), Regions: []api.TrafficRow{}}
	type rk struct {
		region   string
		revision int64
	}
	var total Counts
	regions := map[string]*Counts{}
	split := map[rk]*Counts{}
	revs := map[int64]bool{}
	for _, s := range samples {
		if s.Service != service {
			continue
		}
		region := cmp.Or(regionOf(s.Cluster), "(unknown)")
		rev := revisionAt(s.Generation)
		revs[rev] = true
		total.Add(s.Counts)
		if regions[region] == nil {
			regions[region] = &Counts{}
		}
		regions[region].Add(s.Counts)
		k := rk{region, rev}
		if split[k] == nil {
			split[k] = &Counts{}
		}
		split[k].Add(s.Counts)
	}
	out.Total = row("", 0, total, span)
	for _, r := range sortedKeys(regions) {
		out.Regions = append(out.Regions, row(r, 0, *regions[r], span))
	}
	if len(revs) > 1 {
		keys := make([]rk, 0, len(split))
		for k := range split {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b rk) int {
			return cmp.Or(strings.Compare(a.region, b.region), cmp.Compare(b.revision, a.revision))
		})
		for _, k := range keys {
			out.Revisions = append(out.Revisions, row(k.region, k.revision, *split[k], span))
		}
	}
	return out
}

func row(region string, revision int64, c Counts, span time.Duration) api.TrafficRow {
	r := api.TrafficRow{Region: region, Revision: revision, Requests: c.Requests, Errors: c.Errors, ErrorRatio: c.ErrorRatio(),
		P50Millis: millis(c.Quantile(0.5)), P99Millis: millis(c.Quantile(0.99))}
	if span > 0 {
		r.RequestsPerSecond = float64(c.Requests) / span.Seconds()
	}
	return r
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Revision is one of a workload's template revisions: its number and the
// generation that introduced it.
type Revision struct{ Number, Generation int64 }

// RevisionAt is, for a workload's revisions (oldest first), the revision
// a replica of generation gen runs: the newest introduced at or before
// gen (0: unknown, as for a replica of a member before generations were
// reported).
func RevisionAt(revs []Revision) func(gen int64) int64 {
	return func(gen int64) int64 {
		var n int64
		for _, r := range revs {
			if gen > 0 && r.Generation <= gen {
				n = r.Number
			}
		}
		return n
	}
}
