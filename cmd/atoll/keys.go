package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/pgstore"
)

// keyEnv holds key-encryption keys (base64, comma-separated, the sealing
// one first) when no --key-file is given.
const keyEnv = "ATOLL_KEY"

// keyFileName is the default key file in a hub's data folder.
const keyFileName = "atoll.key"

// addKeyFlag adds --key-file, repeatable, to f.
func addKeyFlag(f *pflag.FlagSet, files *[]string, defaultNote string) {
	f.StringArrayVar(files, "key-file", nil, "file holding a key-encryption key (base64 of 32 bytes, from 'atoll hub gen-key') that seals the NATS signing keys and the Secrets' data keys in the database; repeat it during a rotation, the new key first (it seals) and the old after (it only opens); else "+keyEnv+" (comma-separated keys, the sealing one first)"+defaultNote)
}

// keySource says where keys come from: --key-file (in order), else
// ATOLL_KEY, else defaultFile when not empty, which generate creates when
// it does not exist (atoll dev). created reports that.
type keySource struct {
	files       []string
	env         string
	defaultFile string
	generate    bool
}

// ring loads the keys; the first seals.
func (s keySource) ring() (r *keyring.Ring, created bool, err error) {
	var keys []keyring.Key
	switch {
	case len(s.files) > 0:
		for _, f := range s.files {
			k, err := keyring.ReadFile(f)
			if err != nil {
				return nil, false, fmt.Errorf("--key-file: %w", err)
			}
			keys = append(keys, k)
		}
	case strings.TrimSpace(s.env) != "":
		for i, text := range strings.Split(s.env, ",") {
			k, err := keyring.ParseKey(text)
			if err != nil {
				return nil, false, fmt.Errorf("%s, key %d: %w", keyEnv, i+1, err)
			}
			keys = append(keys, k)
		}
	case s.defaultFile == "":
		return nil, false, fmt.Errorf("no key-encryption key: the NATS signing keys in the database are sealed with one kept outside it; give --key-file or %s (make one with 'atoll hub gen-key')", keyEnv)
	case s.generate:
		k, made, err := keyring.CreateFile(s.defaultFile)
		if err != nil {
			return nil, false, err
		}
		keys, created = append(keys, k), made
	default:
		k, err := keyring.ReadFile(s.defaultFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("no key-encryption key: %s does not exist, and neither --key-file nor %s is given. The NATS signing keys in the database are sealed with a key kept outside it: make one with 'atoll hub gen-key --output %s' and give every hub the same one (SECURITY.md)", s.defaultFile, keyEnv, s.defaultFile)
		}
		if err != nil {
			return nil, false, err
		}
		keys = append(keys, k)
	}
	r, err = keyring.New(keys...)
	return r, created, err
}

// explainKeyError adds what to do to an error opening the sealed secrets.
func explainKeyError(err error) error {
	switch {
	case errors.Is(err, keyring.ErrUnknownKey):
		return fmt.Errorf("the secrets in the database (NATS signing keys, Secret objects' data keys) are sealed with a key-encryption key this hub was not given: start it with that key (--key-file or %s; SECURITY.md, \"Rotating secrets\"): %w", keyEnv, err)
	case errors.Is(err, keyring.ErrCorrupt):
		return fmt.Errorf("a secret in the database (NATS signing keys, a Secret object's data key) does not open with the key that sealed it: the row was altered, or comes from another database: %w", err)
	}
	return err
}

// newGenKeyCmd makes a key-encryption key.
func newGenKeyCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "gen-key [--output FILE]",
		Short: "Make a key-encryption key for the NATS signing keys and secrets kept in the database (32 random bytes, base64)",
		Long: `Makes a key-encryption key: 32 random bytes in base64, what --key-file
and ATOLL_KEY take. With --output it is written to FILE (mode 0600) unless
FILE exists, which is then kept as it is (so a one-shot job may run at
every start); without, it is printed.

Give every hub the same key, and keep a copy apart from the database's
backups: without it, the NATS signing keys in the database cannot be read
and every member must join again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				k, err := keyring.NewKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "key id", k.ID())
				_, err = fmt.Fprintln(cmd.OutOrStdout(), k.Text())
				return err
			}
			k, created, err := keyring.CreateFile(output)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote key-encryption key %s to %s\n", k.ID(), output)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s exists (key %s): kept it\n", output, k.ID())
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the key to this file (mode 0600) unless it exists")
	return cmd
}

// newRotateKeyCmd rewraps the database's sealed secrets under a new key.
func newRotateKeyCmd() *cobra.Command {
	var db dbFlags
	var oldFiles []string
	var newFile string
	cmd := &cobra.Command{
		Use:   "rotate-key --new-key-file NEW --old-key-file OLD",
		Short: "Seal the NATS signing keys in the database again, under a new key-encryption key",
		Long: `Rewraps every secret the hub keeps sealed in PostgreSQL (the NATS signing
keys) under the key in --new-key-file, in one transaction, opening them
with the old key. Hubs read these secrets only when they start, so a
rotation never stops them all:

  1. atoll hub gen-key --output NEW
  2. restart the hubs one at a time with --key-file NEW --key-file OLD
  3. atoll hub rotate-key --new-key-file NEW --old-key-file OLD
  4. restart the hubs one at a time with --key-file NEW alone, and
     destroy OLD (a database backup taken before step 3 still needs it)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := db.resolve(); err != nil {
				return err
			}
			if newFile == "" || len(oldFiles) == 0 {
				return errors.New("--new-key-file and --old-key-file are both required")
			}
			ring, _, err := keySource{files: append([]string{newFile}, oldFiles...)}.ring()
			if err != nil {
				return err
			}
			store, err := pgstore.Open(cmd.Context(), db.config())
			if err != nil {
				return err
			}
			defer store.Close()
			done, err := store.RewrapSecrets(cmd.Context(), ring)
			if err != nil {
				return explainKeyError(err)
			}
			if len(done) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing is sealed yet: the first hub seals with the key it is given")
				return nil
			}
			for _, d := range done {
				from := d.From
				if from == "" {
					from = "(clear)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: sealed with key %s, now with key %s\n", d.Secret, from, d.To)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "now restart the hubs one at a time with --key-file %s alone; then destroy the old key\n", newFile)
			return nil
		},
	}
	db.add(cmd.Flags())
	cmd.Flags().StringVar(&newFile, "new-key-file", "", "the new key-encryption key, which seals")
	cmd.Flags().StringArrayVar(&oldFiles, "old-key-file", nil, "the key the secrets are sealed with now (repeatable)")
	return cmd
}
