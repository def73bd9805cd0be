package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/atollhq/atoll/api"
)

// maxJSONPatchOps bounds the operations of one JSON patch: each is applied
// to the whole document, and a failed patch is applied again by halves to
// find the operation that failed.
const maxJSONPatchOps = 1000

// jsonPatchOp is one RFC 6902 operation as checked before it is applied.
type jsonPatchOp struct {
	Op    string           `json:"op"`
	Path  *string          `json:"path"`
	From  *string          `json:"from"`
	Value *json.RawMessage `json:"value"`
}

// readJSONPatch checks an RFC 6902 patch: an array of operations, each
// with a known op, a path, and the from or value its op needs, none of
// them touching status (the hub's). Every refusal names the operation's
// field, e.g. body[2].path.
func readJSONPatch(body []byte) (jsonpatch.Patch, error) {
	var ops []json.RawMessage
	if err := json.Unmarshal(body, &ops); err != nil || ops == nil {
		return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, "a JSON patch must be an array of operations")
	}
	if len(ops) > maxJSONPatchOps {
		return nil, bodyProblem(http.StatusUnprocessableEntity, api.CodeInvalid, fmt.Sprintf("a JSON patch has at most %d operations; this one has %d", maxJSONPatchOps, len(ops)))
	}
	var errs []api.ProblemDetail
	bad := func(i int, field, msg string, value any) {
		errs = append(errs, api.ProblemDetail{Location: fmt.Sprintf("body[%d]%s", i, field), Message: msg, Value: value})
	}
	for i, raw := range ops {
		var op jsonPatchOp
		if err := api.DecodeStrict(raw, &op); err != nil {
			bad(i, "", "must be an object with op, path, and from or value: "+err.Error(), nil)
			continue
		}
		switch op.Op {
		case "add", "replace", "test":
			if op.Value == nil {
				bad(i, ".value", "is required by "+op.Op, nil)
			}
		case "move", "copy":
			if op.From == nil {
				bad(i, ".from", "is required by "+op.Op, nil)
			} else if touchesStatus(*op.From) {
				bad(i, ".from", "status is written by the hub, not by clients", *op.From)
			}
		case "remove":
		default:
			bad(i, ".op", "must be add, remove, replace, move, copy or test", op.Op)
			continue
		}
		switch {
		case op.Path == nil:
			bad(i, ".path", "is required", nil)
		case *op.Path != "" && !strings.HasPrefix(*op.Path, "/"):
			bad(i, ".path", "must be a JSON pointer: empty, or starting with /", *op.Path)
		case touchesStatus(*op.Path) && op.Op != "test":
			bad(i, ".path", "status is written by the hub, not by clients", *op.Path)
		}
	}
	if len(errs) > 0 {
		p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "invalid JSON patch")
		p.Errors = errs
		return nil, p
	}
	patch, err := jsonpatch.DecodePatch(body)
	if err != nil {
		return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, err.Error())
	}
	return patch, nil
}

func touchesStatus(path string) bool { return path == "/status" || strings.HasPrefix(path, "/status/") }

// applyJSONPatch applies patch to doc. Copies may not grow the document
// by more than maxBody in all. When an operation fails, the answer names
// it (body[i]): success of a prefix of the patch only ever stops at the
// failing operation, so a binary search over prefixes finds it.
func applyJSONPatch(doc []byte, patch jsonpatch.Patch) ([]byte, error) {
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxBody
	out, err := patch.ApplyWithOptions(doc, opts)
	if err == nil {
		return out, nil
	}
	failed := sort.Search(len(patch), func(n int) bool {
		_, err := patch[:n+1].ApplyWithOptions(doc, opts)
		return err != nil
	})
	// The library formats some errors with a nil cause.
	msg := strings.TrimSuffix(err.Error(), ": %!w(<nil>)")
	var acc *jsonpatch.AccumulatedCopySizeError
	if errors.As(err, &acc) {
		msg = fmt.Sprintf("the copies of this patch grow the object by more than %d bytes", maxBody)
	}
	p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "the JSON patch does not apply")
	loc := "body"
	if failed < len(patch) {
		loc = fmt.Sprintf("body[%d]", failed)
	}
	p.Errors = []api.ProblemDetail{{Location: loc, Message: msg}}
	return nil, p
}
