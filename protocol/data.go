package protocol

import (
	"fmt"
	"sort"
	"strings"

	"github.com/atollhq/atoll/api"
)

// DataSubject is where the hub sends a member a Config's or a Secret's
// values (a DataPut) or takes them back (Deleted), and asks what it
// holds (a DataList); the member answers each with a DataHeld. The hub
// sends a member only what its workloads reference, and only over the
// member's own subjects (its NATS account cannot read another's).
func DataSubject(cluster string) string { return hubPrefix + cluster + ".data" }

// Data item kinds.
const (
	DataConfig = "Config"
	DataSecret = "Secret"
)

// DataID names a Config or a Secret in a member's store: "Secret/db".
func DataID(kind, name string) string { return kind + "/" + name }

// DataRequest is one message on DataSubject: Put stores (or replaces) an
// item, Delete removes one, and an empty request only asks what the
// member holds.
type DataRequest struct {
	Version int       `json:"v"`
	Put     *DataItem `json:"put,omitempty"`
	Delete  string    `json:"delete,omitempty"` // a DataID
	// DeleteVersion, with Delete, removes that version alone (0: every
	// version of the item).
	DeleteVersion int64 `json:"deleteVersion,omitempty"`
}

// DataItem is a Config's or a Secret's values at one version.
type DataItem struct {
	Kind    string            `json:"kind"`
	Name    string            `json:"name"`
	Version int64             `json:"version"`
	Values  map[string][]byte `json:"values"`
}

// ID is the item's DataID.
func (d DataItem) ID() string { return DataID(d.Kind, d.Name) }

// Validate checks an item before a member stores it.
func (d DataItem) Validate() error {
	if d.Kind != DataConfig && d.Kind != DataSecret {
		return fmt.Errorf("data item kind %q is not Config or Secret", d.Kind)
	}
	if !api.IsDNSLabel(d.Name) {
		return fmt.Errorf("data item name %q is not a DNS label", d.Name)
	}
	for k := range d.Values {
		if !api.IsDataKey(k) {
			return fmt.Errorf("data item %s: key %q is not a file name", d.ID(), k)
		}
	}
	return nil
}

// DataHeld answers a DataRequest: what the member holds once it is done,
// DataID -> newest version, and every version it holds (Versions, sorted;
// nil from a member that keeps one per item), or why it could not.
type DataHeld struct {
	Version  int                `json:"v"`
	Held     map[string]int64   `json:"held"`
	Versions map[string][]int64 `json:"versions,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// Pins are the versions a template pins (api.AnnotationData), DataID ->
// version; nil when it pins none.
func Pins(t api.ReplicaTemplate) map[string]int64 {
	return api.ParseDataPins(t.Annotations[api.AnnotationData])
}

// BindingData is what a node needs of Configs and Secrets to run one
// replica: the values of its env references (by variable name) and its
// files (by folder), filled in by the member when it answers the node's
// bindings request, never stored with the binding. Missing names what the
// member could not find (the replica then does not start, saying so).
type BindingData struct {
	Env   map[string]string `json:"env,omitempty"`
	Files []BindingFiles    `json:"files,omitempty"`
	// RegistryAuth is the template's imagePullSecret key: a docker
	// config.json the node pulls the replica's image with.
	RegistryAuth []byte   `json:"registryAuth,omitempty"`
	Missing      []string `json:"missing,omitempty"`
}

// BindingFiles is one folder of files: a Config's or a Secret's keys.
type BindingFiles struct {
	Dir    string            `json:"dir"`
	Secret bool              `json:"secret,omitempty"`
	Values map[string][]byte `json:"values"`
}

// ResolveData fills a template's references from items (DataID ->
// version -> item) as a node needs them, each at the version the template
// pins (api.AnnotationData; the newest held when it pins none); nil when
// the template has none.
func ResolveData(t api.ReplicaTemplate, held map[string]map[int64]DataItem) *BindingData {
	if len(t.Files) == 0 && !hasValueFrom(t) && t.ImagePullSecret == nil {
		return nil
	}
	pins := Pins(t)
	items := map[string]DataItem{}
	var unheld []string // pinned versions not held (yet)
	for id, versions := range held {
		if v, ok := pins[id]; ok {
			if it, ok := versions[v]; ok {
				items[id] = it
			}
			continue
		}
		var newest int64 = -1
		for v, it := range versions {
			if v > newest {
				newest, items[id] = v, it
			}
		}
	}
	for id, v := range pins {
		if _, ok := items[id]; !ok {
			if _, any := held[id]; any {
				unheld = append(unheld, fmt.Sprintf("%s version %d", id, v))
			}
		}
	}
	out := &BindingData{}
	if len(unheld) > 0 {
		sort.Strings(unheld)
		// The values it pins have not reached the cluster yet (or were
		// taken back): the replica waits for them, naming them.
		for _, u := range unheld {
			out.Missing = append(out.Missing, u+" is not in this cluster yet")
		}
		return out
	}
	if ref := t.ImagePullSecret; ref != nil {
		item, ok := items[DataID(DataSecret, ref.Name)]
		v, has := item.Values[ref.Key]
		switch {
		case !ok:
			out.Missing = append(out.Missing, fmt.Sprintf("imagePullSecret: secret %q is not in this cluster", ref.Name))
		case !has:
			out.Missing = append(out.Missing, fmt.Sprintf("imagePullSecret: secret %q has no key %q", ref.Name, ref.Key))
		default:
			out.RegistryAuth = v
		}
	}
	for _, e := range t.Env {
		if e.ValueFrom == nil {
			continue
		}
		kind, ref := DataConfig, e.ValueFrom.Config
		if ref == nil {
			kind, ref = DataSecret, e.ValueFrom.Secret
		}
		if ref == nil {
			continue
		}
		item, ok := items[DataID(kind, ref.Name)]
		v, has := item.Values[ref.Key]
		switch {
		case !ok:
			out.Missing = append(out.Missing, fmt.Sprintf("env %s: %s %q is not in this cluster", e.Name, strings.ToLower(kind), ref.Name))
		case !has:
			out.Missing = append(out.Missing, fmt.Sprintf("env %s: %s %q has no key %q", e.Name, strings.ToLower(kind), ref.Name, ref.Key))
		default:
			if out.Env == nil {
				out.Env = map[string]string{}
			}
			out.Env[e.Name] = string(v)
		}
	}
	for _, f := range t.Files {
		kind, name := DataConfig, f.Config
		if name == "" {
			kind, name = DataSecret, f.Secret
		}
		item, ok := items[DataID(kind, name)]
		if !ok {
			out.Missing = append(out.Missing, fmt.Sprintf("files %s: %s %q is not in this cluster", f.Dir, strings.ToLower(kind), name))
			continue
		}
		out.Files = append(out.Files, BindingFiles{Dir: f.Dir, Secret: kind == DataSecret, Values: item.Values})
	}
	return out
}

func hasValueFrom(t api.ReplicaTemplate) bool {
	for _, e := range t.Env {
		if e.ValueFrom != nil {
			return true
		}
	}
	return false
}
