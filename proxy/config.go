package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/mandate-proxy/mandate/audit"
)

// AuthMethod is how clients prove who they are.
type AuthMethod string

// The client authentication methods.
const (
	// AuthTrust takes the startup user name as the identity. Loopback and
	// unix-socket listeners only: New refuses it on any other address.
	AuthTrust AuthMethod = "trust"
	// AuthSCRAM checks SCRAM-SHA-256 against a file of verifiers.
	AuthSCRAM AuthMethod = "scram-sha-256"
	// AuthJWT takes a bearer token as the password (over TLS or loopback
	// only); its sub is the subject and its act claim the actor chain.
	AuthJWT AuthMethod = "jwt"
)

// Config is what a Server needs. cmd/mandate fills it from flags and the
// config file; nothing below cmd reads flags or files of its own accord.
type Config struct {
	Listen        []string // TCP addresses, host:port
	UnixSocketDir string   // directory for .s.PGSQL.<port>; empty: none
	UnixPort      int      // port number in the socket file name (default 5432)

	Upstream               string // postgres:// URL (its credentials are mandate's)
	UpstreamConnectTimeout time.Duration
	AllowSuperuserUpstream bool
	// UpstreamPoolSize is how many idle upstream connections are kept for
	// reuse by later sessions (see upstreamPool); 0: none, every session
	// connects anew.
	UpstreamPoolSize    int
	UpstreamIdleTimeout time.Duration // 0: idle pooled connections are kept
	// UpstreamStatementCache is how many rewritten statements (of unnamed
	// Parses and of simple queries) are kept prepared per upstream
	// connection (stmtcache.go, simpleprep.go); 0: none.
	UpstreamStatementCache int
	UpstreamLifetime       time.Duration // 0: connections are reused at any age

	TLS         *tls.Config // nil: SSLRequest is answered 'N'
	RequireTLS  bool        // refuse TCP clients that do not negotiate TLS
	Auth        AuthMethod
	Verifiers   Verifiers // for AuthSCRAM
	AuthTimeout time.Duration

	MaxClientConns           int
	MaxMessageSize           int           // bytes; larger client messages end the session (08P01)
	IdleTimeout              time.Duration // 0: none; idle outside a transaction
	IdleInTransactionTimeout time.Duration // 0: none
	ShutdownTimeout          time.Duration

	// Transparent relays statements unchanged. It must be set explicitly
	// when no Enforcer is configured: nothing is enforced in this mode.
	Transparent bool
	// Enforcer decides every statement; nil only in transparent mode.
	Enforcer *Enforcer
	// Audit receives one record per decision; nil: none are written.
	Audit *audit.Writer

	Pprof bool // serve /debug/pprof/ on the admin listener

	Logger  *slog.Logger
	Metrics *Metrics
}

// withDefaults fills zero values with the documented defaults.
func (c Config) withDefaults() Config {
	if c.UnixPort == 0 {
		c.UnixPort = 5432
	}
	if c.UpstreamConnectTimeout == 0 {
		c.UpstreamConnectTimeout = 10 * time.Second
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 30 * time.Second
	}
	if c.MaxClientConns == 0 {
		c.MaxClientConns = 1000
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 20
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	return c
}

func (c *Config) validate() error {
	if c.UpstreamPoolSize < 0 {
		return errors.New("the upstream pool size cannot be negative")
	}
	if c.UpstreamStatementCache < 0 {
		return errors.New("the upstream statement cache size cannot be negative")
	}
	if c.Upstream == "" {
		return errors.New("no upstream: set --upstream to a postgres:// URL")
	}
	if len(c.Listen) == 0 && c.UnixSocketDir == "" {
		return errors.New("nothing to listen on: set --listen or --unix-socket-dir")
	}
	switch {
	case c.Transparent && c.Enforcer != nil:
		return errors.New("--transparent and policies exclude each other")
	case !c.Transparent && c.Enforcer == nil:
		return errors.New("no policies are configured: start with --transparent to relay without enforcement")
	}
	switch c.Auth {
	case AuthTrust:
		for _, addr := range c.Listen {
			if !loopbackAddr(addr) {
				return fmt.Errorf("auth trust is allowed only on loopback or unix-socket listeners, not %s", addr)
			}
		}
	case AuthJWT:
		if c.Enforcer == nil || c.Enforcer.Verifier == nil {
			return errors.New("auth jwt needs a token verifier (--jwks-file or --jwks-url)")
		}
	case AuthSCRAM:
		if len(c.Verifiers) == 0 {
			return errors.New("auth scram-sha-256 needs a verifier file with at least one user (mandate passwd prints a line)")
		}
	default:
		return fmt.Errorf("unknown auth method %q (want trust, scram-sha-256 or jwt)", c.Auth)
	}
	if c.RequireTLS && c.TLS == nil {
		return errors.New("require TLS needs --tls-cert and --tls-key")
	}
	return nil
}

// loopbackAddr reports whether a listen address binds only loopback.
// A name resolves through the system resolver, so "localhost" counts.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
