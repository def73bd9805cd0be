package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeySize is the length of a key-encryption key in bytes (AES-256).
const KeySize = 32

const (
	// format is the first byte of every sealed value: the cipher and the
	// layout below. A new layout gets a new byte.
	format byte = 1
	// nonceSize is AES-GCM's standard nonce length.
	nonceSize = 12
	// idLabel separates the ID derivation from any other use of the key.
	idLabel = "atoll key-encryption key id\x00"
	// aadLabel starts the associated data of every sealed value.
	aadLabel = "atoll keyring v1\x00"
)

var (
	// ErrUnknownKey means a value was sealed with a key the ring does not
	// hold.
	ErrUnknownKey = errors.New("unknown key-encryption key")
	// ErrCorrupt means the ring holds the key a value names, but the value
	// does not open with it: it was altered, truncated or moved from
	// another row.
	ErrCorrupt = errors.New("the sealed value does not open: it was altered or moved from elsewhere")
)

// Key is one key-encryption key.
type Key struct {
	id     string
	secret []byte
}

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("new key: %w", err)
	}
	return keyFrom(b), nil
}

// ParseKey reads a key written as base64 (standard or URL alphabet,
// padded or not); surrounding white space is ignored.
func ParseKey(text string) (Key, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Key{}, errors.New("parse key: empty")
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(text); err == nil {
			break
		}
	}
	if err != nil {
		return Key{}, errors.New("parse key: not base64 (make one with 'atoll hub gen-key' or 'openssl rand -base64 32')")
	}
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("parse key: %d bytes, want %d (make one with 'atoll hub gen-key' or 'openssl rand -base64 32')", len(b), KeySize)
	}
	return keyFrom(b), nil
}

func keyFrom(b []byte) Key {
	sum := sha256.Sum256(append([]byte(idLabel), b...))
	return Key{id: hex.EncodeToString(sum[:8]), secret: b}
}

// ID names the key; it is safe to log and to store.
func (k Key) ID() string { return k.id }

// Text is the key's base64 text, as key files and ATOLL_KEY hold it.
func (k Key) Text() string { return base64.StdEncoding.EncodeToString(k.secret) }

// String names the key without showing it, so a Key that ends up in a log
// line or an error does not leak.
func (k Key) String() string { return "key " + k.id }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

// Ring holds the keys a hub was given: the first seals, all of them open.
type Ring struct {
	primary Key
	aeads   map[string]cipher.AEAD
	ids     []string // in the order given, without repeats
}

// New returns a ring over keys; keys[0] seals. A key given twice counts
// once.
func New(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("new keyring: no key")
	}
	r := &Ring{primary: keys[0], aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if len(k.secret) != KeySize {
			return nil, errors.New("new keyring: a key is not set")
		}
		if _, ok := r.aeads[k.id]; ok {
			continue
		}
		block, err := aes.NewCipher(k.secret)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		r.aeads[k.id] = aead
		r.ids = append(r.ids, k.id)
	}
	return r, nil
}

// PrimaryID is the ID of the key that seals.
func (r *Ring) PrimaryID() string { return r.primary.id }

// IDs are the IDs of every key of the ring, the sealing one first.
func (r *Ring) IDs() []string { return slices.Clone(r.ids) }

// Seal encrypts plaintext under the ring's first key, bound to aad (say,
// the table, row and column it is stored in), and returns that key's ID
// and the sealed bytes.
func (r *Ring) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	id := r.primary.id
	aead := r.aeads[id]
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+aead.Overhead())
	out[0] = format
	if _, err := rand.Read(out[1:]); err != nil {
		return "", nil, fmt.Errorf("seal: %w", err)
	}
	out = aead.Seal(out, out[1:1+nonceSize], plaintext, associated(id, aad))
	return id, out, nil
}

// Open decrypts what Seal returned, given the same aad. It fails with
// ErrUnknownKey when the ring lacks keyID, and with ErrCorrupt when the
// value does not open with it.
func (r *Ring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("open: sealed with key %s; the keys given are %s: %w", keyID, strings.Join(r.ids, ", "), ErrUnknownKey)
	}
	if len(sealed) < 1+nonceSize+aead.Overhead() || sealed[0] != format {
		return nil, fmt.Errorf("open: sealed with key %s: %w", keyID, ErrCorrupt)
	}
	plain, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], associated(keyID, aad))
	if err != nil {
		return nil, fmt.Errorf("open: sealed with key %s: %w", keyID, ErrCorrupt)
	}
	return plain, nil
}

// associated is the associated data of a value: the format, the key ID and
// the caller's, each length-prefixed so that no two differ only in where
// one part ends.
func associated(keyID string, aad []byte) []byte {
	out := make([]byte, 0, len(aadLabel)+len(keyID)+len(aad)+8)
	out = append(out, aadLabel...)
	out = append(out, byte(len(keyID)))
	out = append(out, keyID...)
	out = append(out, byte(len(aad)>>24), byte(len(aad)>>16), byte(len(aad)>>8), byte(len(aad)))
	return append(out, aad...)
}
