package hub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/telemetry"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestMemberPinsTheHub: over TLS, a member trusts exactly the hub whose CA
// fingerprint its join token carries, for the API and the leaf link; a
// token with another fingerprint is refused before anything is sent.
func TestMemberPinsTheHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir, "hub")
	tlsCfg, fingerprint, err := hub.LoadTLS(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.NewDatabase(t)
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: dbURL, MaxConns: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	seeds, _ := natsbus.NewSeeds()
	bus, err := natsbus.Start(ctx, natsbus.Config{Seeds: seeds, DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", LeafTLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	if _, err := tokens.Bootstrap(ctx, store, t.TempDir(), adminSecret); err != nil {
		t.Fatal(err)
	}
	tel, _ := telemetry.Setup(ctx, "t", "t")
	s := hub.New(hub.Config{Store: store, Telemetry: tel, Bus: bus, CAFingerprint: fingerprint})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = tlsCfg
	ts.StartTLS()
	t.Cleanup(func() { s.Stop(); ts.Close() })

	pinned, err := client.PinnedHTTPClient(fingerprint, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	admin := client.New(ts.URL, adminSecret, pinned)
	var tok api.Token
	if err := admin.Create(ctx, "tokens", api.Token{Metadata: api.ObjectMeta{Name: "j"}, Spec: api.TokenSpec{Type: api.TokenJoin}}, &tok); err != nil {
		t.Fatal(err)
	}
	jt, err := api.ParseJoinToken(tok.Status.Secret)
	if err != nil || jt.CA != fingerprint || !strings.HasPrefix(jt.Hub, "https://") {
		t.Fatalf("join token over TLS must carry https and the CA fingerprint %s: %+v", fingerprint, jt)
	}

	// The right hub: the member joins, its leaf link (TLS) comes up and
	// its heartbeats arrive.
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := member.New(member.Config{JoinToken: tok.Status.Secret, Name: "secure", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	deadline := time.After(15 * time.Second)
	for m.LastAck().IsZero() {
		select {
		case err := <-done:
			t.Fatalf("member stopped: %v", err)
		case <-deadline:
			t.Fatal("no heartbeat ack over the TLS leaf link within 15s")
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	<-done

	// Another hub certificate: a token naming it is refused at once.
	otherCert, otherKey := selfSigned(t, dir, "impostor")
	_, otherFP, err := hub.LoadTLS(otherCert, otherKey, "")
	if err != nil {
		t.Fatal(err)
	}
	forged := api.JoinToken{Hub: jt.Hub, CA: otherFP, Secret: jt.Secret}.Encode()
	m2, err := member.New(member.Config{JoinToken: forged, Name: "fooled", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	err = m2.Run(rctx)
	if !errors.Is(err, member.ErrRefused) || !errors.Is(err, client.ErrUntrustedHub) {
		t.Fatalf("a member whose token pins another CA: want ErrRefused/ErrUntrustedHub, got %v", err)
	}
	var c api.Cluster
	if err := admin.Get(ctx, "clusters", "fooled", &c); err == nil {
		t.Error("the fooled member registered anyway")
	}
}
