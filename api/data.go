package api

import (
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Limits of a Config's or a Secret's data.
const (
	// MaxDataBytes is the most a Config or a Secret holds: the sum of its
	// keys' names and values (binary values counted decoded).
	MaxDataBytes = 256 << 10
	// MaxDataKeys is the most keys a Config or a Secret holds.
	MaxDataKeys = 256
	// maxDataKeyLen is the longest key: a file name on every system.
	maxDataKeyLen = 253
)

// Config is key/value data for workloads, kept in clear: settings, not
// secrets. Its version (status.version) is its generation.
type Config struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     DataSpec   `json:"spec"`
	Status   DataStatus `json:"status,omitzero" readOnly:"true"`
}

// ConfigList is a page of configs.
type ConfigList struct {
	TypeMeta
	Metadata ListMeta `json:"metadata"`
	Items    []Config `json:"items"`
}

// Secret is key/value data the hub keeps encrypted (envelope encryption:
// a data key of its own, wrapped by a key-encryption key kept outside the
// database). Its values are write-only: reads, lists and watches answer
// with status.keys (names and sizes) and status.version alone; an admin
// asks for the values explicitly (GET /api/v1/secrets/{name}/data).
type Secret struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     DataSpec   `json:"spec"`
	Status   DataStatus `json:"status,omitzero" readOnly:"true"`
}

// SecretList is a page of secrets (never with their values).
type SecretList struct {
	TypeMeta
	Metadata ListMeta `json:"metadata"`
	Items    []Secret `json:"items"`
}

// DataSpec is the data of a Config or a Secret. Every key is in data or
// binaryData, not both.
type DataSpec struct {
	Data       map[string]string `json:"data,omitempty" doc:"Key to UTF-8 text. Keys are file names: letters, digits, '-', '_' and '.' (not '.' or '..'). For a Secret, written but never read back but by GET /api/v1/secrets/{name}/data (admin)."`
	BinaryData map[string]string `json:"binaryData,omitempty" doc:"Key to base64 (standard alphabet, padded) of any bytes."`
	// Residency keeps the data in the clusters whose labels match.
	Residency *LabelSelector `json:"residency,omitempty" doc:"Data residency: only clusters whose labels match may hold this (e.g. matchLabels: {region: eu}). A workload that could run elsewhere is refused at apply; placement never puts a workload that uses it elsewhere; the hub never sends it elsewhere."`
}

// Resident reports whether a cluster with these labels may hold data
// restricted by residency (nil: any).
func Resident(residency *LabelSelector, clusterLabels map[string]string) bool {
	return residency == nil || residency.Selector().Matches(clusterLabels)
}

// Restrict returns a copy of p (nil: none) whose cluster selector also
// requires sel: the clusters both admit.
func Restrict(p *PlacementPolicy, sel *LabelSelector) *PlacementPolicy {
	var out PlacementPolicy
	if p != nil {
		out = *p
	}
	cs := &LabelSelector{}
	if out.ClusterSelector != nil {
		cs.MatchLabels = maps.Clone(out.ClusterSelector.MatchLabels)
		cs.MatchExpressions = slices.Clone(out.ClusterSelector.MatchExpressions)
	}
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		cs.MatchExpressions = append(cs.MatchExpressions, Requirement{Key: k, Operator: "In", Values: []string{sel.MatchLabels[k]}})
	}
	cs.MatchExpressions = append(cs.MatchExpressions, sel.MatchExpressions...)
	out.ClusterSelector = cs
	return &out
}

// DataStatus describes data without showing it.
type DataStatus struct {
	Keys    []DataKey `json:"keys,omitempty" doc:"The keys, sorted, with their sizes."`
	Version int64     `json:"version,omitempty" doc:"Bumped each time the data changes (never by a key-encryption key rotation)."`
}

// DataKey is one key of a Config or a Secret.
type DataKey struct {
	Name   string `json:"name"`
	Bytes  int    `json:"bytes" doc:"The value's size (decoded, for binary values)."`
	Binary bool   `json:"binary,omitempty" doc:"Whether the key is in binaryData."`
}

// GetTypeMeta implements Object.
func (c *Config) GetTypeMeta() *TypeMeta { return &c.TypeMeta }

// GetMetadata implements Object.
func (c *Config) GetMetadata() *ObjectMeta { return &c.Metadata }

// Validate implements Object.
func (c *Config) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, c.TypeMeta, "Config")
	validateMeta(&e, &c.Metadata)
	validateData(&e, "spec", c.Spec)
	return e.result()
}

// GetTypeMeta implements Object.
func (s *Secret) GetTypeMeta() *TypeMeta { return &s.TypeMeta }

// GetMetadata implements Object.
func (s *Secret) GetMetadata() *ObjectMeta { return &s.Metadata }

// Validate implements Object. Its messages never quote a value.
func (s *Secret) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, s.TypeMeta, "Secret")
	validateMeta(&e, &s.Metadata)
	validateData(&e, "spec", s.Spec)
	return e.result()
}

var dataKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// IsDataKey reports whether k may name a key of a Config or a Secret (and
// so a file in the folder a replica reads them from).
func IsDataKey(k string) bool {
	return k != "" && len(k) <= maxDataKeyLen && k != "." && k != ".." && dataKey.MatchString(k)
}

// validateData checks keys, text and base64, and the limits. Keys are
// quoted (they are names); values never are.
func validateData(e *errs, path string, d DataSpec) {
	size, n := 0, 0
	check := func(field string, m map[string]string, binary bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			n++
			at := fmt.Sprintf("%s.%s[%s]", path, field, k)
			if !IsDataKey(k) {
				e.addValue(at, k, "a key must be 1 to %d letters, digits, '-', '_' or '.' (and not '.' or '..'): it names a file", maxDataKeyLen)
			}
			v := m[k]
			if binary {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					e.add(at, "is not base64 (standard alphabet, padded)")
				}
				size += len(k) + len(b)
			} else {
				if !isText(v) {
					e.add(at, "is not UTF-8 text without NUL (put bytes in binaryData, as base64)")
				}
				size += len(k) + len(v)
			}
			if field == "binaryData" {
				if _, dup := d.Data[k]; dup {
					e.addValue(at, k, "is also in data: a key is in data or binaryData, not both")
				}
			}
		}
	}
	check("data", d.Data, false)
	check("binaryData", d.BinaryData, true)
	if n > MaxDataKeys {
		e.add(path, "has %d keys, more than the %d allowed", n, MaxDataKeys)
	}
	if size > MaxDataBytes {
		e.add(path, "holds %d bytes, more than the %d allowed (keys and values, binary values decoded)", size, MaxDataBytes)
	}
	if d.Residency != nil {
		validateSelector(e, path+".residency", d.Residency)
		if len(d.Residency.MatchLabels) == 0 && len(d.Residency.MatchExpressions) == 0 {
			e.add(path+".residency", "selects every cluster: give matchLabels or matchExpressions, or leave residency out")
		}
	}
}

func isText(s string) bool {
	return strings.ToValidUTF8(s, "") == s && !strings.ContainsRune(s, 0)
}

// Describe lists d's keys with their sizes, sorted by name.
func (d DataSpec) Describe() []DataKey {
	var out []DataKey
	for k, v := range d.Data {
		out = append(out, DataKey{Name: k, Bytes: len(v)})
	}
	for k, v := range d.BinaryData {
		n := base64.StdEncoding.DecodedLen(len(v))
		if b, err := base64.StdEncoding.DecodeString(v); err == nil {
			n = len(b)
		}
		out = append(out, DataKey{Name: k, Bytes: n, Binary: true})
	}
	slices.SortFunc(out, func(a, b DataKey) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Bytes returns the value of every key, binary ones decoded. Call it on
// valid data only.
func (d DataSpec) Bytes() map[string][]byte {
	out := make(map[string][]byte, len(d.Data)+len(d.BinaryData))
	for k, v := range d.Data {
		out[k] = []byte(v)
	}
	for k, v := range d.BinaryData {
		b, _ := base64.StdEncoding.DecodeString(v)
		out[k] = b
	}
	return out
}

// EnvSource is where an environment variable's value comes from: exactly
// one of a Config's key or a Secret's key.
type EnvSource struct {
	Config *KeyRef `json:"config,omitempty" doc:"A key of a Config."`
	Secret *KeyRef `json:"secret,omitempty" doc:"A key of a Secret."`
}

// KeyRef names one key of a Config or a Secret.
type KeyRef struct {
	Name string `json:"name" doc:"The Config's or Secret's name."`
	Key  string `json:"key" doc:"The key."`
}

// FileSource is a whole Config or Secret given to the replica as files:
// one file per key in the folder dir under $ATOLL_FILES (0400 for a
// secret's, 0444 for a config's, owned by the replica's user).
type FileSource struct {
	Config string `json:"config,omitempty" doc:"A Config's name (or secret)."`
	Secret string `json:"secret,omitempty" doc:"A Secret's name (or config)."`
	Dir    string `json:"dir" doc:"The folder under $ATOLL_FILES, a relative path without '..' (e.g. db or tls/server)."`
}

// DataRef is one reference of a template to a Config or a Secret.
type DataRef struct {
	Kind  string // Config or Secret
	Name  string
	Key   string // "" for a whole object (files)
	Field string // the field path of the reference, for errors
}

// DataRefs lists the template's references to Configs and Secrets, in
// field order (path prefixes the field paths, e.g. spec.template).
func (t *ReplicaTemplate) DataRefs(path string) []DataRef {
	var out []DataRef
	for i, v := range t.Env {
		if v.ValueFrom == nil {
			continue
		}
		at := fmt.Sprintf("%s.env[%d].valueFrom", path, i)
		if r := v.ValueFrom.Config; r != nil {
			out = append(out, DataRef{Kind: "Config", Name: r.Name, Key: r.Key, Field: at + ".config"})
		}
		if r := v.ValueFrom.Secret; r != nil {
			out = append(out, DataRef{Kind: "Secret", Name: r.Name, Key: r.Key, Field: at + ".secret"})
		}
	}
	if r := t.ImagePullSecret; r != nil {
		out = append(out, DataRef{Kind: "Secret", Name: r.Name, Key: r.Key, Field: path + ".imagePullSecret"})
	}
	for i, f := range t.Files {
		at := fmt.Sprintf("%s.files[%d]", path, i)
		if f.Config != "" {
			out = append(out, DataRef{Kind: "Config", Name: f.Config, Field: at + ".config"})
		}
		if f.Secret != "" {
			out = append(out, DataRef{Kind: "Secret", Name: f.Secret, Field: at + ".secret"})
		}
	}
	return out
}

// validateDataRefs checks the shape of a template's references (that the
// objects and keys exist is the hub's check at apply).
func validateDataRefs(e *errs, path string, t *ReplicaTemplate) {
	for i, v := range t.Env {
		if v.ValueFrom == nil {
			continue
		}
		at := fmt.Sprintf("%s.env[%d]", path, i)
		src := v.ValueFrom
		if v.Value != "" {
			e.add(at+".value", "must be empty when valueFrom is set")
		}
		if (src.Config == nil) == (src.Secret == nil) {
			e.add(at+".valueFrom", "set exactly one of config and secret")
			continue
		}
		ref, field := src.Config, "config"
		if ref == nil {
			ref, field = src.Secret, "secret"
		}
		if !isDNSLabel(ref.Name) {
			e.addValue(at+".valueFrom."+field+".name", ref.Name, "must name a %s (a DNS-1123 label)", field)
		}
		if !IsDataKey(ref.Key) {
			e.addValue(at+".valueFrom."+field+".key", ref.Key, "must be a key (letters, digits, '-', '_' or '.')")
		}
	}
	if r := t.ImagePullSecret; r != nil {
		if !isDNSLabel(r.Name) {
			e.addValue(path+".imagePullSecret.name", r.Name, "must name a secret (a DNS-1123 label)")
		}
		if !IsDataKey(r.Key) {
			e.addValue(path+".imagePullSecret.key", r.Key, "must be a key (letters, digits, '-', '_' or '.')")
		}
	}
	dirs := map[string]int{}
	for i, f := range t.Files {
		at := fmt.Sprintf("%s.files[%d]", path, i)
		if (f.Config == "") == (f.Secret == "") {
			e.add(at, "set exactly one of config and secret")
		}
		for field, name := range map[string]string{"config": f.Config, "secret": f.Secret} {
			if name != "" && !isDNSLabel(name) {
				e.addValue(at+"."+field, name, "must name a %s (a DNS-1123 label)", field)
			}
		}
		if !IsFilesDir(f.Dir) {
			e.addValue(at+".dir", f.Dir, "must be a relative folder path: names of letters, digits, '-', '_' or '.' separated by '/', without '.' or '..'")
		} else if j, dup := dirs[f.Dir]; dup {
			e.addValue(at+".dir", f.Dir, "is also files[%d]'s folder", j)
		}
		dirs[f.Dir] = i
	}
}

// IsFilesDir reports whether dir may be a files folder: a relative,
// clean path of data-key names.
func IsFilesDir(dir string) bool {
	if dir == "" || len(dir) > 253 {
		return false
	}
	for _, part := range strings.Split(dir, "/") {
		if !IsDataKey(part) {
			return false
		}
	}
	return true
}

// AnnotationData, in a workload's template, pins the versions of the
// Configs and Secrets its replicas are given ("Config/app=12,
// Secret/db=40", each the resourceVersion of the write that set the
// values): the hub sets it on every write of the workload and writes it
// again when a referenced config or secret gets new values, so new values
// are a new template, a new revision, and roll as any template change
// does (wave by wave under spec.rollout; a rollback returns to the old
// values). A member resolves env and files at the pinned versions; one
// given a template without it (an older hub) pins what it holds. Users do
// not set it: the hub overwrites it.
const AnnotationData = "atoll.dev/data"

// ParseDataPins reads an AnnotationData value: DataID ("Secret/db") ->
// version. Malformed parts are left out.
func ParseDataPins(s string) map[string]int64 {
	if s == "" {
		return nil
	}
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		id, v, ok := strings.Cut(part, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if ok && err == nil && strings.Contains(id, "/") {
			out[id] = n
		}
	}
	return out
}

// FormatDataPins writes an AnnotationData value, its parts sorted.
func FormatDataPins(pins map[string]int64) string {
	parts := make([]string, 0, len(pins))
	for id, v := range pins {
		parts = append(parts, id+"="+strconv.FormatInt(v, 10))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
