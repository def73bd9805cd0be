package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Kind describes one resource kind: its name, its URL path segment and how
// to make an empty object of it.
type Kind struct {
	Name     string // Workload
	Plural   string // workloads
	Short    []string
	New      func() Object
	ReadRole string // role needed to read
	// Inline kinds keep their fields at the top level of the object (as
	// Event does) instead of under spec; stores keep them as the spec
	// document all the same.
	Inline bool
	// Settable kinds may be created with apply.
	Settable bool
}

// Kinds lists every kind the API serves.
var Kinds = []Kind{
	{Name: "Workload", Plural: "workloads", Short: []string{"workload", "wl"}, New: func() Object { return &Workload{} }, ReadRole: RoleViewer, Settable: true},
	{Name: "Token", Plural: "tokens", Short: []string{"token"}, New: func() Object { return &Token{} }, ReadRole: RoleAdmin, Settable: true},
	{Name: "Cluster", Plural: "clusters", Short: []string{"cluster", "cl"}, New: func() Object { return &Cluster{} }, ReadRole: RoleViewer},
	{Name: "Event", Plural: "events", Short: []string{"event", "ev"}, New: func() Object { return &Event{} }, ReadRole: RoleViewer, Inline: true},
	{Name: "Drill", Plural: "drills", Short: []string{"drill"}, New: func() Object { return &Drill{} }, ReadRole: RoleViewer, Settable: true},
	{Name: "Service", Plural: "services", Short: []string{"service", "svc"}, New: func() Object { return &Service{} }, ReadRole: RoleViewer, Settable: true},
	{Name: "Config", Plural: "configs", Short: []string{"config", "cfg"}, New: func() Object { return &Config{} }, ReadRole: RoleViewer, Settable: true},
	{Name: "Secret", Plural: "secrets", Short: []string{"secret"}, New: func() Object { return &Secret{} }, ReadRole: RoleViewer, Settable: true},
}

// LookupKind finds a kind by its name, plural or a short name,
// case-insensitively ("workloads", "Workload", "wl").
func LookupKind(name string) (Kind, bool) {
	n := strings.ToLower(name)
	for _, k := range Kinds {
		if n == strings.ToLower(k.Name) || n == k.Plural {
			return k, true
		}
		for _, s := range k.Short {
			if n == s {
				return k, true
			}
		}
	}
	return Kind{}, false
}

// Manifest is one object read from a file, with where it came from.
type Manifest struct {
	Kind   Kind
	Object Object
	Source string // "file.yaml#2"
}

// DecodeManifests reads a stream of YAML documents (separated by "---") or
// JSON objects, each with apiVersion and kind, and returns them typed.
// Unknown kinds and unknown fields are errors that name the document and
// the field; nothing is returned when any document is bad.
func DecodeManifests(source string, data []byte) ([]Manifest, error) {
	docs, err := YAMLDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML or JSON: %w", source, err)
	}
	var out []Manifest
	for i, js := range docs {
		where := fmt.Sprintf("%s#%d", source, i+1)
		var tm TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("%s: expected an object with apiVersion and kind: %w", where, err)
		}
		if tm.APIVersion != Group {
			return nil, fmt.Errorf("%s: apiVersion must be %s, got %q", where, Group, tm.APIVersion)
		}
		kind, ok := LookupKind(tm.Kind)
		if !ok || kind.Name != tm.Kind {
			return nil, fmt.Errorf("%s: unknown kind %q", where, tm.Kind)
		}
		if !kind.Settable {
			return nil, fmt.Errorf("%s: %s objects are not applied from manifests (clusters register themselves; events are written by the hub)", where, kind.Name)
		}
		obj := kind.New()
		if err := DecodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if fe := obj.Validate(); fe != nil {
			return nil, fmt.Errorf("%s (%s %s): %w", where, kind.Name, obj.GetMetadata().Name, fe)
		}
		out = append(out, Manifest{Kind: kind, Object: obj, Source: where})
	}
	return out, nil
}

// DecodeStrict decodes JSON into v, rejecting unknown fields and trailing
// data.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the object")
	}
	return nil
}
