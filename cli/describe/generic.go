package describe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/atollhq/atoll/api"
)

// Generic writes an object of a kind without a summary of its own: its
// metadata, then every other field (spec, status, or an inline kind's
// own) as indented "Key: value" lines in the order the hub wrote them,
// times with their age, byte counts and millicores in human units.
func Generic(out io.Writer, kind string, raw json.RawMessage, now time.Time) error {
	doc, err := decodeOrdered(raw)
	if err != nil {
		return fmt.Errorf("describe %s: %w", kind, err)
	}
	fields, _ := doc.([]field)
	var meta api.ObjectMeta
	for _, f := range fields {
		if f.key == "metadata" {
			b, _ := json.Marshal(plain(f.val))
			_ = json.Unmarshal(b, &meta)
		}
	}
	d := newDoc(out)
	metadata(d, kind, meta, now)
	d.row(0, "UID", meta.UID)
	if meta.Generation > 0 {
		d.row(0, "Generation", fmt.Sprint(meta.Generation))
	}
	d.row(0, "Resource version", meta.ResourceVersion)
	for _, f := range fields {
		switch f.key {
		case "apiVersion", "kind", "metadata":
			continue
		}
		value(d, 0, f.key, f.val, now)
	}
	return d.flush()
}

// field is one member of a JSON object, kept in its order.
type field struct {
	key string
	val any // []field, []any, string, json.Number, bool or nil
}

// decodeOrdered decodes JSON keeping the order of objects' members.
func decodeOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the object")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			fields := []field{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				fields = append(fields, field{key: k.(string), val: v})
			}
			_, err := dec.Token() // }
			return fields, err
		case '[':
			items := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			_, err := dec.Token() // ]
			return items, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	}
	return tok, nil
}

// plain turns an ordered value back into maps and slices.
func plain(v any) any {
	switch t := v.(type) {
	case []field:
		m := make(map[string]any, len(t))
		for _, f := range t {
			m[f.key] = plain(f.val)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// empty reports whether a value says nothing: null, {}, [] or "".
func empty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []field:
		return len(t) == 0
	case []any:
		return len(t) == 0
	case string:
		return t == ""
	}
	return false
}

// value writes one field: a scalar or a list of scalars on its line, an
// object as a section, a list of objects as items each opened by "-".
func value(d *doc, depth int, key string, v any, now time.Time) {
	if empty(v) {
		return
	}
	title := Title(key)
	switch t := v.(type) {
	case []field:
		if m, ok := labelMap(key, t); ok {
			d.row(depth, title, pairs(m))
			return
		}
		d.head(depth, title)
		for _, f := range t {
			value(d, depth+1, f.key, f.val, now)
		}
	case []any:
		if scalars(t) {
			parts := make([]string, len(t))
			for i, x := range t {
				parts[i] = scalar(key, x, now)
			}
			d.row(depth, title, strings.Join(parts, ", "))
			return
		}
		d.head(depth, title)
		for _, x := range t {
			item(d, depth+1, key, x, now)
		}
	default:
		d.row(depth, title, scalar(key, v, now))
	}
}

// item writes one element of a list of objects: its first line opened
// by "- ", the rest under it.
func item(d *doc, depth int, key string, v any, now time.Time) {
	fields, ok := v.([]field)
	if !ok {
		d.line(depth, "- "+scalar(key, v, now))
		return
	}
	var sub strings.Builder
	inner := newDoc(&sub)
	for _, f := range fields {
		value(inner, 0, f.key, f.val, now)
	}
	_ = inner.flush()
	for i, l := range strings.Split(strings.TrimRight(sub.String(), "\n"), "\n") {
		lead := "  "
		if i == 0 {
			lead = "- "
		}
		d.line(depth, lead+l)
	}
}

// labelMap is an object of labels (labels, annotations, a selector's
// matchLabels): its keys are data, not fields, and read as "k=v" pairs.
func labelMap(key string, fields []field) (map[string]string, bool) {
	lower := strings.ToLower(key)
	if !strings.HasSuffix(lower, "labels") && !strings.HasSuffix(lower, "annotations") && !strings.HasSuffix(lower, "selector") {
		return nil, false
	}
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		s, ok := f.val.(string)
		if !ok {
			return nil, false
		}
		m[f.key] = s
	}
	return m, true
}

func scalars(items []any) bool {
	for _, x := range items {
		switch x.(type) {
		case []field, []any:
			return false
		}
	}
	return true
}

// scalar renders one value; key tells what it measures: times get their
// age, "…Bytes" human units, CPU "…Millis" cores.
func scalar(key string, v any, now time.Time) string {
	switch t := v.(type) {
	case nil:
		return "<none>"
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, t); err == nil && strings.Contains(t, "T") {
			return when(&ts, now)
		}
		return t
	case bool:
		if t {
			return "yes"
		}
		return "no"
	case json.Number:
		lower := strings.ToLower(key)
		if n, err := t.Int64(); err == nil {
			switch {
			case strings.HasSuffix(lower, "bytes"):
				return Memory(n)
			case strings.HasPrefix(lower, "cpu") && strings.HasSuffix(lower, "millis"):
				return Cores(n) + " cores"
			}
		}
		return t.String()
	}
	return fmt.Sprint(v)
}

// acronyms are written in capitals in titles.
var acronyms = map[string]string{"cpu": "CPU", "rto": "RTO", "slo": "SLO", "slos": "SLOs", "uid": "UID", "id": "ID", "url": "URL", "http": "HTTP", "tcp": "TCP", "udp": "UDP", "ip": "IP", "dns": "DNS", "tls": "TLS", "ca": "CA"}

// Title turns a JSON field name into a title: "lastHeartbeatTime" is
// "Last heartbeat time", "cpuAllocatableMillis" "CPU allocatable
// millis".
func Title(key string) string {
	var words []string
	start := 0
	rs := []rune(key)
	for i := 1; i <= len(rs); i++ {
		if i == len(rs) || (unicode.IsUpper(rs[i]) && !unicode.IsUpper(rs[i-1])) ||
			(unicode.IsUpper(rs[i]) && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])) {
			words = append(words, string(rs[start:i]))
			start = i
		}
	}
	for i, w := range words {
		lw := strings.ToLower(w)
		switch {
		case acronyms[lw] != "":
			words[i] = acronyms[lw]
		case i == 0:
			r := []rune(lw)
			words[i] = string(unicode.ToUpper(r[0])) + string(r[1:])
		case strings.ToUpper(w) == w && len(w) > 1:
			// an acronym as written: "URL"
		default:
			words[i] = lw
		}
	}
	return strings.Join(words, " ")
}
