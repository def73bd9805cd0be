package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ExternalConfig configures a hub that uses an existing NATS cluster.
type ExternalConfig struct {
	// URLs of the cluster's servers.
	URLs []string
	// Seeds and Identities as in Config.
	Seeds      Seeds
	Identities Identities
	Logger     *slog.Logger
}

// Connect uses an existing NATS cluster instead of an embedded server.
// The cluster must run in operator mode with this hub's operator and a
// full account resolver (see ServerConfig); the hub pushes the ATOLL
// account's JWT and every member account (with its revocations) to it
// through the system account.
func Connect(ctx context.Context, cfg ExternalConfig) (*Bus, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("connect to nats: no URLs")
	}
	auth, err := newAuthority(cfg.Seeds)
	if err != nil {
		return nil, err
	}
	b := newBus(auth, cfg.Identities)
	servers := strings.Join(cfg.URLs, ",")
	sysJWT, sysSeed, err := signSystemUser(auth)
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if b.sys, err = nats.Connect(servers, append(opts, nats.Name("atoll-hub-system"), nats.UserJWTAndSeed(sysJWT, sysSeed))...); err != nil {
		return nil, fmt.Errorf("connect to nats %s as the system account: %w (is the cluster configured with 'atoll hub nats-config'?)", servers, err)
	}
	_, token, err := auth.accountJWT(cfg.Identities.legacy())
	if err != nil {
		b.Close()
		return nil, err
	}
	if err := pushClaims(b.sys, token); err != nil {
		b.Close()
		return nil, fmt.Errorf("push the ATOLL account to nats: %w", err)
	}
	for _, c := range cfg.Identities.clusters() {
		if err := b.pushMember(c); err != nil {
			b.Close()
			return nil, fmt.Errorf("push the account of member %q to nats: %w", c, err)
		}
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	userJWT, err := auth.userJWT("atoll-hub", pub)
	if err != nil {
		b.Close()
		return nil, err
	}
	if b.conn, err = nats.Connect(servers, append(opts, nats.Name("atoll-hub"), nats.UserJWTAndSeed(userJWT, string(seed)))...); err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", servers, err)
	}
	if b.beats, err = nats.Connect(servers, append(opts, nats.Name("atoll-hub-heartbeats"), nats.UserJWTAndSeed(userJWT, string(seed)))...); err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", servers, err)
	}
	if b.req, err = newRequester(b.conn); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// signSystemUser signs a user of the system account for pushing claims.
func signSystemUser(a *authority) (string, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	uc := newUserClaims(pub, "atoll-hub-system")
	token, err := uc.Encode(a.system)
	return token, string(seed), err
}

// pushClaims sends an account JWT to the cluster's resolver and checks
// that it was taken.
func pushClaims(sys *nats.Conn, token string) error {
	msg, err := sys.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(token), 5*time.Second)
	if err != nil {
		return fmt.Errorf("update account claims: %w", err)
	}
	var resp struct {
		Data *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("update account claims: unexpected answer %q", msg.Data)
	}
	if resp.Error != nil {
		return fmt.Errorf("update account claims: %s", resp.Error.Description)
	}
	return nil
}

// ServerConfig renders what every server of an existing NATS cluster must
// share to serve Atoll, for each server's configuration to include: this
// hub's operator, the system account, and the JWTs of both accounts to
// preload into the resolver (the hubs push the members' accounts). It holds no block a server's own
// configuration has (nats-server's configuration replaces a repeated key
// as a whole, so an included leafnodes or jetstream block would be lost,
// or would drop the server's own settings); the per-server part it needs
// is in the comment it starts with, and in deploy/nats/README.md.
func ServerConfig(seeds Seeds, ids Identities) (string, error) {
	a, err := newAuthority(seeds)
	if err != nil {
		return "", err
	}
	opJWT, err := a.operatorClaims.Encode(a.operator)
	if err != nil {
		return "", err
	}
	sysJWT, err := a.systemAccountJWT()
	if err != nil {
		return "", err
	}
	_, accJWT, err := a.accountJWT(ids.legacy())
	if err != nil {
		return "", err
	}
	preload := map[string]string{a.systemPub: sysJWT, a.accountPub: accJWT}
	keys := make([]string, 0, len(preload))
	for k := range preload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(serverConfigHeader)
	fmt.Fprintf(&b, "operator: %s\n", opJWT)
	fmt.Fprintf(&b, "system_account: %s\n", a.systemPub)
	fmt.Fprintf(&b, "resolver_preload: {\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, preload[k])
	}
	fmt.Fprintf(&b, "}\n")
	return b.String(), nil
}

// serverConfigHeader starts ServerConfig's output: how a server uses it.
const serverConfigHeader = `# nats-server configuration for Atoll, made by 'atoll hub nats-config'.
# Every server of the cluster includes this file; it holds the hub's
# operator, system account and account JWTs, the same on every server.
# Each server's own configuration adds the rest, after the include:
#
#   include ./atoll-nats.conf
#   server_name: nats-a                 # unique in the cluster
#   listen: 0.0.0.0:4222
#   cluster {
#     name: atoll
#     listen: 0.0.0.0:6222
#     routes: [nats://nats-a:6222, nats://nats-b:6222, nats://nats-c:6222]
#   }
#   leafnodes { listen: 0.0.0.0:7422 }  # members connect here (--leaf-advertise)
#   jetstream { domain: hub, store_dir: /data/jetstream }
#   resolver {
#     type: full                        # the hub pushes every revocation
#     dir: /data/atoll-jwt
#     allow_delete: false
#     interval: "2m"
#   }
#
`
