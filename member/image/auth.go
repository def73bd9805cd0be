package image

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// credFile is the part of a docker config.json the store reads.
type credFile struct {
	Auths map[string]struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auths"`
}

// keychain answers a registry's credentials from a credentials file.
type keychain map[string]authn.AuthConfig

// readKeychain reads path (empty: anonymous everywhere). Errors never
// quote the file's content.
func readKeychain(path string) (keychain, error) {
	if path == "" {
		return keychain{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	return parseKeychain(b, path)
}

// parseKeychain reads a docker config.json from source (a file, or a
// workload's secret). Errors never quote the content.
func parseKeychain(b []byte, path string) (keychain, error) {
	var f credFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errors.New("registry credentials: " + path + " is not a docker config.json file")
	}
	kc := keychain{}
	for host, a := range f.Auths {
		c := authn.AuthConfig{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("registry credentials: the auth of %s in %s is not base64(user:password)", host, path)
			}
			c.Username, c.Password = user, pass
		}
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		kc[strings.TrimSuffix(host, "/")] = c
	}
	return kc, nil
}

// Resolve implements authn.Keychain.
func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if c, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(c), nil
	}
	return authn.Anonymous, nil
}

// PullOption changes one Pull.
type PullOption func(*pullOptions)

type pullOptions struct {
	creds  []byte // a docker config.json, nil for none
	source string // what creds came from, for errors
}

// WithCredentials pulls with the registry credentials of a docker
// config.json (a workload's, from source, e.g. "secret regcred"), asked
// before the node's credentials file. Pulls with different credentials
// never share a fetch.
func WithCredentials(configJSON []byte, source string) PullOption {
	return func(o *pullOptions) { o.creds, o.source = configJSON, source }
}

// keychain is the pull's credentials before the node's file.
func (o pullOptions) keychain(file keychain) (authn.Keychain, error) {
	if o.creds == nil {
		return file, nil
	}
	own, err := parseKeychain(o.creds, o.source)
	if err != nil {
		return nil, err
	}
	return authn.NewMultiKeychain(own, file), nil
}

// key tells pulls with different credentials apart (a hash, never the
// credentials).
func (o pullOptions) key() string {
	if o.creds == nil {
		return ""
	}
	h := sha256.Sum256(o.creds)
	return "\x00" + hex.EncodeToString(h[:])
}
