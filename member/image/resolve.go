package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryConfig is how a Resolver reaches registries: the same rules
// as a node's Store (Config's fields of the same names).
type RegistryConfig struct {
	Insecure        []string
	CAFile          string
	CredentialsFile string
}

// Resolver turns an image tag into the digest of its manifest, asking
// the registry and nothing else (no layer is fetched): the hub pins each
// template revision's image with it.
type Resolver struct {
	cfg      RegistryConfig
	insecure map[string]bool
	client   *http.Client
}

// NewResolver checks cfg (the CA file is read now).
func NewResolver(cfg RegistryConfig) (*Resolver, error) {
	tr, err := transport(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("image resolver: %w", err)
	}
	r := &Resolver{cfg: cfg, insecure: map[string]bool{}}
	for _, h := range cfg.Insecure {
		r.insecure[h] = true
	}
	if t, ok := tr.(*http.Transport); ok {
		// Whoever may write a workload names the host the hub asks: not
		// a link-local address (a cloud's metadata service) or none.
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseLinkLocal}
		t.DialContext = d.DialContext
	}
	r.client = &http.Client{Transport: &schemeGuard{next: tr, insecure: r.insecure}}
	return r, nil
}

// refuseLinkLocal refuses connections to link-local, multicast and
// unspecified addresses.
func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()) {
		return fmt.Errorf("registry address %s refused: link-local, multicast and unspecified addresses are not registries", host)
	}
	return nil
}

// Resolve returns ref's manifest digest ("sha256:<hex>"): the image
// index's when the tag names one, so every platform's node finds its own
// image under it. A reference by digest is returned as it is, without a
// request. Errors carry the registry's answer, never the credentials.
//
// It asks with the credentials of opts (WithCredentials: a workload's
// imagePullSecret, as a node's pull does) before those of the
// credentials file.
func (r *Resolver) Resolve(ctx context.Context, ref string, opts ...PullOption) (string, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	if d, ok := parsed.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	reg := parsed.Context().RegistryStr()
	if r.insecure[reg] || r.insecure[strings.Split(reg, ":")[0]] {
		if parsed, err = name.ParseReference(ref, name.Insecure); err != nil {
			return "", fmt.Errorf("image %q: %w", ref, err)
		}
	}
	var po pullOptions
	for _, o := range opts {
		o(&po)
	}
	file, err := readKeychain(r.cfg.CredentialsFile)
	if err != nil {
		return "", err
	}
	kc, err := po.keychain(file)
	if err != nil {
		return "", err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.client.Transport), remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH})}
	desc, err := remote.Head(parsed, ropts...)
	if err != nil {
		// Some registries refuse HEAD on manifests: ask with GET.
		d, gerr := remote.Get(parsed, ropts...)
		if gerr != nil {
			return "", fmt.Errorf("resolve %s: %w", ref, gerr)
		}
		return d.Digest.String(), nil
	}
	return desc.Digest.String(), nil
}

// Pin is ref pinned to digest: repository[:tag]@digest (the tag kept for
// people; the digest is what is pulled).
func Pin(ref, digest string) string { return Unpinned(ref) + "@" + digest }

// Unpinned is ref without its digest: what Pin was given.
func Unpinned(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	return ref
}
