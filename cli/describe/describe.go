package describe

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
)

// Object writes the description of one object of kind (a kind's name,
// "Workload") from its JSON as the hub answered it. Kinds without a
// summary of their own, and objects that do not decode as their kind,
// get the generic one.
func Object(out io.Writer, kind string, raw json.RawMessage, now time.Time) error {
	switch kind {
	case "Workload":
		var w api.Workload
		if json.Unmarshal(raw, &w) == nil {
			return Workload(out, &w, now)
		}
	case "Cluster":
		var c api.Cluster
		if json.Unmarshal(raw, &c) == nil {
			return Cluster(out, &c, now)
		}
	case "Drill":
		var d api.Drill
		if json.Unmarshal(raw, &d) == nil {
			return Drill(out, &d, now)
		}
	case "Token":
		var t api.Token
		if json.Unmarshal(raw, &t) == nil {
			return Token(out, &t, now)
		}
	case "Event":
		var e api.Event
		if json.Unmarshal(raw, &e) == nil {
			return Event(out, &e, now)
		}
	}
	return Generic(out, kind, raw, now)
}

// HasEvents says whether a description of kind ends with the object's
// events: every kind's does but an Event's own.
func HasEvents(kind string) bool { return kind != "Event" }

// MaxEvents is how many of an object's events Events shows: the latest.
const MaxEvents = 10

// Events writes an object's events under "Events:", oldest first, the
// latest MaxEvents of them, each with its age and how often it happened.
func Events(out io.Writer, events []api.Event, now time.Time) error {
	d := newDoc(out)
	d.head(0, "Events")
	if len(events) == 0 {
		d.line(1, "<none>")
		return d.flush()
	}
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b api.Event) int {
		if a.EventTime == nil || b.EventTime == nil {
			return 0
		}
		return a.EventTime.Compare(*b.EventTime)
	})
	if len(events) > MaxEvents {
		events = events[len(events)-MaxEvents:]
	}
	rows := make([][]string, len(events))
	for i, e := range events {
		rows[i] = []string{ago(e.EventTime, now), e.Type, e.Reason, EventMessage(e, now)}
	}
	d.table(1, []string{"AGE", "TYPE", "REASON", "MESSAGE"}, rows)
	return d.flush()
}

// EventMessage is an event's message with how often it happened when
// it was deduplicated: "… (x8 over 10m)".
func EventMessage(e api.Event, now time.Time) string {
	if e.Count <= 1 || e.FirstTimestamp == nil {
		return e.Message
	}
	return fmt.Sprintf("%s (x%d over %s)", e.Message, e.Count, ago(e.FirstTimestamp, now))
}

// CPU renders millicores for people: "500m CPU" under a core, "2 CPU",
// "1.5 CPU" from one core up.
func CPU(milli int64) string {
	if milli < 1000 {
		return fmt.Sprintf("%dm CPU", milli)
	}
	return Cores(milli) + " CPU"
}

// Cores renders millicores as a number of cores: "4", "1.5", "0.25".
func Cores(milli int64) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64)
}

// Memory renders bytes in binary units for people: "256 MiB", "1.5 GiB",
// "488.3 MiB", "512 B".
func Memory(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(n), 0
	for (f >= 1024 || f <= -1024) && i < len(units)-1 {
		f /= 1024
		i++
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + " " + units[i]
}

// Duration renders a duration without its zero parts: "5s", "1m",
// "1h30m", "500ms", "30d".
func Duration(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// when is a time with its age: "2026-01-01T12:00:00Z (5m ago)", or "in
// 3d" for one to come.
func when(t *time.Time, now time.Time) string {
	if t == nil {
		return "<unknown>"
	}
	s := t.UTC().Format(time.RFC3339)
	if t.After(now) {
		return s + " (in " + output.Duration(t.Sub(now)) + ")"
	}
	return s + " (" + output.Duration(now.Sub(*t)) + " ago)"
}

// ago is kubectl's age of t ("45s", "12m"), "-" for none.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return output.Duration(now.Sub(*t))
}

// metadata writes what every object has: name, kind, labels,
// annotations, age, and a deletion under way.
func metadata(d *doc, kind string, m api.ObjectMeta, now time.Time) {
	d.row(0, "Name", m.Name)
	d.row(0, "Kind", kind)
	d.row(0, "Labels", pairs(m.Labels))
	d.row(0, "Annotations", pairs(m.Annotations))
	if m.CreationTimestamp != nil {
		d.row(0, "Created", when(m.CreationTimestamp, now))
	}
	if m.DeletionTimestamp != nil {
		d.row(0, "Deleting", "since "+when(m.DeletionTimestamp, now)+", waiting for "+cmp.Or(strings.Join(m.Finalizers, ", "), "nothing"))
	}
}

// pairs renders labels as "k=v, k2=v2" in key order, "<none>" for none.
func pairs(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, ", ")
}

// counts renders a per-cluster count as "eu-west: 3, us-east: 2".
func counts(m map[string]int32) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// plural is "1 replica", "3 replicas".
func plural[N int | int32 | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// conditions writes a status's conditions as a table: type, status,
// reason, age of the last transition, message.
func conditions(d *doc, conds []api.Condition, now time.Time) {
	d.head(0, "Conditions")
	if len(conds) == 0 {
		d.line(1, "<none>")
		return
	}
	rows := make([][]string, len(conds))
	for i, c := range conds {
		rows[i] = []string{c.Type, c.Status, cmp.Or(c.Reason, "-"), ago(c.LastTransitionTime, now), cmp.Or(c.Message, "-")}
	}
	d.table(1, []string{"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"}, rows)
}

// doc writes a description: "Key:" and value lines aligned in columns
// (tabwriter aligns each run of lines between two section heads),
// section heads, free lines and tables, indented two spaces a level.
type doc struct {
	tw *tabwriter.Writer
}

func newDoc(out io.Writer) *doc {
	return &doc{tw: tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)}
}

func indent(depth int) string { return strings.Repeat("  ", depth) }

// clean keeps a value on its line: tabs and line breaks become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\v', '\f':
			return ' '
		}
		return r
	}, s)
}

// row writes "Key:  value"; an empty value is "<none>".
func (d *doc) row(depth int, key, value string) {
	fmt.Fprintf(d.tw, "%s%s:\t%s\n", indent(depth), key, clean(cmp.Or(value, "<none>")))
}

// head writes a section's title, "Key:", alone on its line.
func (d *doc) head(depth int, title string) {
	fmt.Fprintf(d.tw, "%s%s:\n", indent(depth), title)
}

// line writes text as it is, indented.
func (d *doc) line(depth int, text string) {
	fmt.Fprintf(d.tw, "%s%s\n", indent(depth), clean(text))
}

// table writes headers and rows as aligned columns.
func (d *doc) table(depth int, headers []string, rows [][]string) {
	write := func(cells []string) {
		cs := make([]string, len(cells))
		for i, c := range cells {
			cs[i] = clean(c)
		}
		fmt.Fprintf(d.tw, "%s%s\n", indent(depth), strings.Join(cs, "\t"))
	}
	write(headers)
	for _, r := range rows {
		write(r)
	}
}

func (d *doc) flush() error { return d.tw.Flush() }
