package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/atollhq/atoll/api"
)

// writeFiles lays out rep's configs and secrets under filesDir/<replica>
// afresh before each start and returns that folder ("" without files):
// folders 0700, a secret's files 0400, a config's 0444, all owned by the
// agent's user, which is the replica's. Names are checked again here: a
// key or folder that would leave the replica's folder is refused.
func (r *Runtime) writeFiles(rep *replica) (string, error) {
	d := rep.spec.Data
	if d == nil || len(d.Files) == 0 {
		return "", nil
	}
	root := filepath.Join(r.filesDir, rep.fs)
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	for _, f := range d.Files {
		if !api.IsFilesDir(f.Dir) {
			return "", fmt.Errorf("folder %q is not a relative path of plain names", f.Dir)
		}
		dir := filepath.Join(root, filepath.FromSlash(f.Dir))
		if !strings.HasPrefix(dir, root+string(filepath.Separator)) {
			return "", fmt.Errorf("folder %q leaves the replica's folder", f.Dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		mode := os.FileMode(0o444)
		if f.Secret {
			mode = 0o400
		}
		for k, v := range f.Values {
			if !api.IsDataKey(k) {
				return "", fmt.Errorf("key %q is not a file name", k)
			}
			if err := writeNew(filepath.Join(dir, k), v, mode); err != nil {
				return "", err
			}
		}
	}
	return root, nil
}

// writeNew creates path with mode (never following a link or reusing a
// file) and writes data.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Chmod(mode), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// chownTree gives a container's user the replica's files directory (a
// container does not run as the agent's user): what writeFiles made,
// modes unchanged, so that user alone on the node reads it (the files
// directory above is the agent's, 0700). Links are not followed.
func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// removeFiles removes a forgotten replica's files.
func (r *Runtime) removeFiles(id string) {
	_ = os.RemoveAll(filepath.Join(r.filesDir, fsName(id)))
}
