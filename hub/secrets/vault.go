package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// dataKeySize is the length of a data key (AES-256).
const dataKeySize = 32

// format is the first byte of sealed data; a new layout gets a new byte.
const format byte = 1

// ErrCorrupt means sealed data does not open with its data key.
var ErrCorrupt = errors.New("the secret's sealed data does not open: it was altered or moved from another secret")

// Vault seals and opens Secret values with a key ring.
type Vault struct {
	ring pgstore.Sealer
}

// New returns a vault over ring (*keyring.Ring: its first key seals the
// data keys, all of them open).
func New(ring pgstore.Sealer) *Vault { return &Vault{ring: ring} }

// Write seals data under a new data key and stores it for the Secret
// whose uid is given, in tx (the transaction of the object's write).
func (v *Vault) Write(ctx context.Context, tx *pgstore.Tx, uid string, data api.DataSpec) error {
	dk := make([]byte, dataKeySize)
	if _, err := rand.Read(dk); err != nil {
		return fmt.Errorf("secret data key: %w", err)
	}
	sealed, err := Seal(dk, uid, data)
	if err != nil {
		return err
	}
	return tx.PutSecretValue(ctx, v.ring, uid, dk, sealed)
}

// Read returns the data of the Secret whose uid is given.
func (v *Vault) Read(ctx context.Context, store *pgstore.Store, uid string) (api.DataSpec, error) {
	sv, err := store.SecretValue(ctx, v.ring, uid)
	if err != nil {
		return api.DataSpec{}, err
	}
	return Open(sv.DataKey, uid, sv.Sealed)
}

// ReadTx is Read within a transaction.
func (v *Vault) ReadTx(ctx context.Context, tx *pgstore.Tx, uid string) (api.DataSpec, error) {
	sv, err := tx.SecretValue(ctx, v.ring, uid)
	if err != nil {
		return api.DataSpec{}, err
	}
	return Open(sv.DataKey, uid, sv.Sealed)
}

// Seal encrypts data under dataKey, bound to uid.
func Seal(dataKey []byte, uid string, data api.DataSpec) ([]byte, error) {
	plain, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	aead, err := gcm(dataKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = format
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	out = aead.Seal(out, out[1:], plain, aad(uid))
	clear(plain)
	return out, nil
}

// Open decrypts what Seal returned for the same uid.
func Open(dataKey []byte, uid string, sealed []byte) (api.DataSpec, error) {
	aead, err := gcm(dataKey)
	if err != nil {
		return api.DataSpec{}, err
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != format {
		return api.DataSpec{}, ErrCorrupt
	}
	plain, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad(uid))
	if err != nil {
		return api.DataSpec{}, ErrCorrupt
	}
	var d api.DataSpec
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&d); err != nil {
		return api.DataSpec{}, ErrCorrupt
	}
	return d, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("secret data key: %d bytes, want %d", len(key), dataKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func aad(uid string) []byte { return []byte("atoll secret data uid=" + uid) }

// Equal reports whether two data sets hold the same keys and values.
func Equal(a, b api.DataSpec) bool {
	am, bm := a.Bytes(), b.Bytes()
	if len(am) != len(bm) {
		return false
	}
	for k, v := range am {
		w, ok := bm[k]
		if !ok || !bytes.Equal(v, w) || (a.BinaryData[k] != "") != (b.BinaryData[k] != "") {
			return false
		}
	}
	return true
}
