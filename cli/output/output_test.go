package output

import (
	"encoding/json"
	"strings"
	"testing"
)

var workloads = Group{
	Kind: "Workload", Plural: "workloads", List: true, ListVersion: "42",
	Table: Table{
		Headers:     []string{"NAME", "REPLICAS"},
		WideHeaders: []string{"LABELS"},
		Row: func(raw json.RawMessage, wide bool) []string {
			var w struct {
				Metadata struct {
					Name   string            `json:"name"`
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec struct {
					Replicas int `json:"replicas"`
				} `json:"spec"`
			}
			_ = json.Unmarshal(raw, &w)
			cells := []string{w.Metadata.Name, strings.Repeat("#", w.Spec.Replicas)}
			if wide {
				cells = append(cells, w.Metadata.Labels["app"])
			}
			return cells
		},
	},
	Items: []json.RawMessage{
		json.RawMessage(`{"metadata":{"name":"web","labels":{"app":"shop"}},"spec":{"replicas":10},"status":{"readyReplicas":9}}`),
		json.RawMessage(`{"metadata":{"name":"api-gateway"},"spec":{"replicas":2}}`),
		json.RawMessage(`{"metadata":{"name":"db","labels":{"app":"shop"}},"spec":{"replicas":3},"status":{"readyReplicas":3}}`),
	},
}

func TestPrint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, format, sortBy string
		noHeaders, single    bool
		groups               []Group
		want                 string
	}{
		{name: "table", format: "table", groups: []Group{workloads}, want: "" +
			"NAME          REPLICAS\n" +
			"web           ##########\n" +
			"api-gateway   ##\n" +
			"db            ###\n"},
		{name: "wide without headers", format: "wide", noHeaders: true, groups: []Group{workloads}, want: "" +
			"web           ##########   shop\n" +
			"api-gateway   ##           \n" +
			"db            ###          shop\n"},
		{name: "sort by a number, not its text", format: "name", sortBy: ".spec.replicas", groups: []Group{workloads}, want: "" +
			"workload/api-gateway\nworkload/db\nworkload/web\n"},
		{name: "sort by a relaxed path, missing values first", format: "name", sortBy: "status.readyReplicas", groups: []Group{workloads}, want: "" +
			"workload/api-gateway\nworkload/db\nworkload/web\n"},
		{name: "sort by a string", format: "name", sortBy: "{.metadata.name}", groups: []Group{workloads}, want: "" +
			"workload/api-gateway\nworkload/db\nworkload/web\n"},
		{name: "custom columns", format: "custom-columns=NAME:.metadata.name,READY:.status.readyReplicas,APP:metadata.labels.app", groups: []Group{workloads}, want: "" +
			"NAME          READY    APP\n" +
			"web           9        shop\n" +
			"api-gateway   <none>   <none>\n" +
			"db            3        shop\n"},
		{name: "custom columns of several results", format: "custom-columns=NAME:.metadata.name,LABELS:.metadata.labels.*", noHeaders: true, sortBy: ".metadata.name", groups: []Group{workloads}, want: "" +
			"api-gateway   <none>\n" +
			"db            shop\n" +
			"web           shop\n"},
		{name: "jsonpath over a list", format: "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}", groups: []Group{workloads}, want: "" +
			"web=10\napi-gateway=2\ndb=3\n\n"},
		{name: "jsonpath of the list's kind", format: "jsonpath={.kind} {.metadata.resourceVersion}", groups: []Group{workloads}, want: "WorkloadList 42\n"},
		{name: "jsonpath of one object", format: "jsonpath={.metadata.name}", single: true, groups: []Group{{Kind: "Workload", Items: workloads.Items[:1]}}, want: "web\n"},
		{name: "json of one object, fields in its order", format: "json", single: true, groups: []Group{{Kind: "Workload", Items: workloads.Items[2:]}}, want: `{
  "metadata": {
    "name": "db",
    "labels": {
      "app": "shop"
    }
  },
  "spec": {
    "replicas": 3
  },
  "status": {
    "readyReplicas": 3
  }
}
`},
		{name: "yaml of named objects of two kinds", format: "yaml", groups: []Group{
			{Kind: "Workload", Items: workloads.Items[1:2]},
			{Kind: "Cluster", Items: []json.RawMessage{json.RawMessage(`{"metadata":{"name":"eu-west"}}`)}}}, want: `apiVersion: atoll.dev/v1
items:
- metadata:
    name: api-gateway
  spec:
    replicas: 2
- metadata:
    name: eu-west
kind: List
`},
		{name: "name of two kinds", format: "name", groups: []Group{
			{Kind: "Workload", Items: workloads.Items[:1]},
			{Kind: "Cluster", Items: []json.RawMessage{json.RawMessage(`{"metadata":{"name":"eu-west"}}`)}}}, want: "workload/web\ncluster/eu-west\n"},
		{name: "tables of two kinds", format: "table", groups: []Group{
			{Kind: "Workload", Table: workloads.Table, Items: workloads.Items[:1]},
			{Kind: "Cluster", Table: Table{Headers: []string{"NAME"}, Row: func(json.RawMessage, bool) []string { return []string{"eu-west"} }},
				Items: []json.RawMessage{json.RawMessage(`{}`)}}}, want: "" +
			"NAME   REPLICAS\nweb    ##########\n\nNAME\neu-west\n"},
		{name: "empty list", format: "table", groups: []Group{{Kind: "Workload", Plural: "workloads", List: true}}, want: "No workloads found.\n"},
		{name: "empty list as json", format: "json", groups: []Group{{Kind: "Cluster", Plural: "clusters", List: true, ListVersion: "7"}}, want: `{
  "apiVersion": "atoll.dev/v1",
  "items": [],
  "kind": "ClusterList",
  "metadata": {
    "resourceVersion": "7"
  }
}
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(c.format, c.noHeaders, c.sortBy)
			if err != nil {
				t.Fatalf("New(%q, %v, %q): %v", c.format, c.noHeaders, c.sortBy, err)
			}
			groups := make([]Group, len(c.groups))
			for i, g := range c.groups {
				g.Items = append([]json.RawMessage(nil), g.Items...) // sorting must not reorder the shared fixture
				groups[i] = g
			}
			var out strings.Builder
			if err := p.Print(&out, groups, c.single); err != nil {
				t.Fatalf("Print: %v", err)
			}
			if out.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), c.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ format, sortBy, want string }{
		{"xml", "", "-o xml: use table, wide, name, json, yaml, jsonpath=, custom-columns="},
		{"jsonpath=", "", "needs a template"},
		{"jsonpath={.metadata.name", "", "unclosed action"},
		{"custom-columns=", "", "needs columns"},
		{"custom-columns=NAME", "", `"NAME" is not HEADER:.json.path`},
		{"custom-columns=NAME:{.a}{.b}", "", "is not a JSONPath"},
		{"json=x", "", "only jsonpath= and custom-columns= take a value"},
		{"table", "{.a}{.b}", "--sort-by"},
	}
	for _, c := range cases {
		_, err := New(c.format, false, c.sortBy)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, sort-by %q): want an error with %q; got %v", c.format, c.sortBy, c.want, err)
		}
	}
	// A flag that would do nothing is refused.
	for _, f := range []string{"json", "yaml", "name", "jsonpath={.metadata.name}"} {
		if _, err := New(f, true, ""); err == nil || !strings.Contains(err.Error(), "--no-headers") {
			t.Errorf("New(%q, --no-headers): want a refusal naming --no-headers; got %v", f, err)
		}
	}
	for _, f := range []string{"table", "wide", "custom-columns=N:.metadata.name"} {
		if _, err := New(f, true, ""); err != nil {
			t.Errorf("New(%q, --no-headers): %v", f, err)
		}
	}
}

func TestWatchAlignsEventColumn(t *testing.T) {
	t.Parallel()
	p, err := New("table", false, "")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	g := workloads
	g.Items = workloads.Items[1:2]
	wa, err := p.Watch(&out, g)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		typ string
		i   int
	}{{"MODIFIED", 1}, {"ADDED", 0}, {"DELETED", 2}} {
		if err := wa.Event(e.typ, workloads.Items[e.i]); err != nil {
			t.Fatal(err)
		}
	}
	// EVENT is as wide as MODIFIED from the start; a column widens for a
	// longer value and never narrows again.
	want := "" +
		"EVENT      NAME          REPLICAS\n" +
		"ADDED      api-gateway   ##\n" +
		"MODIFIED   api-gateway   ##\n" +
		"ADDED      web           ##########\n" +
		"DELETED    db            ###\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	p, _ = New("name", false, "")
	wa, _ = p.Watch(&out, g)
	_ = wa.Event("DELETED", workloads.Items[1])
	if want := "workload/api-gateway\nworkload/api-gateway\n"; out.String() != want {
		t.Errorf("-o name watch: got %q, want %q", out.String(), want)
	}
}
