package image

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
)

// Config configures a Store. Zero values mean the defaults.
type Config struct {
	// Dir is the cache directory. Required.
	Dir string
	// Insecure lists registries (host or host:port) reached over plain
	// HTTP. Every other registry is HTTPS only.
	Insecure []string
	// CAFile is a PEM bundle trusted for registries besides the system's
	// roots.
	CAFile string
	// CredentialsFile is a docker config.json style file with registry
	// credentials; read at each pull. Empty: anonymous.
	CredentialsFile string
	// MaxBytes bounds the cache (unpacked images and layers); GC removes
	// the least recently used beyond it (default 10 GiB). An image that
	// takes more alone is refused while it unpacks.
	MaxBytes int64
	// MaxAge is how long an unused image or layer stays (default 7 days).
	MaxAge time.Duration
	// PullTimeout bounds one pull, from the first request to the
	// unpacked image (default 10 minutes).
	PullTimeout time.Duration
	// Logger receives the store's logs (nil: discarded).
	Logger *slog.Logger
	// Now is the clock of last uses and GC (nil: time.Now).
	Now func() time.Time
	// Meter records pull metrics (nil: the global provider).
	Meter metric.MeterProvider
	// PrepullConcurrency bounds the images of the warm list pulled at
	// once (default 2): pulling ahead must not starve the pulls replicas
	// wait for.
	PrepullConcurrency int
}

// Image is an image present in the cache, ready to run.
type Image struct {
	// Ref is the reference it was asked by; Digest the manifest digest
	// it resolved to ("sha256:<hex>").
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// Rootfs is its unpacked root filesystem: shared, never write to it.
	Rootfs string `json:"-"`
	// Config is the image's run configuration (entrypoint, cmd, env,
	// working directory, user).
	Config v1.Config `json:"config"`
	// Layers are the layer digests, Size the bytes the image takes in
	// the cache (layers and unpacked files).
	Layers []string `json:"layers"`
	Size   int64    `json:"size"`
}

// Store is a node's image cache. Make one with Open.
type Store struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	insecure map[string]bool
	client   *http.Client

	mu       sync.Mutex
	inflight map[string]*pullCall
	inUse    map[string]int        // digest hex → containers using it
	warm     map[string]*warmEntry // ref → the warm list's state (Prepull)
	prepulls chan struct{}         // a slot per prepull in flight

	pulls    metric.Int64Counter
	duration metric.Float64Histogram
	fetched  metric.Int64Counter

	prepulled metric.Int64Counter
}

type pullCall struct {
	done chan struct{}
	img  *Image
	err  error
}

// Open checks cfg, creates the cache directories and removes temporary
// files a crashed run left.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open image store: Dir is required")
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, 10<<30)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, 7*24*time.Hour)
	cfg.PullTimeout = cmp.Or(cfg.PullTimeout, 10*time.Minute)
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	cfg.Dir = dir
	for _, d := range []string{blobDir(dir), filepath.Join(dir, "images")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				_ = os.RemoveAll(filepath.Join(d, e.Name()))
			}
		}
	}
	tr, err := transport(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger, now: cfg.Now,
		insecure: map[string]bool{},
		inflight: map[string]*pullCall{},
		inUse:    map[string]int{},
		warm:     map[string]*warmEntry{},
		prepulls: make(chan struct{}, cmp.Or(max(cfg.PrepullConcurrency, 0), 2)),
	}
	for _, r := range cfg.Insecure {
		s.insecure[r] = true
	}
	s.client = &http.Client{Transport: &schemeGuard{next: tr, insecure: s.insecure}}
	mp := cfg.Meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/atollhq/atoll/member/image")
	s.pulls, _ = m.Int64Counter("image.pulls", metric.WithDescription("Image pulls by result (hit: already in the cache, pulled, failed)."))
	s.duration, _ = m.Float64Histogram("image.pull.duration", metric.WithUnit("s"), metric.WithDescription("From asking for an image to having it unpacked."))
	s.fetched, _ = m.Int64Counter("image.layer.bytes", metric.WithUnit("By"), metric.WithDescription("Compressed layer bytes fetched from registries."))
	s.prepulled, _ = m.Int64Counter("image.prepulls", metric.WithDescription("Images of the warm list pulled ahead of need (warm standby), by result (pulled, failed, canceled)."))
	return s, nil
}

func blobDir(dir string) string { return filepath.Join(dir, "blobs", "sha256") }

// transport is HTTPS with the system roots plus caFile.
func transport(caFile string) (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute // a registry that accepts and never answers
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("registry CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry CA: no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

// schemeGuard refuses plain HTTP to registries not listed as insecure.
type schemeGuard struct {
	next     http.RoundTripper
	insecure map[string]bool
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure[req.URL.Host] && !g.insecure[req.URL.Hostname()] {
		return nil, fmt.Errorf("plain HTTP to %s refused: the registry is not listed as insecure", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

// parse turns ref into a reference, marking listed registries insecure.
func (s *Store) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	reg := r.Context().RegistryStr()
	if s.insecure[reg] || s.insecure[strings.Split(reg, ":")[0]] {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// Local returns the image ref names when it is in the cache and ref is
// a digest (a tag always asks the registry): no network.
func (s *Store) Local(ref string) (*Image, bool) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, false
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, false
	}
	img, err := s.load(d.DigestStr())
	if err != nil {
		return nil, false
	}
	img.Ref = ref
	return img, true
}

// Present reports whether the image a digest names is unpacked in the
// cache.
func (s *Store) Present(digest string) bool {
	_, err := s.load(digest)
	return err == nil
}

// load reads the cached image of digest ("sha256:<hex>") and marks it
// used.
func (s *Store) load(digest string) (*Image, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 {
		return nil, fmt.Errorf("digest %q: not sha256", digest)
	}
	meta := filepath.Join(s.cfg.Dir, "images", hexd+".json")
	b, err := os.ReadFile(meta)
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, err
	}
	img.Rootfs = filepath.Join(s.cfg.Dir, "images", hexd)
	if _, err := os.Stat(img.Rootfs); err != nil {
		return nil, err
	}
	now := s.now()
	_ = os.Chtimes(meta, now, now)
	return &img, nil
}

// Pull makes ref present in the cache and returns it. Concurrent pulls
// of one reference (with the same credentials) share one fetch. Errors
// carry the registry's answer.
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	var po pullOptions
	for _, o := range opts {
		o(&po)
	}
	start := time.Now()
	ctx, span := otel.Tracer("github.com/atollhq/atoll/member/image").Start(ctx, "image.pull")
	span.SetAttributes(attribute.String("image.ref", ref))
	defer span.End()
	result := "hit"
	defer func() {
		s.pulls.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
		s.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("result", result)))
	}()
	if img, ok := s.Local(ref); ok {
		span.SetAttributes(attribute.String("image.digest", img.Digest), attribute.Bool("image.cached", true))
		return img, nil
	}
	s.mu.Lock()
	key := ref + po.key()
	c, ok := s.inflight[key]
	if !ok {
		c = &pullCall{done: make(chan struct{})}
		s.inflight[key] = c
		go func() {
			// Detached from the first caller: a pull others wait for
			// must not end because that caller gave up.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PullTimeout)
			c.img, c.err = s.fetch(fctx, ref, po)
			cancel()
			s.mu.Lock()
			delete(s.inflight, key)
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		result = "failed"
		return nil, ctx.Err()
	case <-c.done:
	}
	if c.err != nil {
		result = "failed"
		span.RecordError(c.err)
		span.SetStatus(codes.Error, c.err.Error())
		return nil, c.err
	}
	result = "pulled"
	img := *c.img
	img.Ref = ref
	span.SetAttributes(attribute.String("image.digest", img.Digest))
	return &img, nil
}

// credentials resolves the store's credentials file (read at each pull).
func (s *Store) options(ctx context.Context, po pullOptions) ([]remote.Option, error) {
	file, err := readKeychain(s.cfg.CredentialsFile)
	if err != nil {
		return nil, err
	}
	kc, err := po.keychain(file)
	if err != nil {
		return nil, err
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(s.client.Transport),
		remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
	}, nil
}

// fetch pulls ref from its registry into the cache.
func (s *Store) fetch(ctx context.Context, ref string, po pullOptions) (*Image, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	opts, err := s.options(ctx, po)
	if err != nil {
		return nil, err
	}
	rimg, err := remote.Image(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	dg, err := rimg.Digest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != dg.String() {
		return nil, fmt.Errorf("pull %s: the registry sent manifest %s", ref, dg)
	}
	if img, err := s.load(dg.String()); err == nil {
		return img, nil
	}
	cf, err := rimg.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s: config: %w", ref, err)
	}
	layers, err := rimg.Layers()
	if err != nil {
		return nil, fmt.Errorf("pull %s: layers: %w", ref, err)
	}
	img := &Image{Ref: ref, Digest: dg.String(), Config: cf.Config}
	var blobs []string
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("pull %s: layer: %w", ref, err)
		}
		path, size, err := s.fetchLayer(ctx, l, ld)
		if err != nil {
			return nil, fmt.Errorf("pull %s: layer %s: %w", ref, ld, err)
		}
		img.Layers = append(img.Layers, ld.String())
		img.Size += size
		blobs = append(blobs, path)
	}
	if err := s.unpackImage(img, blobs); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	s.log.Info("image pulled", "image", ref, "digest", img.Digest, "bytes", img.Size)
	s.GC(img.Digest)
	return s.load(img.Digest)
}

// fetchLayer makes the layer's compressed blob present: downloaded
// under a temporary name, checked against its digest, then renamed.
func (s *Store) fetchLayer(ctx context.Context, l v1.Layer, d v1.Hash) (string, int64, error) {
	if d.Algorithm != "sha256" {
		return "", 0, fmt.Errorf("digest algorithm %s is not supported", d.Algorithm)
	}
	path := filepath.Join(blobDir(s.cfg.Dir), d.Hex)
	if st, err := os.Stat(path); err == nil {
		now := s.now()
		_ = os.Chtimes(path, now, now)
		return path, st.Size(), nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(blobDir(s.cfg.Dir), ".tmp-")
	if err != nil {
		return "", 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	s.fetched.Add(ctx, n)
	if err != nil {
		return "", 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return "", 0, fmt.Errorf("corrupt download: content has digest sha256:%s", got)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, err
	}
	ok = true
	return path, n, nil
}

// unpackImage unpacks the layers into a temporary directory, then
// renames it and writes the image's metadata (the mark of a complete
// image).
func (s *Store) unpackImage(img *Image, blobs []string) error {
	hexd := strings.TrimPrefix(img.Digest, "sha256:")
	images := filepath.Join(s.cfg.Dir, "images")
	tmp, err := os.MkdirTemp(images, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for i, b := range blobs {
		n, err := unpackLayer(tmp, b, s.cfg.MaxBytes-img.Size)
		if err != nil {
			return fmt.Errorf("unpack layer %s: %w", img.Layers[i], err)
		}
		img.Size += n
	}
	final := filepath.Join(images, hexd)
	_ = os.RemoveAll(final) // a rootfs without metadata is incomplete
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	b, err := json.Marshal(img)
	if err != nil {
		return err
	}
	meta := filepath.Join(images, hexd+".json")
	if err := os.WriteFile(meta+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(meta+".tmp", meta)
}

// Acquire marks digest in use: GC keeps it until Release.
func (s *Store) Acquire(digest string) {
	s.mu.Lock()
	s.inUse[strings.TrimPrefix(digest, "sha256:")]++
	s.mu.Unlock()
}

// Release ends one Acquire.
func (s *Store) Release(digest string) {
	s.mu.Lock()
	k := strings.TrimPrefix(digest, "sha256:")
	if s.inUse[k]--; s.inUse[k] <= 0 {
		delete(s.inUse, k)
	}
	s.mu.Unlock()
}

// GC removes images not used for MaxAge, then the least recently used
// until the cache fits MaxBytes, keeping images in use, those of the warm
// list (Prepull) and the digests in keep; then the layers no remaining image references and not used
// for MaxAge. It returns how many images it removed.
func (s *Store) GC(keep ...string) int {
	images := filepath.Join(s.cfg.Dir, "images")
	entries, _ := os.ReadDir(images)
	type entry struct {
		hex  string
		used time.Time
		img  Image
	}
	var all []entry
	var total int64
	for _, e := range entries {
		hexd, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(hexd, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(images, e.Name()))
		if err != nil {
			continue
		}
		var img Image
		if json.Unmarshal(b, &img) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		all = append(all, entry{hexd, info.ModTime(), img})
		total += img.Size
	}
	slices.SortFunc(all, func(a, b entry) int { return a.used.Compare(b.used) })
	now := s.now()
	s.mu.Lock()
	inUse := make(map[string]bool, len(s.inUse))
	for k := range s.inUse {
		inUse[k] = true
	}
	for _, d := range keep {
		inUse[strings.TrimPrefix(d, "sha256:")] = true
	}
	for _, e := range s.warm { // warm standby: held ahead of need
		inUse[e.digest] = true
	}
	s.mu.Unlock()
	removed := 0
	keepBlobs := map[string]bool{}
	for _, e := range all {
		old := now.Sub(e.used) > s.cfg.MaxAge
		if !inUse[e.hex] && (old || total > s.cfg.MaxBytes) {
			_ = os.Remove(filepath.Join(images, e.hex+".json"))
			if err := os.RemoveAll(filepath.Join(images, e.hex)); err != nil {
				s.log.Warn("image gc", "digest", "sha256:"+e.hex, "err", err)
			}
			total -= e.img.Size
			removed++
			s.log.Info("image removed from the cache", "digest", "sha256:"+e.hex, "bytes", e.img.Size, "unusedFor", now.Sub(e.used).Round(time.Second))
			continue
		}
		for _, l := range e.img.Layers {
			keepBlobs[strings.TrimPrefix(l, "sha256:")] = true
		}
	}
	blobs, _ := os.ReadDir(blobDir(s.cfg.Dir))
	for _, b := range blobs {
		info, err := b.Info()
		if err != nil || keepBlobs[b.Name()] || strings.HasPrefix(b.Name(), ".tmp-") {
			continue
		}
		if age := now.Sub(info.ModTime()); age > s.cfg.MaxAge || (removed > 0 && age > time.Minute) {
			_ = os.Remove(filepath.Join(blobDir(s.cfg.Dir), b.Name()))
		}
	}
	return removed
}
