package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SupportedAlgorithms are the only signature algorithms a Verifier accepts.
var SupportedAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// Defaults of Config's zero values.
const (
	DefaultClockSkew         = 30 * time.Second
	DefaultMaxActorDepth     = 8
	DefaultRefreshInterval   = time.Hour
	DefaultUnknownKIDRefresh = 5 * time.Minute
	DefaultFetchTimeout      = 10 * time.Second
	DefaultMaxLifetime       = 24 * time.Hour

	maxClockSkew = 5 * time.Minute
	// MaxTokenLen bounds the work an unauthenticated client can ask for.
	MaxTokenLen = 16 << 10
)

// Config configures a Verifier. Issuer, Audiences and exactly one of JWKSFile
// and JWKSURL are required; zero values of the rest take the defaults above.
type Config struct {
	// Issuer must equal the token's "iss".
	Issuer string
	// Audiences: the token's "aud" must name at least one of them.
	Audiences []string
	// Algorithms narrows SupportedAlgorithms; empty means all of them.
	Algorithms []string
	// ClockSkew tolerated on exp and nbf, both ways. Zero means 30s.
	ClockSkew time.Duration
	// MaxLifetime bounds how far ahead of now a token's exp may lie (plus
	// ClockSkew): a bearer token that stays valid for a century is one a
	// leak never stops. Zero means 24h.
	MaxLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxActorDepth bounds the actor chain. Zero means 8.
	MaxActorDepth int
	// AllowDevKeys accepts tokens signed with a "mandate-dev*" kid
	// (development keys, see GenerateDevKey). Leave false in production.
	AllowDevKeys bool

	// JWKSFile is a local JWKS, re-read when it changes.
	JWKSFile string

	// JWKSURL is a remote JWKS (https, or http on loopback).
	JWKSURL string
	// HTTPClient fetches JWKSURL; nil means http.DefaultClient.
	HTTPClient *http.Client
	// RefreshInterval of the background JWKSURL refresh. Zero means 1h.
	RefreshInterval time.Duration
	// UnknownKIDRefresh is the least time between two refreshes triggered by
	// tokens naming an unknown kid. Zero means 5m.
	UnknownKIDRefresh time.Duration
	// FetchTimeout bounds one JWKS request. Zero means 10s.
	FetchTimeout time.Duration
	// Logger receives JWKS reload failures; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Issuer == "" {
		return errors.New("identity: issuer is required")
	}
	if len(c.Audiences) == 0 || slices.Contains(c.Audiences, "") {
		return errors.New("identity: at least one non-empty audience is required")
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = slices.Clone(SupportedAlgorithms)
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(SupportedAlgorithms, a) {
			return fmt.Errorf("identity: algorithm %q is not supported (only %s)", a, strings.Join(SupportedAlgorithms, ", "))
		}
	}
	switch {
	case c.ClockSkew == 0:
		c.ClockSkew = DefaultClockSkew
	case c.ClockSkew < 0 || c.ClockSkew > maxClockSkew:
		return fmt.Errorf("identity: clock skew %s outside (0, %s]", c.ClockSkew, maxClockSkew)
	}
	switch {
	case c.MaxLifetime == 0:
		c.MaxLifetime = DefaultMaxLifetime
	case c.MaxLifetime < 0:
		return fmt.Errorf("identity: negative token lifetime %s", c.MaxLifetime)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxActorDepth == 0 {
		c.MaxActorDepth = DefaultMaxActorDepth
	}
	if c.MaxActorDepth < 0 {
		return errors.New("identity: negative actor depth")
	}
	if (c.JWKSFile == "") == (c.JWKSURL == "") {
		return errors.New("identity: exactly one of JWKS file and JWKS URL is required")
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.UnknownKIDRefresh <= 0 {
		c.UnknownKIDRefresh = DefaultUnknownKIDRefresh
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func (c *Config) refreshErrorHandler(u string) func(context.Context, error) {
	redacted := u
	if parsed, err := url.Parse(u); err == nil {
		redacted = parsed.Redacted()
	}
	return func(ctx context.Context, err error) {
		c.Logger.WarnContext(ctx, "JWKS refresh failed", "url", redacted, "error", err)
	}
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	keys   keySource
	parser *jwt.Parser
}

// NewVerifier checks cfg and loads the key set: a JWKS file must parse now,
// a JWKS URL is fetched once and retried on demand if the issuer is down.
func NewVerifier(cfg Config) (*Verifier, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var (
		keys keySource
		err  error
	)
	if cfg.JWKSFile != "" {
		keys, err = newFileKeys(cfg.JWKSFile, cfg.Now, cfg.Logger)
	} else {
		keys, err = newURLKeys(&cfg)
	}
	if err != nil {
		return nil, err
	}
	return &Verifier{
		cfg:  cfg,
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(), // an iat in the future is refused like an nbf
			jwt.WithLeeway(cfg.ClockSkew),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

// Close stops the background JWKS refresh, if any.
func (v *Verifier) Close() { v.keys.close() }

// Verify is VerifyContext without cancellation.
func (v *Verifier) Verify(token string) (Identity, error) {
	return v.VerifyContext(context.Background(), token)
}

// VerifyContext checks token and returns the identity it carries, or an
// *Error. ctx bounds a JWKS refresh triggered by an unknown kid.
func (v *Verifier) VerifyContext(ctx context.Context, token string) (Identity, error) {
	if token == "" || len(token) > MaxTokenLen {
		return Identity{}, ErrMalformed
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		return Identity{}, classify(tok, err, v.cfg.Algorithms)
	}
	if err := saneTimes(claims); err != nil {
		return Identity{}, err
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil &&
		exp.After(v.cfg.Now().Add(v.cfg.MaxLifetime+v.cfg.ClockSkew)) {
		return Identity{}, ErrTooLongLived
	}
	return identityFromClaims(claims, v.cfg.MaxActorDepth)
}

// saneTimes refuses a registered time claim outside the years 1970 to
// 9999: jwt reads a larger number into a time through an int64 that wraps,
// so an nbf or iat of 1e19 passed for one in the past.
func saneTimes(claims jwt.MapClaims) error {
	for _, k := range []string{"exp", "nbf", "iat"} {
		v, ok := claims[k]
		if !ok {
			continue
		}
		var f float64
		switch n := v.(type) {
		case float64:
			f = n
		case json.Number:
			var err error
			if f, err = n.Float64(); err != nil {
				return ErrMalformed.with(err)
			}
		default:
			return ErrMalformed.with(fmt.Errorf("%s is not a number", k))
		}
		if !(f >= 0 && f <= maxNumericDate) {
			return ErrMalformed.with(fmt.Errorf("%s %g is out of range", k, f))
		}
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z in seconds since the epoch.
const maxNumericDate = 253402300799

// keyFor runs after the parser has checked alg against the allow-list.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not implement must fail.
		return nil, ErrMalformed.with(errors.New("crit header"))
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, ErrUnknownKey.with(errors.New("token has no kid"))
	}
	if !v.cfg.AllowDevKeys && isDevKeyID(kid) {
		return nil, ErrUnknownKey.with(errors.New("development keys are not allowed"))
	}
	jwk, err := v.keys.keyRead(ctx, kid)
	if err != nil {
		return nil, ErrUnknownKey.with(err)
	}
	return publicKeyFor(jwk, t.Method.Alg())
}
