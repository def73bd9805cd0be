// Package natsbus is the hub's NATS: an embedded nats-server with
// JetStream and a leafnode listener for members, the hub's own connection
// to it, and the identities members connect with.
//
// # Identities
//
// The server runs in operator (JWT) mode. The hub keeps three signing
// keys, shared through PostgreSQL by every hub: an operator, the system
// account and the ATOLL account the hubs use. Each member has an account
// of its own, whose key every hub derives from the ATOLL account's seed
// and the cluster name. ATOLL exports atoll.m.*.> as a service and
// atoll.h.*.> as a stream; a member's account imports only its own
// atoll.m.<cluster>.> and atoll.h.<cluster>.>, has no JetStream and exports
// nothing. So what a member sends reaches the hubs only under its own
// space, even on subjects nats-server does not check on a leaf ($JS.ACK.>,
// _R_.>): those land in the member's account, where nothing listens.
//
// Each member generates its own user key pair and sends only the public
// key when it registers; the hub signs a user JWT for it in the member's
// account whose permissions allow publishing under atoll.m.<cluster>.>
// only, and receiving only atoll.h.<cluster>.> and its reply inbox. The
// same permissions hold on the member's leafnode connection (they bound
// what the leaf may send in and what interest it may express) and on a
// plain client connection.
//
// Revoking a member adds its public key to its account's revocation list
// and pushes the new account JWT to the running server, which drops the
// member's connections at once and refuses new ones. The list is kept in
// PostgreSQL so a restarted hub revokes the same keys.
//
// It owns the hub's NATS server, its keys and member identities. It must
// not decide what is sent (the controllers do) or read the store beyond
// its keys and revocations.
package natsbus
