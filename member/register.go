package member

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/protocol"
)

// ErrRefused wraps registrations the hub refused (bad, expired or used-up
// token, name taken, deregistered): retrying cannot help.
var ErrRefused = errors.New("registration refused")

// register calls the hub's registration endpoints with token: it asks for
// a challenge, signs it with the member's NATS key and registers (each
// call, and so each retry, with a fresh nonce).
func (m *Member) register(ctx context.Context, hub, token string, id identity) (*api.RegisterResponse, error) {
	kp, err := id.keyPair()
	if err != nil {
		return nil, err
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	req := api.RegisterRequest{
		Name: m.cfg.Name, Region: m.cfg.Region, Zone: m.cfg.Zone, Provider: m.cfg.Provider, Labels: m.cfg.Labels,
		NATSPublicKey: pub, MemberVersion: m.cfg.Version, ProtocolVersion: protocol.Version,
	}
	if id.CA != "" && !strings.HasPrefix(hub, "https://") {
		return nil, fmt.Errorf("%w: the hub's CA is pinned, but %s is not an https URL: refusing to send a token in clear", ErrRefused, hub)
	}
	httpClient := m.cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
		if id.CA != "" {
			// Trust exactly the hub the join token names.
			if httpClient, err = client.PinnedHTTPClient(id.CA, 10*time.Second); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrRefused, err)
			}
		}
	}
	resp, err := client.New(hub, token, httpClient).Register(ctx, req, kp)
	if err != nil {
		var fe api.FieldErrors
		if errors.As(err, &fe) || errors.Is(err, client.ErrUntrustedHub) {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		var p *api.Problem
		if errors.As(err, &p) && p.Status >= 400 && p.Status < 500 && p.Status != http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: %s", ErrRefused, p.Error())
		}
		return nil, err
	}
	if resp.NATSUserJWT == "" || len(resp.LeafURLs) == 0 {
		return nil, fmt.Errorf("register: the hub's answer lacks NATS credentials or leaf URLs")
	}
	return resp, nil
}
