// Package edit is the loop of `atoll edit`: show an object as YAML in the
// user's editor, send what they changed as a merge patch carrying the
// version they edited, and on a conflict or a refusal open the editor again with
// the error as a comment, as kubectl edit does.
//
// It owns the document shown (header comments, status left out), how an
// edit is read back (comments dropped, nothing changed means cancelled)
// and when to give up. It must not choose the editor or start it (its
// caller passes a function that does) nor know the hub's validation
// rules: the hub's answers are the errors shown.
package edit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
)

// ErrCancelled is returned when the user saved no change; kubectl's
// words for it are "Edit cancelled, no changes made.".
var ErrCancelled = errors.New("edit cancelled, no changes made")

// Hub is what the loop needs of the hub.
type Hub interface {
	// Get reads the object as JSON.
	Get(ctx context.Context) (json.RawMessage, error)
	// Patch sends a JSON merge patch and returns the object as stored.
	Patch(ctx context.Context, patch json.RawMessage) (json.RawMessage, error)
}

// Loop runs the edit. open starts the editor on path and returns when it
// exits. dir holds the temporary file. It returns the stored object, or
// ErrCancelled when nothing was changed.
func Loop(ctx context.Context, hub Hub, dir, ref string, open func(path string) error) (json.RawMessage, error) {
	live, err := hub.Get(ctx)
	if err != nil {
		return nil, err
	}
	doc, err := render(live)
	if err != nil {
		return nil, err
	}
	original := doc // what the user must change for an edit to count
	note := writeOnly(live)
	var problem string
	var lastInvalid []byte
	for {
		text := header(ref, problem) + note + doc
		edited, err := roundTrip(dir, text, open)
		if err != nil {
			return nil, err
		}
		body := stripComments(edited)
		if same(body, []byte(original)) {
			return nil, ErrCancelled
		}
		js, err := api.YAMLToJSON(body)
		if err != nil {
			problem = "the file is not valid YAML: " + err.Error()
			if bytes.Equal(body, lastInvalid) {
				return nil, fmt.Errorf("edit abandoned: %s", problem)
			}
			lastInvalid, doc = body, string(body)
			continue
		}
		patch, err := mergePatch(original, js)
		if err != nil {
			return nil, err
		}
		stored, err := hub.Patch(ctx, patch)
		switch {
		case err == nil:
			return stored, nil
		case api.ErrorCode(err) == api.CodeConflict:
			// Someone wrote in between: show the new version, and the
			// error, and let the user edit again.
			problem = "the object changed while you edited it (your edit was not saved): " + oneLine(err) + "\nThis is its new version: make your change again."
			live, err := hub.Get(ctx)
			if err != nil {
				return nil, err
			}
			if doc, err = render(live); err != nil {
				return nil, err
			}
			note = writeOnly(live)
			original, lastInvalid = doc, nil
		case api.ErrorCode(err) == api.CodeInvalid || api.ErrorCode(err) == api.CodeBadRequest:
			problem = oneLine(err)
			if bytes.Equal(body, lastInvalid) {
				return nil, fmt.Errorf("edit abandoned: %s", problem)
			}
			lastInvalid, doc = body, string(body)
		default:
			return nil, err
		}
	}
}

// mergePatch is the merge patch from the document shown to the one saved,
// with the version shown as its precondition: the edit fails with 409
// when the object changed since, and changes only what the user did (a
// patch, not a replace, so kinds served without PUT, clusters, can be
// edited too).
func mergePatch(shown string, edited []byte) (json.RawMessage, error) {
	orig, err := api.YAMLToJSON([]byte(shown))
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.CreateMergePatch(orig, edited)
	if err != nil {
		return nil, fmt.Errorf("the edit is not an object: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	var o struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(orig, &o)
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	if _, changed := meta["resourceVersion"]; !changed {
		meta["resourceVersion"] = o.Metadata.ResourceVersion
	}
	return json.Marshal(m)
}

// render shows an object as YAML, without status (the hub's).
func render(obj json.RawMessage) (string, error) {
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return "", err
	}
	delete(m, "status")
	y, err := yaml.Marshal(m)
	return string(y), err
}

// writeOnly is the comment shown above a Secret: its values are
// write-only (the hub never answers them here), so the document has none;
// it names the keys, and how to set and remove one. "" for other kinds.
func writeOnly(obj json.RawMessage) string {
	var o struct {
		Kind   string         `json:"kind"`
		Status api.DataStatus `json:"status"`
	}
	if json.Unmarshal(obj, &o) != nil || o.Kind != "Secret" {
		return ""
	}
	keys := make([]string, len(o.Status.Keys))
	for i, k := range o.Status.Keys {
		keys[i] = fmt.Sprintf("%s (%d bytes)", k.Name, k.Bytes)
	}
	if len(keys) == 0 {
		keys = []string{"none"}
	}
	return "# A secret's values are write-only: none is shown, and the keys you do not name keep theirs.\n" +
		"# Its keys (version " + fmt.Sprint(o.Status.Version) + "): " + strings.Join(keys, ", ") + ".\n" +
		"# To set a key, add it under spec.data (text) or spec.binaryData (base64); to remove one, give it null.\n" +
		"#\n"
}

func header(ref, problem string) string {
	var b strings.Builder
	b.WriteString("# Edit " + ref + " below; lines starting with '#' are ignored.\n")
	b.WriteString("# Save and quit to apply; save it unchanged (or empty) to cancel.\n")
	b.WriteString("# Status is the hub's and is not shown; metadata.resourceVersion makes the edit fail if the object changed meanwhile.\n")
	if problem != "" {
		b.WriteString("#\n")
		for _, line := range strings.Split(problem, "\n") {
			b.WriteString("# error: " + line + "\n")
		}
	}
	b.WriteString("#\n")
	return b.String()
}

// roundTrip writes text to a new file, runs the editor on it and reads
// it back.
func roundTrip(dir, text string, open func(path string) error) ([]byte, error) {
	f, err := os.CreateTemp(dir, "atoll-edit-*.yaml")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	defer os.Remove(path)
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := open(path); err != nil {
		return nil, fmt.Errorf("the editor failed (%s kept nothing): %w", filepath.Base(path), err)
	}
	return os.ReadFile(path)
}

func stripComments(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("#")) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// same compares two YAML documents by their meaning; an empty one is the
// same as anything (emptying the file cancels).
func same(a, b []byte) bool {
	if len(bytes.TrimSpace(a)) == 0 {
		return true
	}
	var x, y any
	if yaml.Unmarshal(a, &x) != nil || yaml.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func oneLine(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		return p.Error()
	}
	return err.Error()
}
