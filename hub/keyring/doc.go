// Package keyring seals the few secrets the hub keeps in PostgreSQL (the
// NATS operator and account signing seeds) under key-encryption keys that
// are kept outside the database, so that a copy of the database (a backup,
// a dump, a replica) is not enough to mint NATS identities.
//
// # Keys
//
// A Key is 32 random bytes, written as standard base64 (44 characters) in
// a key file or in the ATOLL_KEY environment variable. Its ID is derived
// from it (the first 8 bytes of a SHA-256 over a fixed label and the key,
// in hex): the ID says which key sealed a value without a registry of
// names, and two keys never share one. Knowing an ID tells nothing about
// the key.
//
// # Sealing
//
// Seal encrypts with AES-256-GCM (crypto/aes, crypto/cipher) under the
// ring's first key, with a fresh random 96-bit nonce, and returns the key
// ID and the sealed bytes: a format byte, the nonce, then the ciphertext
// and its tag. The caller stores the ID beside the sealed bytes. The
// associated data the caller passes names the row and column the value
// belongs to; the ring adds the format and the key ID to it. A sealed value
// copied to another row, or given another key ID, does not open.
//
// # Rotation
//
// A Ring holds several keys: the first seals, every one opens. A rotation
// therefore runs in three steps that never stop every hub at once: start
// every hub with the new key first and the old one after it; rewrap what
// the database holds under the new key in one transaction; start every hub
// with the new key alone. Open says which key a value needs when the ring
// lacks it (ErrUnknownKey), and that a value was altered or moved when the
// key is there but the value does not open (ErrCorrupt).
//
// Key files are written by CreateFile: mode 0600, through a temporary file
// linked into place, so that two processes creating the same file at once
// end up with one key and nobody reads a half-written one.
//
// It owns the cipher, the key format and key files. It must not know where
// sealed values are stored (package pgstore does) or which keys a process
// uses (its flags and environment say, in cmd/atoll).
package keyring
