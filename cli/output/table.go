package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// padding is the space between columns, as text/tabwriter pads them
// elsewhere in the CLI.
const padding = 3

// align lays rows out in columns. widths, when not nil, carries the
// columns' widths from call to call: a column is never narrower than it
// was, so rows printed one at a time (a watch) line up with the header.
// The last cell of a row is not padded.
func align(rows [][]string, widths *[]int) string {
	var ws []int
	if widths != nil {
		ws = *widths
	}
	for _, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				break
			}
			for len(ws) <= i {
				ws = append(ws, 0)
			}
			ws[i] = max(ws[i], utf8.RuneCountInString(c))
		}
	}
	if widths != nil {
		*widths = ws
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", ws[i]-utf8.RuneCountInString(c)+padding))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Watcher prints a watch: the list it starts from, then each change. In
// tables the first column is EVENT (ADDED for the objects listed first),
// named in the header and kept aligned with it.
type Watcher struct {
	p      *Printer
	w      io.Writer
	g      Group
	widths []int
}

// Watch prints the group the watch starts from and returns the Watcher
// to print its events with.
func (p *Printer) Watch(w io.Writer, g Group) (*Watcher, error) {
	// EVENT is as wide as its longest value from the start, so the rows
	// of changes line up with the header.
	wa := &Watcher{p: p, w: w, g: g, widths: []int{len("MODIFIED")}}
	if err := p.sort(&wa.g); err != nil {
		return nil, err
	}
	switch p.format {
	case "json", "yaml":
		return wa, p.Print(w, []Group{wa.g}, !g.List)
	}
	var rows [][]string
	if !p.noHeaders && p.format != "name" && p.format != "jsonpath" {
		var h []string
		if p.format == "custom-columns" {
			h = p.customHeader()
		} else {
			h = g.Table.header(p.format == "wide")
		}
		rows = append(rows, append([]string{"EVENT"}, h...))
	}
	for _, raw := range wa.g.Items {
		if p.format == "name" || p.format == "jsonpath" {
			if err := wa.Event("ADDED", raw); err != nil {
				return nil, err
			}
			continue
		}
		r, err := wa.row("ADDED", raw)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	_, err := io.WriteString(w, align(rows, &wa.widths))
	return wa, err
}

func (wa *Watcher) row(event string, raw json.RawMessage) ([]string, error) {
	if wa.p.format == "custom-columns" {
		r, err := wa.p.customRow(raw)
		return append([]string{event}, r...), err
	}
	return append([]string{event}, wa.g.Table.Row(raw, wa.p.format == "wide")...), nil
}

// Event prints one change: ADDED, MODIFIED or DELETED and the object.
func (wa *Watcher) Event(event string, raw json.RawMessage) error {
	switch wa.p.format {
	case "json", "yaml":
		return WriteData(wa.w, wa.p.format, map[string]any{"type": event, "object": raw})
	case "name":
		_, err := fmt.Fprintln(wa.w, objectName(wa.g.Kind, raw))
		return err
	case "jsonpath":
		obj, err := decode(raw)
		if err != nil {
			return err
		}
		if err := wa.p.template.Execute(wa.w, obj); err != nil {
			return fmt.Errorf("jsonpath: %w", err)
		}
		_, err = fmt.Fprintln(wa.w)
		return err
	}
	r, err := wa.row(event, raw)
	if err != nil {
		return err
	}
	_, err = io.WriteString(wa.w, align([][]string{r}, &wa.widths))
	return err
}
