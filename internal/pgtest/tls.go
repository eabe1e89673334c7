package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certificate files, relative to the data directory.
const (
	certFile = "server.crt"
	keyFile  = "server.key"
)

// writeCertificate gives the cluster a self-signed certificate. It is its
// own CA, so clients can verify it with sslrootcert=CertFile().
func (c *Cluster) writeCertificate() error {
	certPEM, keyPEM, err := SelfSignedCert()
	if err != nil {
		return err
	}
	if err := c.writeDataFile(certFile, string(certPEM)); err != nil {
		return err
	}
	return c.writeDataFile(keyFile, string(keyPEM))
}

// SelfSignedCert returns a PEM certificate and PKCS#8 key for localhost,
// 127.0.0.1 and ::1, valid for ten years and its own CA: for test and
// demo servers, never for production.
func SelfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pgtest: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("pgtest: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"mandate pgtest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pgtest: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pgtest: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// WriteSelfSignedCert writes SelfSignedCert's pair into dir as cert.pem and
// key.pem (0600) and returns their paths.
func WriteSelfSignedCert(dir string) (certPath, keyPath string, err error) {
	certPEM, keyPEM, err := SelfSignedCert()
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, os.WriteFile(keyPath, keyPEM, 0o600)
}

// CertFile is the server certificate (PEM) when Options.SSL is set, for
// sslrootcert with sslmode=verify-full; "" otherwise.
func (c *Cluster) CertFile() string {
	if !c.opts.SSL {
		return ""
	}
	return filepath.Join(c.dataDir, certFile)
}
