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
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if v == nil {
			continue
		}
		js, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, js)
	}
}

// jsonable turns YAML values JSON cannot hold (maps with non-string keys)
// into ones it can, with string keys.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}
