package describe

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Event writes one event: what it is about, its reason and message, who
// wrote it and how often it happened.
func Event(out io.Writer, e *api.Event, now time.Time) error {
	d := newDoc(out)
	metadata(d, "Event", e.Metadata, now)
	d.row(0, "Object", strings.ToLower(e.InvolvedObject.Kind)+"/"+e.InvolvedObject.Name)
	d.row(0, "Type", e.Type)
	d.row(0, "Reason", e.Reason)
	d.row(0, "Message", e.Message)
	d.row(0, "Source", cmp.Or(e.Source, "<unknown>"))
	if e.Cluster != "" {
		d.row(0, "Cluster", e.Cluster)
	}
	d.row(0, "Last seen", when(e.EventTime, now))
	if e.Count > 1 {
		first := ""
		if e.FirstTimestamp != nil {
			first = ", first " + when(e.FirstTimestamp, now)
		}
		d.row(0, "Count", fmt.Sprintf("%d times%s", e.Count, first))
	}
	return d.flush()
}
