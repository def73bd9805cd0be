// Package explain renders `atoll explain KIND[.field.path]` and the verbs
// column of `atoll api-resources` from the hub's OpenAPI document
// (/openapi.json): a field's type, description and whether it is
// required, and the fields below it.
//
// It owns reading the document's schemas and routes and the text
// layout. It must not fetch the document (its caller does) nor hold any
// knowledge of the kinds' fields of its own: the hub's document, made
// from the doc tags of package api, is the one source.
package explain

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Document is the part of an OpenAPI 3.1 document explain reads.
type Document struct {
	Info struct {
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]*Schema `json:"schemas"`
	} `json:"components"`
}

// Schema is a JSON schema as huma writes them.
type Schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"` // a string, or a list with "null"
	Description          string             `json:"description"`
	Properties           map[string]*Schema `json:"properties"`
	Required             []string           `json:"required"`
	Items                *Schema            `json:"items"`
	AdditionalProperties any                `json:"additionalProperties"`
	Enum                 []any              `json:"enum"`
	Format               string             `json:"format"`
	ReadOnly             bool               `json:"readOnly"`
}

// Parse reads an OpenAPI document.
func Parse(data []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("the hub's OpenAPI document: %w", err)
	}
	return &d, nil
}

func (d *Document) resolve(s *Schema) (*Schema, string) {
	name := ""
	for s != nil && s.Ref != "" {
		name = strings.TrimPrefix(s.Ref, "#/components/schemas/")
		next := d.Components.Schemas[name]
		if next == nil {
			break
		}
		// A $ref with siblings (readOnly) keeps the target's meaning.
		s = next
	}
	return s, name
}

// typeName renders a schema's type as explain shows it: string, integer,
// Object, []Object, map[string]string.
func (d *Document) typeName(s *Schema) string {
	if s == nil {
		return "any"
	}
	if s.Ref != "" {
		_, name := d.resolve(s)
		return name
	}
	t := ""
	switch v := s.Type.(type) {
	case string:
		t = v
	case []any:
		for _, x := range v {
			if x != "null" {
				t, _ = x.(string)
			}
		}
	}
	switch t {
	case "array":
		return "[]" + d.typeName(s.Items)
	case "object":
		if ap, ok := s.AdditionalProperties.(map[string]any); ok {
			b, _ := json.Marshal(ap)
			var inner Schema
			_ = json.Unmarshal(b, &inner)
			return "map[string]" + d.typeName(&inner)
		}
		return "object"
	case "":
		return "any"
	}
	return t
}

// Explain renders the kind's schema (name as in components, e.g.
// Workload), or the field at path (e.g. spec.template.command) within it.
func (d *Document) Explain(kind, group string, path []string) (string, error) {
	s := d.Components.Schemas[kind]
	if s == nil {
		return "", fmt.Errorf("the hub's OpenAPI document has no schema for %s", kind)
	}
	var field *Schema
	required := false
	walked := []string{}
	for _, p := range path {
		cur, _ := d.resolve(s)
		for cur != nil && cur.Items != nil { // a list's fields are its items'
			cur, _ = d.resolve(cur.Items)
		}
		if cur == nil || cur.Properties[p] == nil {
			return "", fmt.Errorf("field %q does not exist in %s%s", p, kind, dotted(walked))
		}
		field, required = cur.Properties[p], slices.Contains(cur.Required, p)
		s = field
		walked = append(walked, p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "KIND:     %s\nVERSION:  %s\n\n", kind, group)
	if field != nil {
		req := ""
		if required {
			req = " -required-"
		}
		fmt.Fprintf(&b, "FIELD:    %s <%s>%s\n\n", path[len(path)-1], d.typeName(field), req)
	}
	target, _ := d.resolve(s)
	desc := s.Description
	if desc == "" && target != nil {
		desc = target.Description
	}
	b.WriteString("DESCRIPTION:\n")
	if desc == "" {
		desc = "<empty>"
	}
	writeIndented(&b, desc, "     ")
	if target != nil && len(target.Enum) > 0 {
		var vals []string
		for _, v := range target.Enum {
			vals = append(vals, fmt.Sprint(v))
		}
		fmt.Fprintf(&b, "     One of: %s.\n", strings.Join(vals, ", "))
	}
	for target != nil && target.Items != nil {
		target, _ = d.resolve(target.Items)
	}
	if target == nil || len(target.Properties) == 0 {
		return b.String(), nil
	}
	b.WriteString("\nFIELDS:\n")
	names := make([]string, 0, len(target.Properties))
	for n := range target.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := target.Properties[n]
		mark := ""
		if slices.Contains(target.Required, n) {
			mark = " -required-"
		}
		if f.ReadOnly {
			mark += " -read-only-"
		}
		fmt.Fprintf(&b, "   %s\t<%s>%s\n", n, d.typeName(f), mark)
		fd := f.Description
		if fd == "" {
			if r, _ := d.resolve(f); r != nil {
				fd = r.Description
			}
		}
		if fd != "" {
			writeIndented(&b, fd, "     ")
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n", nil
}

func dotted(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return "." + strings.Join(path, ".")
}

func writeIndented(b *strings.Builder, text, indent string) {
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		b.WriteString(indent + line + "\n")
	}
}

// Verbs lists the verbs the document serves for a kind's plural, in
// kubectl's order: create, delete, get, list, patch, update, watch.
func (d *Document) Verbs(plural string) []string {
	base := "/api/v1/" + plural
	has := func(path, method string) bool {
		_, ok := d.Paths[path][method]
		return ok
	}
	var verbs []string
	for _, v := range []struct {
		verb, path, method string
	}{
		{"create", base, "post"},
		{"delete", base + "/{name}", "delete"},
		{"get", base + "/{name}", "get"},
		{"list", base, "get"},
		{"patch", base + "/{name}", "patch"},
		{"update", base + "/{name}", "put"},
		{"watch", "/api/v1/watch/" + plural, "get"},
	} {
		if has(v.path, v.method) {
			verbs = append(verbs, v.verb)
		}
	}
	return verbs
}
