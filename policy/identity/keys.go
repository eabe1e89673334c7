package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// keySource finds the JWK a token names. Errors other than a missing key are
// reported as a missing key too: either way the token cannot be verified.
type keySource interface {
	keyRead(ctx context.Context, kid string) (jwkset.JWK, error)
	close()
}

// minRSABits refuses keys that are cheap to factor.
const minRSABits = 2048

// publicKeyFor returns the verification key of jwk for alg, refusing keys of
// the wrong type or use so that a token cannot pick how its key is read.
func publicKeyFor(jwk jwkset.JWK, alg string) (crypto.PublicKey, error) {
	m := jwk.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, ErrUnknownKey.with(fmt.Errorf("key use %q", m.USE))
	}
	if m.ALG != "" && m.ALG.String() != alg {
		return nil, ErrUnsupportedAlg.with(fmt.Errorf("key is for %s", m.ALG))
	}
	key := jwk.Key()
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public()
	}
	mismatch := ErrUnsupportedAlg.with(fmt.Errorf("%T key for %s", key, alg))
	switch alg {
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return nil, mismatch
		}
		if k.N.BitLen() < minRSABits {
			return nil, ErrUnknownKey.with(fmt.Errorf("RSA key of %d bits", k.N.BitLen()))
		}
		return k, nil
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve != elliptic.P256() {
			return nil, mismatch
		}
		return k, nil
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, mismatch
		}
		return k, nil
	}
	return nil, mismatch
}

// fileKeys serves a JWKS file and re-reads it when it changes. A stat per
// lookup is cheap next to a signature check; a lookup of an unknown kid also
// forces a re-read (at most once per second of the injected clock) so that
// a rotation that kept size and mtime is not missed.
type fileKeys struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu         sync.Mutex
	keys       map[string]jwkset.JWK
	stat       os.FileInfo
	badStat    os.FileInfo // the broken version last reported, to log it once
	lastForced time.Time
}

const forcedReloadEvery = time.Second

func newFileKeys(path string, now func() time.Time, log *slog.Logger) (*fileKeys, error) {
	f := &fileKeys{path: path, now: now, log: log}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fileKeys) keyRead(_ context.Context, kid string) (jwkset.JWK, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, err := os.Stat(f.path); err == nil && changed(f.stat, st) {
		// Keep serving the last good set if the new file does not parse:
		// an editor's half-written file must not lock everyone out.
		if err := f.reload(); err != nil && (f.badStat == nil || changed(f.badStat, st)) {
			f.badStat = st
			f.log.Warn("JWKS file reload failed; keeping the previous keys", "error", err)
		}
	}
	if k, ok := f.keys[kid]; ok {
		return k, nil
	}
	if now := f.now(); now.Sub(f.lastForced) >= forcedReloadEvery {
		f.lastForced = now
		if err := f.reload(); err == nil {
			if k, ok := f.keys[kid]; ok {
				return k, nil
			}
		}
	}
	return jwkset.JWK{}, jwkset.ErrKeyNotFound
}

func changed(old, cur os.FileInfo) bool {
	return old == nil || !os.SameFile(old, cur) || !old.ModTime().Equal(cur.ModTime()) || old.Size() != cur.Size()
}

// reload reads the file; the caller holds mu (or owns f).
func (f *fileKeys) reload() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("identity: JWKS file: %w", err)
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("identity: JWKS file: %w", err)
	}
	keys, err := parseJWKS(raw)
	if err != nil {
		return fmt.Errorf("identity: JWKS file %s: %w", f.path, err)
	}
	f.keys, f.stat = keys, st
	return nil
}

func (f *fileKeys) close() {}

// parseJWKS reads the public part of each key with a kid. Key types jwkset
// does not support are skipped, as the URL source does.
func parseJWKS(raw []byte) (map[string]jwkset.JWK, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]jwkset.JWK, len(set.Keys))
	for _, m := range set.Keys {
		if m.KID == "" {
			return nil, errors.New("JWKS key without kid")
		}
		if _, dup := keys[m.KID]; dup {
			return nil, fmt.Errorf("duplicate kid %q", m.KID)
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		switch {
		case errors.Is(err, jwkset.ErrUnsupportedKey):
			continue
		case err != nil:
			return nil, fmt.Errorf("kid %q: %w", m.KID, err)
		}
		keys[m.KID] = jwk
	}
	return keys, nil
}

// urlKeys caches a remote JWKS through keyfunc/jwkset: refreshed every
// RefreshInterval in the background, and on an unknown kid at most once per
// UnknownKIDRefresh (a rotation is picked up on first use of the new key,
// while a flood of made-up kids cannot hammer the issuer).
type urlKeys struct {
	storage jwkset.Storage
	cancel  context.CancelFunc
}

func newURLKeys(cfg *Config) (*urlKeys, error) {
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("identity: JWKS URL: %w", err)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		// Over plain HTTP anyone on the path could substitute the keys.
		return nil, fmt.Errorf("identity: JWKS URL must use https (http only for loopback): %s", u.Redacted())
	}
	ctx, cancel := context.WithCancel(context.Background())
	noErrFirst := true // start even if the issuer is briefly down; unknown kids retry
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    cfg.HTTPClient,
		HTTPTimeout:               cfg.FetchTimeout,
		NoErrorReturnFirstHTTPReq: &noErrFirst,
		RefreshInterval:           cfg.RefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(cfg.UnknownKIDRefresh), 1),
		// Also bounds the refresh request itself; a lookup never waits for
		// the limiter longer than a fetch would take.
		RateLimitWaitMax:        cfg.FetchTimeout,
		RefreshErrorHandlerFunc: cfg.refreshErrorHandler,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("identity: JWKS URL: %w", err)
	}
	return &urlKeys{storage: kf.Storage(), cancel: cancel}, nil
}

func (k *urlKeys) keyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	return k.storage.KeyRead(ctx, kid)
}

func (k *urlKeys) close() { k.cancel() }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
