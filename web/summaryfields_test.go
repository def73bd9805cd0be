package web

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestWorkloadOfChangeSummary: a workload change decoded with only what
// summarize reads gives the same summary as the whole workload decoded,
// for workloads that take each branch of the health and count rules
// (Duplicated placement, unplaced replicas, a rollout under way, being
// deleted, reports from clusters in two regions).
func TestWorkloadOfChangeSummary(t *testing.T) {
	docs := []string{
		`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"web","uid":"u1","resourceVersion":"7","generation":1,"creationTimestamp":"2026-12-05T10:00:00Z","labels":{"app":"web","tier":"front"}},"spec":{"replicas":3,"template":{"driver":"process","command":"/bin/sleep","args":["100"],"env":[{"name":"A","value":"b"}]}},"status":{}}`,
		`{"metadata":{"name":"dup","generation":3,"creationTimestamp":"2026-12-05T10:00:00Z"},"spec":{"replicas":2,"placement":{"replicaMode":"Duplicated"},"template":{"driver":"sim"}},"status":{"observedGeneration":2,"readyReplicas":3,"placement":{"clusters":{"eu-1":2,"us-1":2},"unplaced":1,"reason":"1 cluster tainted"},"clusters":[{"cluster":"eu-1","region":"eu","desired":2,"ready":2},{"cluster":"us-1","region":"us","desired":2,"ready":1}]}}`,
		`{"metadata":{"name":"roll","generation":4},"spec":{"replicas":4,"template":{"driver":"oci","image":"r.example/app:1"}},"status":{"observedGeneration":3,"readyReplicas":2,"placement":{"clusters":{"eu-1":4}},"clusters":[{"cluster":"eu-1","region":"eu","desired":4,"ready":2}]}}`,
		`{"metadata":{"name":"gone","deletionTimestamp":"2026-12-05T11:00:00Z","finalizers":["atoll.dev/placer"]},"spec":{"replicas":1,"template":{"driver":"process","command":"x"}},"status":{"readyReplicas":1}}`,
		`{"metadata":{"name":"zero"},"spec":{"replicas":0,"template":{"driver":"process","command":"x"}},"status":{"placement":{}}}`,
	}
	for _, doc := range docs {
		var whole api.Workload
		if err := json.Unmarshal([]byte(doc), &whole); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		slim, err := workloadOfChange([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		want, got := summarize(&whole), summarize(slim)
		// The search text lists labels in map order: compare its words.
		for _, s := range []*workloadSummary{want, got} {
			words := strings.Fields(s.search)
			slices.Sort(words)
			s.search = strings.Join(words, " ")
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\nsummary from the fields it reads %+v\nwant the whole workload's %+v", whole.Metadata.Name, got, want)
		}
	}
	if _, err := workloadOfChange([]byte(`{"metadata":`)); err == nil {
		t.Error("a broken document decoded without an error")
	}
}
