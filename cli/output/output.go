// Package output renders API objects for the atoll CLI: the -o formats
// (table, wide, name, json, yaml, jsonpath=…, custom-columns=…), the
// --no-headers and --sort-by flags, and the rows of a watch, whose EVENT
// column stays aligned with the header.
//
// It owns formatting only. It must not talk to the hub, read flags or
// files, or know a kind's columns: callers hand it the objects as JSON
// and, for tables, the kind's columns as a Table. JSONPath is kubectl's
// (k8s.io/client-go/util/jsonpath), so templates written for kubectl work
// here unchanged.
package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// Formats are the -o values, for help and shell completion.
var Formats = []string{"table", "wide", "name", "json", "yaml", "jsonpath=", "custom-columns="}

// Table is how one kind renders as a table.
type Table struct {
	Headers, WideHeaders []string
	// Row renders one object's cells: len(Headers) of them, and the wide
	// ones after when wide is set.
	Row func(obj json.RawMessage, wide bool) []string
	// Less orders rows when --sort-by is not given (nil: as given).
	Less func(a, b json.RawMessage) bool
}

func (t Table) header(wide bool) []string {
	if wide {
		return append(append([]string{}, t.Headers...), t.WideHeaders...)
	}
	return t.Headers
}

// Group is the objects of one kind, as read from the hub.
type Group struct {
	Kind   string // Workload
	Plural string // workloads
	Table  Table
	Items  []json.RawMessage
	// List says the group is a whole list (not named objects); ListVersion
	// is its resource version, shown in the json and yaml of a list.
	List        bool
	ListVersion string
}

// Printer prints groups of objects in one format.
type Printer struct {
	format    string // table, wide, name, json, yaml, jsonpath, custom-columns
	noHeaders bool
	template  *jsonpath.JSONPath
	columns   []column
	sortBy    *jsonpath.JSONPath
}

type column struct {
	header string
	path   *jsonpath.JSONPath
}

// New parses -o, --no-headers and --sort-by. The -o value is one of
// Formats; jsonpath= takes a kubectl template ({.metadata.name}) and
// custom-columns= a list of HEADER:.json.path pairs.
func New(format string, noHeaders bool, sortBy string) (*Printer, error) {
	p := &Printer{noHeaders: noHeaders}
	name, arg, hasArg := strings.Cut(format, "=")
	switch name {
	case "", "table":
		p.format = "table"
	case "wide", "name", "json", "yaml":
		p.format = name
	case "jsonpath":
		if arg == "" {
			return nil, errors.New("-o jsonpath= needs a template, e.g. -o jsonpath='{.metadata.name}'")
		}
		jp, err := parsePath("jsonpath", arg, false)
		if err != nil {
			return nil, err
		}
		p.format, p.template = name, jp
	case "custom-columns":
		if arg == "" {
			return nil, errors.New("-o custom-columns= needs columns, e.g. -o custom-columns=NAME:.metadata.name,READY:.status.readyReplicas")
		}
		for _, spec := range strings.Split(arg, ",") {
			header, expr, ok := strings.Cut(spec, ":")
			if !ok || header == "" || expr == "" {
				return nil, fmt.Errorf("-o custom-columns: %q is not HEADER:.json.path", spec)
			}
			jp, err := parsePath("custom-columns", expr, true)
			if err != nil {
				return nil, err
			}
			p.columns = append(p.columns, column{header, jp})
		}
		p.format = name
	default:
		return nil, fmt.Errorf("-o %s: use %s", format, strings.Join(Formats, ", "))
	}
	if hasArg && p.template == nil && p.columns == nil {
		return nil, fmt.Errorf("-o %s: only jsonpath= and custom-columns= take a value", format)
	}
	if noHeaders && p.format != "table" && p.format != "wide" && p.format != "custom-columns" {
		return nil, fmt.Errorf("--no-headers leaves out a table's header: -o %s has none", name)
	}
	if sortBy != "" {
		jp, err := parsePath("--sort-by", sortBy, true)
		if err != nil {
			return nil, err
		}
		p.sortBy = jp
	}
	return p, nil
}

var relaxed = regexp.MustCompile(`^\{?(\.?[^{}]+)\}?$`)

// parsePath parses a kubectl JSONPath template. A relaxed one may leave
// out the braces and the leading dot (metadata.name), as kubectl allows
// in custom-columns and --sort-by.
func parsePath(flag, expr string, relax bool) (*jsonpath.JSONPath, error) {
	if relax {
		m := relaxed.FindStringSubmatch(expr)
		if m == nil {
			return nil, fmt.Errorf("%s: %q is not a JSONPath such as .metadata.name", flag, expr)
		}
		expr = m[1]
		if !strings.HasPrefix(expr, ".") {
			expr = "." + expr
		}
		expr = "{" + expr + "}"
	}
	jp := jsonpath.New(flag).AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return jp, nil
}

// Print writes the groups. single says one object was asked for by name:
// json, yaml and jsonpath then show the object itself rather than a list.
func (p *Printer) Print(w io.Writer, groups []Group, single bool) error {
	for i := range groups {
		if err := p.sort(&groups[i]); err != nil {
			return err
		}
	}
	switch p.format {
	case "json", "yaml", "jsonpath":
		// JSONPath walks decoded values; json and yaml print the objects as
		// the hub wrote them, fields in its order.
		doc, err := document(groups, single, p.format == "jsonpath")
		if err != nil {
			return err
		}
		if p.format == "jsonpath" {
			if err := p.template.Execute(w, doc); err != nil {
				return fmt.Errorf("jsonpath: %w", err)
			}
			_, err := fmt.Fprintln(w)
			return err
		}
		return WriteData(w, p.format, doc)
	case "name":
		for _, g := range groups {
			for _, raw := range g.Items {
				if _, err := fmt.Fprintln(w, objectName(g.Kind, raw)); err != nil {
					return err
				}
			}
		}
		return nil
	case "custom-columns":
		var rows [][]string
		if !p.noHeaders {
			rows = append(rows, p.customHeader())
		}
		for _, g := range groups {
			for _, raw := range g.Items {
				r, err := p.customRow(raw)
				if err != nil {
					return err
				}
				rows = append(rows, r)
			}
		}
		_, err := io.WriteString(w, align(rows, nil))
		return err
	}
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if len(g.Items) == 0 && g.List {
			fmt.Fprintf(w, "No %s found.\n", g.Plural)
			continue
		}
		var rows [][]string
		wide := p.format == "wide"
		if !p.noHeaders {
			rows = append(rows, g.Table.header(wide))
		}
		for _, raw := range g.Items {
			rows = append(rows, g.Table.Row(raw, wide))
		}
		if _, err := io.WriteString(w, align(rows, nil)); err != nil {
			return err
		}
	}
	return nil
}

// document is what json, yaml and jsonpath see: the one object, a kind's
// list (KindList with its resource version), or a List of named objects.
// The objects are decoded when asked, else kept as JSON.
func document(groups []Group, single, decoded bool) (any, error) {
	var items []any
	for _, g := range groups {
		for _, raw := range g.Items {
			var v any = raw
			if decoded {
				var err error
				if v, err = decode(raw); err != nil {
					return nil, err
				}
			}
			items = append(items, v)
		}
	}
	if single && len(items) == 1 {
		return items[0], nil
	}
	if items == nil {
		items = []any{}
	}
	if len(groups) == 1 && groups[0].List {
		return map[string]any{
			"apiVersion": "atoll.dev/v1", "kind": groups[0].Kind + "List",
			"metadata": map[string]any{"resourceVersion": groups[0].ListVersion}, "items": items,
		}, nil
	}
	return map[string]any{"apiVersion": "atoll.dev/v1", "kind": "List", "items": items}, nil
}

// decode reads JSON keeping numbers as written (3, not 3e+00).
func decode(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	return v, nil
}

// WriteData writes v as indented JSON or as YAML (format "yaml").
func WriteData(w io.Writer, format string, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	_, err = fmt.Fprintln(w, string(js))
	return err
}

// objectName is kind/name, as -o name prints it.
func objectName(kind string, raw json.RawMessage) string {
	var o struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &o)
	return strings.ToLower(kind) + "/" + o.Metadata.Name
}

func (p *Printer) customHeader() []string {
	h := make([]string, len(p.columns))
	for i, c := range p.columns {
		h[i] = c.header
	}
	return h
}

// customRow evaluates each column's path; several results are joined with
// commas and none is <none>, as kubectl does.
func (p *Printer) customRow(raw json.RawMessage) ([]string, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	cells := make([]string, len(p.columns))
	for i, c := range p.columns {
		results, err := c.path.FindResults(v)
		if err != nil {
			return nil, fmt.Errorf("custom-columns %s: %w", c.header, err)
		}
		var vals []string
		for _, rs := range results {
			for _, r := range rs {
				vals = append(vals, text(r))
			}
		}
		cells[i] = "<none>"
		if len(vals) > 0 {
			cells[i] = strings.Join(vals, ",")
		}
	}
	return cells, nil
}

// text renders a JSONPath result: strings and numbers as themselves,
// objects and arrays as compact JSON.
func text(v reflect.Value) string {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "<none>"
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		js, _ := json.Marshal(v.Interface())
		return string(js)
	}
	return fmt.Sprint(v.Interface())
}

// sort orders a group's items by --sort-by, or by the kind's own order.
func (p *Printer) sort(g *Group) error {
	if p.sortBy == nil {
		if g.Table.Less != nil {
			sort.SliceStable(g.Items, func(i, j int) bool { return g.Table.Less(g.Items[i], g.Items[j]) })
		}
		return nil
	}
	keys := make([]any, len(g.Items))
	for i, raw := range g.Items {
		v, err := decode(raw)
		if err != nil {
			return err
		}
		results, err := p.sortBy.FindResults(v)
		if err != nil {
			return fmt.Errorf("--sort-by: %w", err)
		}
		if len(results) > 0 && len(results[0]) > 0 {
			r := results[0][0]
			for r.Kind() == reflect.Interface && !r.IsNil() {
				r = r.Elem()
			}
			if r.IsValid() && r.CanInterface() {
				keys[i] = r.Interface()
			}
		}
	}
	idx := make([]int, len(g.Items))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return less(keys[idx[a]], keys[idx[b]]) })
	items := make([]json.RawMessage, len(idx))
	for i, j := range idx {
		items[i] = g.Items[j]
	}
	g.Items = items
	return nil
}

// less orders sort keys: missing first, then numbers by value, then
// everything else by its text.
func less(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b != nil
	}
	na, aNum := number(a)
	nb, bNum := number(b)
	switch {
	case aNum && bNum:
		return na < nb
	case aNum != bNum:
		return aNum
	}
	return fmt.Sprint(a) < fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// Duration renders d kubectl's way, as ages are shown: 45s, 12m, 3h, 2d
// (a negative one as 0s).
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
