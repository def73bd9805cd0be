package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type file struct{ name, body string }

// tarLayer is a layer holding files (a body "->x" makes a symlink to x).
func tarLayer(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(f.body))}
		switch {
		case strings.HasSuffix(f.name, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(f.body, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.body[2:], 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(f.body))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// push writes an image of layers to host/repo:tag and returns its digest.
func push(t *testing.T, host, repo string, layers ...v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/app"}, Env: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

func newStore(t *testing.T, host string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: t.TempDir(), Insecure: []string{host}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPullUnpacksWithWhiteoutsAndCaches(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dg := push(t, host, "team/app:v1",
		tarLayer(t, file{"etc/", ""}, file{"etc/keep", "k"}, file{"etc/gone", "g"}, file{"opq/", ""}, file{"opq/old", "o"}, file{"bin/app", "v1"}),
		tarLayer(t, file{"etc/.wh.gone", ""}, file{"opq/.wh..wh..opq", ""}, file{"opq/new", "n"}, file{"link", "->/etc/keep"}))
	s := newStore(t, host, nil)
	img, err := s.Pull(ctx(t), host+"/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != dg {
		t.Fatalf("digest %s, pushed %s", img.Digest, dg)
	}
	for path, want := range map[string]string{"etc/keep": "k", "bin/app": "v1", "opq/new": "n"} {
		if b, err := os.ReadFile(filepath.Join(img.Rootfs, path)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
	}
	for _, path := range []string{"etc/gone", "opq/old", "etc/.wh.gone", "opq/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(img.Rootfs, path)); err == nil {
			t.Errorf("%s is in the rootfs: the whiteout was not honoured", path)
		}
	}
	if l, _ := os.Readlink(filepath.Join(img.Rootfs, "link")); l != "/etc/keep" {
		t.Errorf("symlink: %q", l)
	}
	if img.Config.Entrypoint[0] != "/bin/app" {
		t.Errorf("config: %+v", img.Config)
	}
	// By digest, it needs no registry.
	srv.Close()
	if got, err := s.Pull(ctx(t), host+"/team/app@"+dg); err != nil || got.Rootfs != img.Rootfs {
		t.Fatalf("pull by digest from the cache: %v", err)
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for _, files := range [][]file{
		{{"../evil", "x"}},
		{{"up", "->/"}, {"up/etc/evil", "x"}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, f := range files {
			h := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(f.body))}
			if strings.HasPrefix(f.body, "->") {
				h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.body[2:], 0
			}
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte(f.body))
			}
		}
		tw.Close()
		root := t.TempDir()
		if _, err := applyTar(root, tar.NewReader(&buf), 1<<20); err == nil {
			t.Errorf("layer %v applied; want it refused", files)
		}
	}
}

// TestPullFailures: each failure is an error with its cause, and the
// cache holds no partial layer or image afterwards.
func TestPullFailures(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var corrupt, locked bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if locked {
			if u, p, ok := r.BasicAuth(); !ok || u != "ann" || p != "right" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if corrupt && strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Method == http.MethodGet {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 10 {
				b[len(b)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dg := push(t, host, "app:v1", tarLayer(t, file{"bin/app", strings.Repeat("payload", 1000)}))

	check := func(t *testing.T, s *Store, ref, want string) {
		t.Helper()
		_, err := s.Pull(ctx(t), ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("pull %s: %v; want an error saying %q", ref, err, want)
		}
		for _, d := range []string{blobDir(s.cfg.Dir), filepath.Join(s.cfg.Dir, "images")} {
			if entries, _ := os.ReadDir(d); len(entries) > 0 {
				t.Fatalf("%s holds %d entries after a failed pull (%s)", d, len(entries), entries[0].Name())
			}
		}
	}
	t.Run("not found", func(t *testing.T) { check(t, newStore(t, host, nil), host+"/nope:v1", "UNKNOWN") })
	t.Run("wrong digest", func(t *testing.T) {
		check(t, newStore(t, host, nil), host+"/app@sha256:"+strings.Repeat("0", 64), "MANIFEST_UNKNOWN")
	})
	t.Run("not insecure", func(t *testing.T) {
		check(t, newStore(t, host, func(c *Config) { c.Insecure = nil }), host+"/app:v1", "plain HTTP")
	})
	t.Run("corrupt layer", func(t *testing.T) {
		corrupt = true
		defer func() { corrupt = false }()
		check(t, newStore(t, host, nil), host+"/app@"+dg, "")
	})
	t.Run("credentials", func(t *testing.T) {
		locked = true
		defer func() { locked = false }()
		creds := filepath.Join(t.TempDir(), "config.json")
		os.WriteFile(creds, []byte(`{"auths":{"`+host+`":{"username":"ann","password":"wrong-secret"}}}`), 0o600)
		s := newStore(t, host, func(c *Config) { c.CredentialsFile = creds })
		check(t, s, host+"/app:v1", "UNAUTHORIZED")
		if _, err := s.Pull(ctx(t), host+"/app:v1"); strings.Contains(err.Error(), "wrong-secret") {
			t.Fatalf("the error quotes the password: %v", err)
		}
		os.WriteFile(creds, []byte(`{"auths":{"`+host+`":{"username":"ann","password":"right"}}}`), 0o600)
		if _, err := s.Pull(ctx(t), host+"/app:v1"); err != nil {
			t.Fatalf("pull with the right credentials: %v", err)
		}
	})
	t.Run("decompression bomb", func(t *testing.T) {
		// 8 MiB of zeros compress to a few kilobytes; the cache holds 1 MiB.
		push(t, host, "bomb:v1", tarLayer(t, file{"zeros", strings.Repeat("\x00", 8<<20)}))
		s := newStore(t, host, func(c *Config) { c.MaxBytes = 1 << 20 })
		if _, err := s.Pull(ctx(t), host+"/bomb:v1"); err == nil || !strings.Contains(err.Error(), "more than the cache may hold") {
			t.Fatalf("pull of an image unpacking to 8 MiB into a cache of 1 MiB: %v; want it refused", err)
		}
		// The layer is a valid blob and may stay (GC takes it); no
		// unpacked file may.
		if entries, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "images")); len(entries) > 0 {
			t.Fatalf("images/ holds %s after the refused pull", entries[0].Name())
		}
	})
	t.Run("registry down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		addr := strings.TrimPrefix(down.URL, "http://")
		down.Close()
		check(t, newStore(t, addr, nil), addr+"/app:v1", "connection refused")
	})
}

func TestGCBySizeAndAge(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	now := time.Now()
	s := newStore(t, host, func(c *Config) { c.MaxBytes = 30000; c.Now = func() time.Time { return now } })
	var imgs []*Image
	for i, tag := range []string{"a", "b", "c"} {
		if i == 2 {
			s.Acquire(imgs[0].Digest)
		}
		push(t, host, "app:"+tag, tarLayer(t, file{"f", strings.Repeat(tag, 10000)}))
		img, err := s.Pull(ctx(t), host+"/app:"+tag)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		now = now.Add(time.Minute)
	}
	s.GC()
	if !s.Present(imgs[0].Digest) || s.Present(imgs[1].Digest) || !s.Present(imgs[2].Digest) {
		t.Fatalf("after GC by size: a (in use) %v, b (least recent) %v, c %v; want true false true",
			s.Present(imgs[0].Digest), s.Present(imgs[1].Digest), s.Present(imgs[2].Digest))
	}
	s.Release(imgs[0].Digest)
	now = now.Add(8 * 24 * time.Hour)
	s.GC()
	if s.Present(imgs[0].Digest) || s.Present(imgs[2].Digest) {
		t.Fatal("images unused for more than MaxAge survived GC")
	}
	if entries, _ := os.ReadDir(blobDir(s.cfg.Dir)); len(entries) != 0 {
		t.Fatalf("%d layers left after every image went", len(entries))
	}
}

// TestUnpackWhiteoutStaysInside: a whiteout names a file of its own
// folder; ".wh..." (whiting out "..") must not remove the root's parent,
// which holds the node's other images, nor ".wh." / ".wh.." the folder.
func TestUnpackWhiteoutStaysInside(t *testing.T) {
	for _, name := range []string{".wh...", "etc/.wh...", ".wh..", ".wh."} {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		sibling := filepath.Join(dir, "other-image")
		if err := os.WriteFile(sibling, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Close()
		_, err := applyTar(root, tar.NewReader(&buf), 1<<20)
		if err == nil {
			t.Errorf("whiteout %q applied; want it refused", name)
		}
		if _, serr := os.Stat(sibling); serr != nil {
			t.Errorf("whiteout %q removed %s, outside the root: %v", name, sibling, serr)
		}
		if _, serr := os.Stat(root); serr != nil {
			t.Errorf("whiteout %q removed the root: %v", name, serr)
		}
	}
}

// TestUnpackOpaqueThroughLaterLink: an opaque marker is honoured after
// the layer's entries, so an entry after it that turns its folder into a
// link must not make the emptying follow the link out of the root.
func TestUnpackOpaqueThroughLaterLink(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(outside, "precious")
	if err := os.WriteFile(victim, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a/" + whiteoutOpaque, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: outside})
	tw.Close()
	_, err := applyTar(root, tar.NewReader(&buf), 1<<20)
	if _, serr := os.Stat(victim); serr != nil {
		t.Fatalf("the opaque marker of a/ removed %s through the link a -> %s (applyTar: %v)", victim, outside, err)
	}
}

// TestPullOnAFullDisk: the cache on a 256 KiB tmpfs. A layer larger
// than that fails in its download, an image whose small layer unpacks
// larger fails in its unpack; both say the disk is full, and leave no
// partial layer or image behind (a later pull must not take a torn file
// for a cached one).
func TestPullOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	noise := make([]byte, 1<<20)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	push(t, host, "big:v1", tarLayer(t, file{"bin/app", string(noise)}))
	push(t, host, "zeros:v1", tarLayer(t, file{"zeros", strings.Repeat("\x00", 2<<20)}))
	for _, repo := range []string{"big:v1", "zeros:v1"} {
		t.Run(repo, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
				t.Skipf("mount a tmpfs: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
			s, err := Open(Config{Dir: dir, Insecure: []string{host}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Pull(ctx(t), host+"/"+repo)
			if err == nil || !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("pull of %s into 256 KiB: %v; want the full disk named", repo, err)
			}
			// A layer that was fetched whole may stay (it is named by
			// its digest and GC takes it); nothing partial may.
			blobs, _ := os.ReadDir(blobDir(dir))
			for _, e := range blobs {
				b, err := os.ReadFile(filepath.Join(blobDir(dir), e.Name()))
				if sum := sha256.Sum256(b); err != nil || hex.EncodeToString(sum[:]) != e.Name() {
					t.Errorf("blobs hold %s, not a whole layer of that digest", e.Name())
				}
			}
			if images, _ := os.ReadDir(filepath.Join(dir, "images")); len(images) > 0 {
				t.Errorf("images/ holds %s after the failed pull", images[0].Name())
			}
		})
	}
}
