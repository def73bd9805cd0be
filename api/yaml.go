package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// YAMLToJSON converts one YAML document to JSON. It reads YAML 1.2, so
// `name: y` or `name: no` stay strings (YAML 1.1 readers turn them into
// booleans, a classic surprise).
func YAMLToJSON(data []byte) ([]byte, error) {
	docs, err := YAMLDocuments(data)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return []byte("null"), nil
	case 1:
		return docs[0], nil
	}
	return nil, errors.New("expected one YAML document, found several")
}

// YAMLDocuments converts a stream of YAML documents (separated by "---")
// to JSON, one per document; empty documents are skipped.
func YAMLDocuments(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		plainTimestampsAsStrings(&n)
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if v == nil {
			continue
		}
		v, err = jsonable(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, js)
	}
}

// plainTimestampsAsStrings keeps date-like scalars such as 2024-01-02 as
// the strings they are in YAML 1.2 (the yaml package would turn them into
// times, so that an env value or annotation changed silently). An explicit
// !!timestamp tag still makes a time.
func plainTimestampsAsStrings(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!timestamp" && n.Style&yaml.TaggedStyle == 0 {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		plainTimestampsAsStrings(c)
	}
}

// jsonable turns YAML values JSON cannot hold (maps with non-string keys)
// into ones it can, with string keys. Keys that become the same string
// (1 and 1.0) are an error rather than one of them, picked at random.
func jsonable(v any) (any, error) {
	var err error
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if x[k], err = jsonable(e); err != nil {
				return nil, err
			}
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			if _, dup := m[ks]; dup {
				return nil, fmt.Errorf("mapping key %q appears twice", ks)
			}
			if m[ks], err = jsonable(e); err != nil {
				return nil, err
			}
		}
		return m, nil
	case []any:
		for i, e := range x {
			if x[i], err = jsonable(e); err != nil {
				return nil, err
			}
		}
		return x, nil
	}
	return v, nil
}
