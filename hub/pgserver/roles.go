package pgserver

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Role is one of the server's login roles.
type Role string

const (
	// Superuser is the role initdb creates: it creates databases and
	// roles, and nothing of Atoll's connects as it once Start returns.
	Superuser Role = "atoll"
	// Owner owns the database "atoll" and its schema: migrations run as
	// it. It is not a superuser and may not create databases or roles.
	Owner Role = "atoll_owner"
	// Hub is the hub's login: not a superuser, no CREATEDB, CREATEROLE,
	// REPLICATION or BYPASSRLS, and no right to create objects; it reads
	// and writes the tables migrations grant it (package pgstore).
	Hub Role = "atoll_hub"
)

// scramIterations is PostgreSQL's default for SCRAM-SHA-256 verifiers.
const scramIterations = 4096

// rolePassword derives a role's password from the superuser's, so that no
// more files are kept beside the data folder; knowing it tells nothing of
// the superuser's password.
func rolePassword(superPassword string, role Role) string {
	mac := hmac.New(sha256.New, []byte(superPassword))
	mac.Write([]byte("atoll pgserver role password\x00" + string(role)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password
// (RFC 5803's format). Handing it the verifier rather than the password
// keeps the password out of the statement, and so out of the server's log
// should the statement fail.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", err
	}
	h := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(h(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(scramIterations) + ":" + b64(salt) + "$" + b64(stored[:]) + ":" + b64(h(salted, "Server Key")), nil
}

// ensureRoles creates the owner and hub roles when missing and sets, at
// every start, their attributes and passwords, so a data folder made by
// an older version (whose hub connected as the superuser) gets them too.
func (s *Server) ensureRoles(ctx context.Context, conn *pgx.Conn) error {
	for _, role := range []Role{Owner, Hub} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, string(role)).Scan(&exists); err != nil {
			return fmt.Errorf("roles: %w", err)
		}
		ident := pgx.Identifier{string(role)}.Sanitize()
		if !exists {
			s.log.Info("pgserver: creating a role", "role", role)
			if _, err := conn.Exec(ctx, `CREATE ROLE `+ident); err != nil && !isDuplicate(err) {
				return fmt.Errorf("roles: create %s: %w", role, err)
			}
		}
		verifier, err := scramVerifier(rolePassword(s.password, role))
		if err != nil {
			return fmt.Errorf("roles: %w", err)
		}
		if _, err := conn.Exec(ctx, `ALTER ROLE `+ident+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '`+verifier+`'`); err != nil {
			return fmt.Errorf("roles: %s: %w", role, err)
		}
	}
	return nil
}

// PrepareDatabase hands the database name, its schema public and every
// table, view, sequence and function in it to the Owner role, and takes the right to
// create objects in public from everyone else (PostgreSQL 15 does that by
// default, earlier versions do not), so that the Hub role can use only
// what migrations grant it. It is idempotent. Start runs it for the
// database "atoll"; tests run it for their own databases.
func (s *Server) PrepareDatabase(ctx context.Context, name string) error {
	if err := s.asSuperuser(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` OWNER TO `+pgx.Identifier{string(Owner)}.Sanitize())
		return err
	}); err != nil {
		return fmt.Errorf("prepare database %s: %w", name, err)
	}
	err := s.asSuperuser(ctx, name, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			owner := pgx.Identifier{string(Owner)}.Sanitize()
			for _, stmt := range []string{
				`ALTER SCHEMA public OWNER TO ` + owner,
				`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
			} {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
			// Tables first: a sequence that belongs to a table's column
			// moves with its table, and may not be moved alone.
			for _, kinds := range []string{"rpvmf", "S"} {
				rows, err := tx.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text
					FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE n.nspname = 'public' AND strpos($1, c.relkind::text) > 0 AND c.relowner <> $2::regrole`,
					kinds, string(Owner))
				if err != nil {
					return err
				}
				var rels [][2]string // name, kind
				var rel, kind string
				_, err = pgx.ForEachRow(rows, []any{&rel, &kind}, func() error {
					rels = append(rels, [2]string{rel, kind})
					return nil
				})
				if err != nil {
					return err
				}
				for _, r := range rels {
					what := map[string]string{"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}[r[1]]
					if _, err := tx.Exec(ctx, `ALTER `+what+` `+r[0]+` OWNER TO `+owner); err != nil {
						return fmt.Errorf("hand %s to %s: %w", r[0], Owner, err)
					}
					s.log.Info("pgserver: handed an object to the owner role", "database", name, "object", r[0], "owner", Owner)
				}
			}
			// Functions (a migration's trigger functions), but not an
			// extension's: those stay with the extension's owner.
			rows, err := tx.Query(ctx, `SELECT p.oid::regprocedure::text
				FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = 'public' AND p.proowner <> $1::regrole
				AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`, string(Owner))
			if err != nil {
				return err
			}
			funcs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, f := range funcs {
				if _, err := tx.Exec(ctx, `ALTER FUNCTION `+f+` OWNER TO `+owner); err != nil {
					return fmt.Errorf("hand %s to %s: %w", f, Owner, err)
				}
				s.log.Info("pgserver: handed an object to the owner role", "database", name, "object", f, "owner", Owner)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("prepare database %s: %w", name, err)
	}
	return nil
}

// isDuplicate tells whether err is PostgreSQL's duplicate_object (a role
// created meanwhile by another start).
func isDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42710"
}

// asSuperuser runs f on a connection to database as the superuser.
func (s *Server) asSuperuser(ctx context.Context, database string, f func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, s.SuperuserURL(database))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}
