package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ExecutableImage builds a one-layer image holding the executable at
// exe as /app/<name>, with the interpreter and shared libraries it needs
// at their host paths when it is dynamically linked (a static binary is
// alone), an /etc/passwd naming root and nobody, and cfg as its config
// (Entrypoint defaults to the executable). It is how atoll dev and the
// tests package the project's own binary; nodes never build images.
func ExecutableImage(exe, name string, cfg v1.Config) (v1.Image, error) {
	files := map[string]string{"/app/" + name: exe}
	libs, err := sharedLibraries(exe)
	if err != nil {
		return nil, fmt.Errorf("build image of %s: %w", exe, err)
	}
	for _, l := range libs {
		files[l] = l
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string) error {
		var chain []string
		for ; d != "/" && d != "." && !dirs[d]; d = filepath.Dir(d) {
			chain = append(chain, d)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			dirs[chain[i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(chain[i], "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	add := func(dst string, body []byte, mode int64) error {
		if err := addDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dst, "/"), Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body))}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := add("/etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"), 0o644); err != nil {
		return nil, err
	}
	if err := add("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644); err != nil {
		return nil, err
	}
	for dst, src := range files {
		body, err := os.ReadFile(src) // follows symlinks: the library's real content
		if err != nil {
			return nil, fmt.Errorf("build image of %s: %w", exe, err)
		}
		if err := add(dst, body, 0o755); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Uncompressed: the image travels over loopback in dev and tests,
	// where compressing 20-100 MB costs more CPU than it saves.
	layer := static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{"/app/" + name}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS, cf.Architecture = "linux", goarch()
	return mutate.ConfigFile(img, cf)
}

// sharedLibraries lists the ELF interpreter and the shared libraries
// (transitively) an executable needs, as host paths; none for a static
// binary.
func sharedLibraries(exe string) ([]string, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return nil, nil
	}
	out := []string{interp}
	seen := map[string]bool{interp: true}
	queue := []*elf.File{f}
	dirs := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		needed, err := cur.ImportedLibraries()
		if err != nil {
			return nil, err
		}
		for _, n := range needed {
			found := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("shared library %s not found", n)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			lf, err := elf.Open(found)
			if err != nil {
				return nil, err
			}
			defer lf.Close()
			queue = append(queue, lf)
		}
	}
	return out, nil
}

func goarch() string { return goruntime.GOARCH }
