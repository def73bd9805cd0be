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
// booleans, a classic surprise). A second document is refused before it is
// converted.
func YAMLToJSON(data []byte) ([]byte, error) {
	docs, err := yamlDocuments(data, 1)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return []byte("null"), nil
	}
	return docs[0], nil
}

// YAMLDocuments converts a stream of YAML documents (separated by "---")
// to JSON, one per document; empty documents are skipped.
//
// Aliases are bounded: resolved, they may at most double what was written
// (see ErrAliasExpansion), so a few kilobytes cannot become gigabytes.
func YAMLDocuments(data []byte) ([][]byte, error) {
	return yamlDocuments(data, -1)
}

// ErrAliasExpansion refuses a YAML stream whose aliases, resolved, would
// make it more than twice its written size plus aliasAllowance (the
// "billion laughs": a few kilobytes of nested aliases, or one long string
// aliased a thousand times, expanding to gigabytes). Size counts each
// node as nodeSize bytes plus the bytes of its scalar.
var ErrAliasExpansion = errors.New("its aliases expand it to more than twice its written size: write the repeated parts out")

const (
	// nodeSize is what one node costs in the size of a document: about
	// what a decoded node takes in memory, so that many small nodes
	// count as they weigh.
	nodeSize = 64
	// aliasAllowance is the expansion every stream may have beyond
	// doubling, so that small manifests may share a block or two freely.
	aliasAllowance = 64 << 10
)

// yamlDocuments converts up to max non-empty documents (max < 0: all); one
// more is an error.
func yamlDocuments(data []byte, max int) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	budget := int64(aliasAllowance)
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if isEmptyDocument(&n) {
			continue
		}
		if max >= 0 && len(out) == max {
			return nil, errors.New("expected one YAML document, found several")
		}
		// The budget carries over: a stream's aliases, resolved, stay
		// under twice its written size plus the allowance.
		written, expanded, err := documentSizes(&n)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		budget += 2 * written
		if expanded > budget {
			return nil, fmt.Errorf("document %d: %w", i, ErrAliasExpansion)
		}
		budget -= expanded
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

// isEmptyDocument tells a document with no content (or only a null) from
// one with something in it, without resolving anything.
func isEmptyDocument(n *yaml.Node) bool {
	if n.Kind != yaml.DocumentNode {
		return false
	}
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
}

// documentSizes measures a document as written (an alias costs one node)
// and with its aliases resolved, in one walk in document order: an anchor
// comes before its aliases, so each alias finds its anchor's expanded
// size already known and nothing is resolved twice. expanded saturates
// at maxSize. An anchor containing its own alias is an error.
func documentSizes(n *yaml.Node) (written, expanded int64, err error) {
	z := sizer{done: map[*yaml.Node]int64{}, open: map[*yaml.Node]bool{}}
	expanded, err = z.walk(n)
	return z.written, expanded, err
}

// maxSize is where sizes saturate: far above any budget, and two of them
// still add up without overflow.
const maxSize = 1 << 61

type sizer struct {
	written int64
	done    map[*yaml.Node]int64 // expanded size of each anchored node walked
	open    map[*yaml.Node]bool  // anchored nodes being walked
}

func (z *sizer) walk(n *yaml.Node) (int64, error) {
	z.written += nodeSize + int64(len(n.Value))
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nodeSize, nil
		}
		if z.open[n.Alias] {
			return 0, fmt.Errorf("anchor %q contains an alias to itself", n.Value)
		}
		size, ok := z.done[n.Alias]
		if !ok {
			// Not met before (the parser does not make these): measure it
			// apart, without adding it to what was written.
			w := z.written
			var err error
			if size, err = z.walk(n.Alias); err != nil {
				return 0, err
			}
			z.written = w
		}
		return size, nil
	}
	if n.Anchor != "" {
		z.open[n] = true
	}
	size := int64(nodeSize + len(n.Value))
	for _, c := range n.Content {
		cs, err := z.walk(c)
		if err != nil {
			return 0, err
		}
		size = min(size+cs, maxSize)
	}
	if n.Anchor != "" {
		delete(z.open, n)
		z.done[n] = size
	}
	return size, nil
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
