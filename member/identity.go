package member

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// identity is what a member keeps about itself between starts.
type identity struct {
	Cluster     string   `json:"cluster"`
	Hub         string   `json:"hub"`
	CA          string   `json:"ca,omitempty"`
	NATSSeed    string   `json:"natsSeed"`
	MemberToken string   `json:"memberToken"`
	UserJWT     string   `json:"userJwt"`
	LeafURLs    []string `json:"leafUrls"`
}

const (
	identityFile = "identity.json"
	credsFile    = "hub.creds"
)

// loadIdentity reads the identity kept in dir; ok is false when there is
// none yet.
func loadIdentity(dir string) (identity, bool, error) {
	var id identity
	data, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, false, nil
	}
	if err != nil {
		return id, false, fmt.Errorf("read identity: %w", err)
	}
	if err := json.Unmarshal(data, &id); err != nil {
		return id, false, fmt.Errorf("read identity %s: %w (delete the data folder to join again)", filepath.Join(dir, identityFile), err)
	}
	return id, true, nil
}

// save writes the identity and the NATS credentials file, both 0600,
// atomically.
func (id identity) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile0600(filepath.Join(dir, identityFile), data); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if id.UserJWT == "" {
		return nil
	}
	creds, err := jwt.FormatUserConfig(id.UserJWT, []byte(id.NATSSeed))
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := writeFile0600(filepath.Join(dir, credsFile), creds); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

func writeFile0600(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// keyPair is the member's NATS user key pair: its public key is the
// member's identity on the hub, and registering proves the member holds
// it by signing the hub's nonce.
func (id identity) keyPair() (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed([]byte(id.NATSSeed))
	if err != nil {
		return nil, fmt.Errorf("identity: bad NATS seed: %w", err)
	}
	return kp, nil
}

// publicKey is the member's NATS user public key.
func (id identity) publicKey() (string, error) {
	kp, err := id.keyPair()
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}

func newSeed() (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	return string(seed), err
}
