package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// errTooLarge is an image whose files exceed what the cache may hold.
var errTooLarge = errors.New("the image unpacks to more than the cache may hold")

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpackLayer applies the layer in blob (gzip, zstd or plain tar) onto
// root and returns the bytes of regular files it wrote, at most limit.
func unpackLayer(root, blob string, limit int64) (int64, error) {
	f, err := os.Open(blob)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return 0, err
		}
		defer gz.Close()
		r = gz
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return 0, err
		}
		defer zr.Close()
		r = zr
	}
	return applyTar(root, tar.NewReader(r), limit)
}

// applyTar writes a layer's entries under root, honouring whiteouts: an
// opaque marker empties what lower layers put in its directory (not
// what this layer adds), .wh.<name> removes <name>. Its regular files
// may hold limit bytes in all: a layer of a few kilobytes can decompress
// to terabytes and fill the node's disk.
func applyTar(root string, tr *tar.Reader, limit int64) (int64, error) {
	var written int64
	added := map[string]bool{} // paths this layer created
	opaque := []string{}
	isRoot := os.Geteuid() == 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, err
		}
		rel, err := cleanPath(h.Name)
		if err != nil {
			return written, err
		}
		if rel == "" {
			continue
		}
		dir, base := path.Split(rel)
		dir = strings.TrimSuffix(dir, "/")
		if err := checkParents(root, dir); err != nil {
			return written, err
		}
		if base == whiteoutOpaque {
			opaque = append(opaque, dir)
			continue
		}
		if victim, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
			// ".wh.." would name the parent: under the root, the
			// folder holding every image.
			if victim == "" || victim == "." || victim == ".." {
				return written, fmt.Errorf("whiteout %q: names no file", h.Name)
			}
			if err := os.RemoveAll(filepath.Join(root, dir, victim)); err != nil {
				return written, err
			}
			continue
		}
		target := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return written, err
		}
		// Whatever is there (from a lower layer) is replaced, except a
		// directory by a directory.
		if st, err := os.Lstat(target); err == nil && !(st.IsDir() && h.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return written, err
			}
		}
		mode := os.FileMode(h.Mode & 0o777)
		if h.Mode&0o4000 != 0 {
			mode |= os.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			mode |= os.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return written, err
			}
		case tar.TypeReg, tar.TypeRegA:
			if h.Size > limit-written {
				return written, fmt.Errorf("%s: %w (%d bytes)", rel, errTooLarge, limit)
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return written, err
			}
			n, err := io.Copy(out, io.LimitReader(tr, limit-written))
			written += n
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return written, err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return written, err
			}
		case tar.TypeLink:
			lrel, err := cleanPath(h.Linkname)
			if err != nil || lrel == "" {
				return written, fmt.Errorf("hard link %s to %q: outside the image", rel, h.Linkname)
			}
			if err := checkParents(root, path.Dir(lrel)); err != nil {
				return written, err
			}
			if err := os.Link(filepath.Join(root, lrel), target); err != nil {
				return written, err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			kind := uint32(unix.S_IFIFO)
			switch h.Typeflag {
			case tar.TypeChar:
				kind = unix.S_IFCHR
			case tar.TypeBlock:
				kind = unix.S_IFBLK
			}
			dev := int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))
			if err := unix.Mknod(target, kind|uint32(h.Mode&0o777), dev); err != nil {
				if isRoot || h.Typeflag == tar.TypeFifo {
					return written, fmt.Errorf("mknod %s: %w", rel, err)
				}
				continue // unprivileged: device nodes cannot be made
			}
		default:
			continue // pax headers and the like carry no file
		}
		added[rel] = true
		if isRoot {
			if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
				return written, err
			}
		}
		if h.Typeflag != tar.TypeSymlink && h.Typeflag != tar.TypeLink {
			if err := os.Chmod(target, mode); err != nil {
				return written, err
			}
		}
	}
	for _, dir := range opaque {
		// Checked again: an entry after the marker may have made the
		// folder, or one above it, a link out of the root.
		if err := checkParents(root, dir); err != nil {
			return written, err
		}
		d := filepath.Join(root, dir)
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			rel := path.Join(dir, e.Name())
			if added[rel] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// cleanPath makes a tar name relative to the root and refuses names that
// climb out of it.
func cleanPath(name string) (string, error) {
	p := path.Clean("/" + name)
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: climbs out of the image", name)
		}
	}
	return strings.TrimPrefix(p, "/"), nil
}

// checkParents refuses a write below a symbolic link: a layer must not
// write outside the root through a link an earlier entry made.
func checkParents(root, dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	cur := root
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("entry under %s: a symbolic link; refusing to write through it", dir)
		}
	}
	return nil
}
