package client

import (
	"context"

	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
)

// RegisterChallenge asks the hub for a registration nonce for the cluster
// name, with the client's token (a join or member token).
func (c *Client) RegisterChallenge(ctx context.Context, name string) (*api.RegisterChallenge, error) {
	var ch api.RegisterChallenge
	if err := c.Create(ctx, "clusters/register/challenge", api.RegisterChallengeRequest{Name: name}, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Register registers a member cluster with the client's token: it asks for
// a challenge, signs it with key (the key pair of req.NATSPublicKey) and
// sends the registration. Nonce and Signature of req are set here. A
// request that is invalid before it is sent comes back as api.FieldErrors.
func (c *Client) Register(ctx context.Context, req api.RegisterRequest, key nkeys.KeyPair) (*api.RegisterResponse, error) {
	ch, err := c.RegisterChallenge(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	req.Nonce = ch.Nonce
	if err := req.Sign(key); err != nil {
		return nil, err
	}
	if fe := req.Validate(); fe != nil {
		return nil, fe
	}
	var resp api.RegisterResponse
	if err := c.Create(ctx, "clusters/register", req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
