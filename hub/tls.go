package hub

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/atollhq/atoll/api/client"
)

// LoadTLS reads the hub's certificate and key, and optionally the CA that
// issued it. It returns the server TLS configuration (for the API and the
// NATS leafnode listener) and the fingerprint members pin: the CA's when
// caFile is given (its certificate is then appended to the chain the hub
// presents, so members can find it), else the last certificate of the
// chain (a self-signed certificate is its own CA).
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, string, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load TLS certificate: %w", err)
	}
	pinned := pair.Certificate[len(pair.Certificate)-1]
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("load TLS CA: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, "", errors.New("load TLS CA: " + caFile + " holds no PEM certificate")
		}
		pinned = block.Bytes
		pair.Certificate = append(pair.Certificate, block.Bytes)
	}
	ca, err := x509.ParseCertificate(pinned)
	if err != nil {
		return nil, "", fmt.Errorf("load TLS CA: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, client.Fingerprint(ca), nil
}
