package pgserver

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// account is the OS user that runs initdb and postgres.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // all groups of the user, the primary one included
	// switchUser is true when we are root and the children must switch to
	// this account.
	switchUser bool
}

// serverAccount returns the current user, or the "postgres" user when we
// are root, since initdb and postgres refuse to run as root.
func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{
			uid:    uint32(os.Geteuid()),
			gid:    uint32(os.Getegid()),
			groups: []uint32{uint32(os.Getegid())},
		}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return account{}, errors.New(`server account: running as root, so initdb and postgres must run as the unprivileged "postgres" user, which does not exist: create it (useradd --system --user-group postgres) or install the postgresql package, which creates it`)
		}
		return account{}, fmt.Errorf("server account: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("server account: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("server account: gid %q: %w", u.Gid, err)
	}
	a := account{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}, switchUser: true}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != a.gid {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	if a.uid == 0 {
		return account{}, errors.New(`server account: the "postgres" user has uid 0; initdb and postgres need an unprivileged user`)
	}
	return a, nil
}

// credential is what the children run as, or nil to run as ourselves.
func (a account) credential() *syscall.Credential {
	if !a.switchUser {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

func (a account) String() string {
	if a.name == "" {
		return fmt.Sprintf("uid %d", a.uid)
	}
	return fmt.Sprintf("%q (uid %d)", a.name, a.uid)
}

// canSearch tells whether the account may traverse a folder with the
// given owner, group and mode, following the Unix rule that only the
// first matching class (owner, group, others) counts.
func (a account) canSearch(st *syscall.Stat_t) bool {
	mode := st.Mode
	if st.Uid == a.uid {
		return mode&0o100 != 0
	}
	for _, g := range a.groups {
		if st.Gid == g {
			return mode&0o010 != 0
		}
	}
	return mode&0o001 != 0
}

// prepareDataDir creates dataDir (mode 0700) and its parents, hands it to
// the server account and makes sure that account can reach it.
func prepareDataDir(dataDir string, acct account, log *slog.Logger) error {
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("prepare data folder: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("prepare data folder: %w", err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("prepare data folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("prepare data folder: %s is not a folder", dataDir)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if acct.switchUser && st.Uid != acct.uid {
		empty, err := isEmptyDir(dataDir)
		if err != nil {
			return fmt.Errorf("prepare data folder: %w", err)
		}
		if !empty {
			return fmt.Errorf("prepare data folder: %s is not empty and belongs to uid %d, not to the server account %s", dataDir, st.Uid, acct)
		}
		if err := os.Chown(dataDir, int(acct.uid), int(acct.gid)); err != nil {
			return fmt.Errorf("prepare data folder: %w", err)
		}
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dataDir, 0o700); err != nil {
			return fmt.Errorf("prepare data folder: %w", err)
		}
	}
	if acct.switchUser {
		if err := ensureTraversable(parent, acct, log); err != nil {
			return fmt.Errorf("prepare data folder: %w", err)
		}
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// ensureTraversable makes sure acct can traverse dir and every folder
// above it. A folder in the way is given o+x (execute only: others still
// cannot list, read or write it) when it belongs to us and is not "/", a
// top-level folder or our home folder; otherwise the error names it.
func ensureTraversable(dir string, acct account, log *slog.Logger) error {
	home, _ := os.UserHomeDir()
	if home != "" {
		home = filepath.Clean(home)
	}
	me := uint32(os.Geteuid())
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !acct.canSearch(st) {
			protected := d == "/" || filepath.Dir(d) == "/" || d == home
			if st.Uid != me || protected {
				return fmt.Errorf("the server account %s cannot traverse %s (mode %04o, uid %d): run \"chmod o+x %s\" or choose a data folder it can reach",
					acct, d, fi.Mode().Perm(), st.Uid, d)
			}
			mode := fi.Mode().Perm() | 0o001
			if err := os.Chmod(d, mode); err != nil {
				return err
			}
			log.Info("pgserver: let the server account traverse a folder", "folder", d, "mode", fmt.Sprintf("%04o", mode))
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// passwordFile is where the superuser's password is kept.
func passwordFile(dataDir string) string {
	return dataDir + ".password"
}

// readPassword reads the password kept in path.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

// createPassword writes a new random password to path (mode 0600, owned by
// the server account so that initdb can read it).
func createPassword(path string, acct account) (string, error) {
	pw := rand.Text()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(pw + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && acct.switchUser {
		err = os.Chown(path, int(acct.uid), int(acct.gid))
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return pw, nil
}
