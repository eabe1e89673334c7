package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mandate-proxy/mandate/policy"
)

// Development keys: see the package comment for the rule.
const (
	// DevKeyID is the kid of keys made by GenerateDevKey. Every development
	// kid starts with it.
	DevKeyID = "mandate-dev"
	// DevKeyFile and DevJWKSFile are the names GenerateDevKey writes.
	DevKeyFile  = "mandate-dev-key.pem"
	DevJWKSFile = "mandate-dev-jwks.json"
	// devKeyHeader is the PEM header that marks a development key.
	devKeyHeader = "Mandate-Key-ID"

	defaultMintTTL = time.Hour
)

func isDevKeyID(kid string) bool { return strings.HasPrefix(kid, DevKeyID) }

// DevKey is a development signing key. Only GenerateDevKey and LoadDevKey
// make one, so holding a *DevKey proves the key is marked for development.
type DevKey struct {
	kid  string
	priv ed25519.PrivateKey
}

// KeyID is the kid tokens signed with k carry.
func (k *DevKey) KeyID() string { return k.kid }

// JWKS returns the public JWK Set that verifies k's tokens.
func (k *DevKey) JWKS() ([]byte, error) {
	jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// GenerateDevKey writes a new Ed25519 development key to dir/DevKeyFile
// (mode 0600) and its JWKS to dir/DevJWKSFile. It refuses to overwrite
// either file (fs.ErrExist): a new key would invalidate every minted token.
func GenerateDevKey(dir string) (*DevKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := &DevKey{kid: DevKeyID, priv: priv}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{
		Type:    "PRIVATE KEY",
		Headers: map[string]string{devKeyHeader: k.kid},
		Bytes:   der,
	})
	jwks, err := k.JWKS()
	if err != nil {
		return nil, err
	}
	keyPath, jwksPath := filepath.Join(dir, DevKeyFile), filepath.Join(dir, DevJWKSFile)
	if _, err := os.Stat(jwksPath); err == nil {
		return nil, fmt.Errorf("identity: %s: %w", jwksPath, os.ErrExist)
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(jwksPath, jwks, 0o644); err != nil {
		_ = os.Remove(keyPath)
		return nil, err
	}
	return k, nil
}

func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// ErrNotDevKey is returned by LoadDevKey for a key not marked for
// development.
var ErrNotDevKey = errors.New("identity: not a development key (no Mandate-Key-ID: mandate-dev… PEM header); refusing to mint with it")

// LoadDevKey reads a key written by GenerateDevKey. It refuses any other key,
// however valid, with ErrNotDevKey.
func LoadDevKey(path string) (*DevKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity: %s: no PKCS#8 PEM private key", path)
	}
	kid := block.Headers[devKeyHeader]
	if !isDevKeyID(kid) {
		return nil, ErrNotDevKey
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: %s: development keys are Ed25519, found %T", path, key)
	}
	return &DevKey{kid: kid, priv: priv}, nil
}

// MintClaims is what a development token says.
type MintClaims struct {
	Issuer   string
	Audience []string
	Subject  string
	// Actors in policy.Scope order (closest to the subject first, connected
	// actor last); encoded as nested act claims, agents with AgentPrefix.
	Actors []policy.Actor
	Scopes []string
	// TTL of the token; zero means 1h.
	TTL time.Duration
	// Extra claims (device, risk level, …). They may not replace the
	// claims above.
	Extra map[string]any
	// Now is the issue time; zero means time.Now().
	Now time.Time
}

// Mint signs a development token with key.
func Mint(key *DevKey, c MintClaims) (string, error) {
	if key == nil || key.priv == nil || !isDevKeyID(key.kid) {
		return "", ErrNotDevKey
	}
	if err := validID(c.Subject); err != nil {
		return "", fmt.Errorf("identity: subject: %w", err)
	}
	if c.Issuer == "" || len(c.Audience) == 0 {
		return "", errors.New("identity: issuer and audience are required")
	}
	if c.TTL < 0 {
		return "", errors.New("identity: negative TTL")
	}
	if c.TTL == 0 {
		c.TTL = defaultMintTTL
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	claims := jwt.MapClaims{}
	for k, v := range c.Extra {
		claims[k] = v
	}
	for _, reserved := range []string{"iss", "aud", "sub", "act", "scope", "iat", "nbf", "exp"} {
		if _, ok := claims[reserved]; ok {
			return "", fmt.Errorf("identity: extra claim %q would replace a minted claim", reserved)
		}
	}
	claims["iss"] = c.Issuer
	claims["aud"] = c.Audience
	claims["sub"] = c.Subject
	claims["iat"] = c.Now.Unix()
	claims["nbf"] = c.Now.Unix()
	claims["exp"] = c.Now.Add(c.TTL).Unix()
	if len(c.Scopes) > 0 {
		claims["scope"] = strings.Join(c.Scopes, " ")
	}
	// The connected actor (last) is the outermost act.
	var act map[string]any
	for _, a := range c.Actors {
		if a.Kind != policy.ActorAgent && a.Kind != policy.ActorDelegate {
			return "", fmt.Errorf("identity: actor %q has unknown kind %q", a.ID, a.Kind)
		}
		sub := ActorSub(a)
		if back, err := ParseActor(sub); err != nil || back != a {
			return "", fmt.Errorf("identity: actor %q cannot be encoded unambiguously", a.ID)
		}
		next := map[string]any{"sub": sub}
		if act != nil {
			next["act"] = act
		}
		act = next
	}
	if act != nil {
		claims["act"] = act
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = key.kid
	return t.SignedString(key.priv)
}
