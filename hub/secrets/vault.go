package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
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
// whose uid is given at version (the resourceVersion of the object's
// write), in tx (the transaction of that write). The versions before stay
// while a workload revision pins them.
func (v *Vault) Write(ctx context.Context, tx *pgstore.Tx, uid string, version int64, data api.DataSpec) error {
	dk := make([]byte, dataKeySize)
	if _, err := rand.Read(dk); err != nil {
		return fmt.Errorf("secret data key: %w", err)
	}
	sealed, err := Seal(dk, uid, data)
	if err != nil {
		return err
	}
	return tx.PutSecretValue(ctx, v.ring, uid, version, dk, sealed)
}

// Read returns the data of the Secret whose uid is given.
func (v *Vault) Read(ctx context.Context, store *pgstore.Store, uid string) (api.DataSpec, error) {
	sv, err := store.SecretValue(ctx, v.ring, uid)
	if err != nil {
		return api.DataSpec{}, err
	}
	return Open(sv.DataKey, uid, sv.Sealed)
}

// ReadAt returns the data of the Secret whose uid is given at version (0:
// the newest); NotFound when that version is no longer kept.
func (v *Vault) ReadAt(ctx context.Context, store *pgstore.Store, uid string, version int64) (api.DataSpec, error) {
	sv, err := store.SecretValueAt(ctx, v.ring, uid, version)
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
	plain := encode(data)
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
	d, ok := decode(plain)
	clear(plain)
	if !ok {
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
		_, ab := a.BinaryData[k]
		_, bb := b.BinaryData[k]
		if !ok || !bytes.Equal(v, w) || ab != bb {
			return false
		}
	}
	return true
}

// encode lays data out for sealing: per key, a kind byte (0 text, 1
// binary), the key and the value (binary values decoded), each after its
// length as a uvarint. Cheaper to read back than JSON.
func encode(d api.DataSpec) []byte {
	var out []byte
	put := func(kind byte, k string, v []byte) {
		out = append(out, kind)
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	for k, v := range d.Data {
		put(0, k, []byte(v))
	}
	for k, v := range d.BinaryData {
		b, _ := base64.StdEncoding.DecodeString(v)
		put(1, k, b)
	}
	return out
}

// decode reads what encode wrote.
func decode(b []byte) (api.DataSpec, bool) {
	var d api.DataSpec
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, false
		}
		v := b[w : w+int(n)]
		b = b[w+int(n):]
		return v, true
	}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		k, ok := next()
		if !ok {
			return d, false
		}
		v, ok := next()
		if !ok {
			return d, false
		}
		switch kind {
		case 0:
			if d.Data == nil {
				d.Data = map[string]string{}
			}
			d.Data[string(k)] = string(v)
		case 1:
			if d.BinaryData == nil {
				d.BinaryData = map[string]string{}
			}
			d.BinaryData[string(k)] = base64.StdEncoding.EncodeToString(v)
		default:
			return d, false
		}
	}
	return d, true
}

// Reader reads secrets' values from one store (datasync.Values).
type Reader struct {
	Vault *Vault
	Store *pgstore.Store
}

// Read returns the data of the Secret whose uid is given; without a
// vault (a hub started without a key-encryption key) it fails.
func (r Reader) Read(ctx context.Context, uid string) (api.DataSpec, error) {
	if r.Vault == nil {
		return api.DataSpec{}, errors.New("this hub runs without a key-encryption key: secrets cannot be read")
	}
	return r.Vault.Read(ctx, r.Store, uid)
}

// ReadAt returns the data of the Secret whose uid is given at version (0:
// the newest).
func (r Reader) ReadAt(ctx context.Context, uid string, version int64) (api.DataSpec, error) {
	if r.Vault == nil {
		return api.DataSpec{}, errors.New("this hub runs without a key-encryption key: secrets cannot be read")
	}
	return r.Vault.ReadAt(ctx, r.Store, uid, version)
}
