package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/mandate-proxy/mandate/policy/identity"
	"github.com/mandate-proxy/mandate/rewrite"
	"go.yaml.in/yaml/v4"
)

// serveConfig is `mandate serve`'s configuration: the YAML file's keys, each
// also a flag (flags win). The yaml tag is the key; the flag is the same
// name with dashes.
type serveConfig struct {
	Listen                   []string      `yaml:"listen"`
	UnixSocketDir            string        `yaml:"unix_socket_dir"`
	UnixPort                 int           `yaml:"unix_port"`
	Upstream                 string        `yaml:"upstream"`
	UpstreamConnectTimeout   time.Duration `yaml:"upstream_connect_timeout"`
	AllowSuperuserUpstream   bool          `yaml:"allow_superuser_upstream"`
	UpstreamPoolSize         int           `yaml:"upstream_pool_size"`
	UpstreamIdleTimeout      time.Duration `yaml:"upstream_idle_timeout"`
	UpstreamStatementCache   int           `yaml:"upstream_statement_cache"`
	UpstreamLifetime         time.Duration `yaml:"upstream_lifetime"`
	AdminListen              string        `yaml:"admin_listen"`
	AdminPprof               bool          `yaml:"admin_pprof"`
	TLSCert                  string        `yaml:"tls_cert"`
	TLSKey                   string        `yaml:"tls_key"`
	TLSRequired              bool          `yaml:"tls_required"`
	Auth                     string        `yaml:"auth"`
	PasswdFile               string        `yaml:"passwd_file"`
	AuthTimeout              time.Duration `yaml:"auth_timeout"`
	MaxClientConns           int           `yaml:"max_client_conns"`
	MaxMessageSize           int           `yaml:"max_message_size"`
	IdleTimeout              time.Duration `yaml:"idle_timeout"`
	IdleInTransactionTimeout time.Duration `yaml:"idle_in_transaction_timeout"`
	ShutdownTimeout          time.Duration `yaml:"shutdown_timeout"`
	Transparent              bool          `yaml:"transparent"`
	LogFormat                string        `yaml:"log_format"`
	LogLevel                 string        `yaml:"log_level"`

	// Decisions: Cedar policies, masks, live state, identity, audit.
	PolicyDir            string        `yaml:"policy_dir"`
	CedarSchema          string        `yaml:"cedar_schema"`
	Entities             string        `yaml:"entities"`
	Masks                string        `yaml:"masks"`
	Store                string        `yaml:"store"`
	StoreMaxStaleness    time.Duration `yaml:"store_max_staleness"`
	StoreRefreshInterval time.Duration `yaml:"store_refresh_interval"`
	JWTIssuer            string        `yaml:"jwt_issuer"`
	JWTAudience          []string      `yaml:"jwt_audience"`
	JWKSFile             string        `yaml:"jwks_file"`
	JWKSURL              string        `yaml:"jwks_url"`
	JWTAllowDevKeys      bool          `yaml:"jwt_allow_dev_keys"`
	JWTMaxLifetime       time.Duration `yaml:"jwt_max_lifetime"`
	DevKey               string        `yaml:"dev_key"`
	AuditLog             string        `yaml:"audit_log"`
	AssumePrincipals     []string      `yaml:"assume_principals"`
	PolicyReloadInterval time.Duration `yaml:"policy_reload_interval"`
	AllowFunctions       []string      `yaml:"allow_functions"`
	NotifyChannels       []string      `yaml:"notify_channels"`
	Fence                string        `yaml:"fence"`
	CatalogRefresh       time.Duration `yaml:"catalog_refresh_interval"`
	CatalogNotify        bool          `yaml:"catalog_notify"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:                 []string{"127.0.0.1:6432"},
		UnixPort:               6432,
		UpstreamConnectTimeout: 10 * time.Second,
		UpstreamPoolSize:       20,
		UpstreamIdleTimeout:    5 * time.Minute,
		UpstreamStatementCache: 100,
		UpstreamLifetime:       time.Hour,
		AdminListen:            "127.0.0.1:9187",
		Auth:                   "trust",
		AuthTimeout:            30 * time.Second,
		MaxClientConns:         1000,
		MaxMessageSize:         64 << 20,
		ShutdownTimeout:        30 * time.Second,
		LogFormat:              "text",
		LogLevel:               "info",
		StoreMaxStaleness:      30 * time.Second,
		JWTMaxLifetime:         identity.DefaultMaxLifetime,
		StoreRefreshInterval:   5 * time.Second,
		JWTIssuer:              "mandate-dev",
		JWTAudience:            []string{"mandate"},
		PolicyReloadInterval:   2 * time.Second,
		CatalogRefresh:         time.Minute,
		CatalogNotify:          true,
		Fence:                  "auto",
	}
}

// bindServeFlags declares serve's flags on fs with c's current values as
// defaults, so parsing after loading the file lets flags override it.
func bindServeFlags(fs *flag.FlagSet, c *serveConfig) *string {
	configPath := fs.String("config", "", "YAML config file; flags override its keys")
	fs.Var(&listFlag{dst: &c.Listen}, "listen", "TCP address to accept clients on, host:port (repeat or comma-separate for several)")
	fs.StringVar(&c.UnixSocketDir, "unix-socket-dir", c.UnixSocketDir, "directory for a unix socket .s.PGSQL.<unix-port> (psql -h DIR); empty: none")
	fs.IntVar(&c.UnixPort, "unix-port", c.UnixPort, "port number in the unix socket's file name")
	fs.StringVar(&c.Upstream, "upstream", c.Upstream, "upstream PostgreSQL as a postgres:// URL; its credentials are mandate's (SCRAM, MD5, password or trust; TLS per sslmode)")
	fs.DurationVar(&c.UpstreamConnectTimeout, "upstream-connect-timeout", c.UpstreamConnectTimeout, "time allowed to open an upstream connection")
	fs.IntVar(&c.UpstreamPoolSize, "upstream-pool-size", c.UpstreamPoolSize, "idle upstream connections kept for later sessions with the same database and startup parameters (reset with DISCARD ALL); 0: a new connection per session")
	fs.DurationVar(&c.UpstreamIdleTimeout, "upstream-idle-timeout", c.UpstreamIdleTimeout, "close pooled upstream connections idle this long; 0: never")
	fs.IntVar(&c.UpstreamStatementCache, "upstream-statement-cache", c.UpstreamStatementCache, "rewritten statements kept prepared per upstream connection, so that clients sending unnamed statements (Parse each time) or simple queries differing only in their numbers do not pay for planning the rewrite again; 0: none")
	fs.DurationVar(&c.UpstreamLifetime, "upstream-lifetime", c.UpstreamLifetime, "do not reuse upstream connections older than this; 0: no limit")
	fs.BoolVar(&c.AllowSuperuserUpstream, "allow-superuser-upstream", c.AllowSuperuserUpstream, "relay through a superuser upstream role (it bypasses all enforcement; tests only)")
	fs.StringVar(&c.AdminListen, "admin-listen", c.AdminListen, "HTTP address for /metrics, /healthz and /readyz; empty: none")
	fs.BoolVar(&c.AdminPprof, "admin-pprof", c.AdminPprof, "also serve Go's profiler under /debug/pprof/ on --admin-listen")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate for client TLS (SSLRequest)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.BoolVar(&c.TLSRequired, "tls-required", c.TLSRequired, "refuse TCP clients that do not negotiate TLS (unix sockets are exempt)")
	fs.StringVar(&c.Auth, "auth", c.Auth, "client authentication: trust (loopback and unix socket only), scram-sha-256, or jwt (a bearer token as the password, over TLS or loopback)")
	fs.StringVar(&c.PasswdFile, "passwd-file", c.PasswdFile, "file of user:SCRAM-SHA-256$… verifiers (see mandate passwd)")
	fs.DurationVar(&c.AuthTimeout, "auth-timeout", c.AuthTimeout, "time a client has to complete startup and authentication")
	fs.IntVar(&c.MaxClientConns, "max-client-conns", c.MaxClientConns, "client connections served at once; more are refused with SQLSTATE 53300")
	fs.IntVar(&c.MaxMessageSize, "max-message-size", c.MaxMessageSize, "largest client message in bytes; larger ones end the session with SQLSTATE 08P01")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close client sessions idle this long outside a transaction (57P05); 0: never")
	fs.DurationVar(&c.IdleInTransactionTimeout, "idle-in-transaction-timeout", c.IdleInTransactionTimeout, "close client sessions idle this long inside a transaction (25P03); 0: never")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM, time given to statements in flight before connections are closed")
	fs.BoolVar(&c.Transparent, "transparent", c.Transparent, "relay statements without enforcing any policy (required until policies are configured)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	bindDecisionFlags(fs, c)
	return configPath
}

// bindDecisionFlags declares the flags shared by serve and the commands
// that read or change decisions (explain, check, delegate, consent, agent,
// token, migrate).
func bindDecisionFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.StringVar(&c.PolicyDir, "policy-dir", c.PolicyDir, "directory of Cedar policies (*.cedar), each with an @id")
	fs.StringVar(&c.CedarSchema, "cedar-schema", c.CedarSchema, "Cedar schema file the policies are validated against")
	fs.StringVar(&c.Entities, "entities", c.Entities, "Cedar entities file (users, groups, agents), JSON")
	fs.StringVar(&c.Masks, "masks", c.Masks, "column masks file, YAML")
	fs.StringVar(&c.Store, "store", c.Store, "policy store (delegations, consents, agents) as a postgres:// URL; default: --upstream")
	fs.DurationVar(&c.StoreMaxStaleness, "store-max-staleness", c.StoreMaxStaleness, "refuse statements (57P03) when the policy store has not been read for this long")
	fs.DurationVar(&c.StoreRefreshInterval, "store-refresh-interval", c.StoreRefreshInterval, "re-read the policy store this often, in case a notification was missed")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", c.JWTIssuer, "required iss of bearer tokens")
	fs.Var(&listFlag{dst: &c.JWTAudience}, "jwt-audience", "accepted aud of bearer tokens (repeat or comma-separate)")
	fs.StringVar(&c.JWKSFile, "jwks-file", c.JWKSFile, "JWKS file with the token signing keys (re-read on change)")
	fs.StringVar(&c.JWKSURL, "jwks-url", c.JWKSURL, "JWKS URL with the token signing keys (cached, refreshed on rotation)")
	fs.BoolVar(&c.JWTAllowDevKeys, "jwt-allow-dev-keys", c.JWTAllowDevKeys, "accept tokens signed with a mandate development key (demo only)")
	fs.DurationVar(&c.JWTMaxLifetime, "jwt-max-lifetime", c.JWTMaxLifetime, "refuse bearer tokens whose exp lies further ahead than this")
	fs.StringVar(&c.DevKey, "dev-key", c.DevKey, "development signing key (PEM) used by mandate token")
	fs.StringVar(&c.AuditLog, "audit-log", c.AuditLog, "audit log file (hash-chained JSON lines); - for standard output")
	fs.Var(&listFlag{dst: &c.AssumePrincipals}, "assume-principals", "login users (e.g. a pooled application) allowed to name the end user with SET mandate.token")
	fs.DurationVar(&c.PolicyReloadInterval, "policy-reload-interval", c.PolicyReloadInterval, "check the policy files for changes this often (SIGHUP reloads at once)")
	fs.DurationVar(&c.CatalogRefresh, "catalog-refresh-interval", c.CatalogRefresh, "re-read the upstream catalog this often (it is also re-read after DDL)")
	fs.BoolVar(&c.CatalogNotify, "catalog-notify", c.CatalogNotify, "LISTEN on mandate_catalog and re-read the catalog when an event trigger announces DDL run directly on PostgreSQL (docs/deploy.md); one more upstream connection")
	fs.Var(&listFlag{dst: &c.AllowFunctions}, "allow-functions", "functions to allow besides mandate's built-in allow-list, as schema.name (vet them: a function sees what it is given and may leak it)")
	fs.StringVar(&c.Fence, "fence", c.Fence, "when protected tables are read through a planner fence (OFFSET 0) that no user expression crosses: auto (when a qual is not leakproof; indexes serve the rest), always (every statement, with copies of simple comparisons inside for index scans; safer, may scan whole filtered tables) or strict (every statement, nothing copied: no user expression ever sees a hidden row; only the filter's quals use indexes)")
	fs.Var(&listFlag{dst: &c.NotifyChannels}, "notify-channels", "channels clients may LISTEN and NOTIFY on (a trailing * matches a prefix); none by default: no policy governs a notification's payload")
}

// rewriteOptions are the rewriter's options from the configuration.
func (c *serveConfig) rewriteOptions() (*rewrite.Options, error) {
	fns := rewrite.DefaultFunctions()
	for _, f := range c.AllowFunctions {
		fns[strings.TrimPrefix(f, "pg_catalog.")] = true
	}
	o := &rewrite.Options{Functions: fns, Channels: c.NotifyChannels}
	switch c.Fence {
	case "auto", "":
	case "always":
		o.AlwaysFence = true
	case "strict":
		o.AlwaysFence, o.StrictFence = true, true
	default:
		return nil, fmt.Errorf("fence: unknown value %q (want auto, always or strict)", c.Fence)
	}
	return o, nil
}

// storeURL is the policy store's URL: --store, else the upstream.
func (c *serveConfig) storeURL() (string, error) {
	switch {
	case c.Store != "":
		return c.Store, nil
	case c.Upstream != "":
		return c.Upstream, nil
	}
	return "", errors.New("no policy store: set --store (or --upstream) to a postgres:// URL")
}

// loadCommandConfig is loadServeConfig for the other commands: it returns
// the config and the remaining arguments. Commands declare their own
// flags on fs before calling it.
func loadCommandConfig(fs *flag.FlagSet, args []string) (serveConfig, error) {
	cfg := defaultServeConfig()
	configPath := fs.String("config", "", "YAML config file (the one mandate serve uses); flags override it")
	fs.StringVar(&cfg.Upstream, "upstream", "", "upstream PostgreSQL URL (used as the policy store when --store is not set)")
	bindDecisionFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *configPath == "" {
		return cfg, nil
	}
	fromFile := defaultServeConfig()
	if err := readYAMLFile(*configPath, &fromFile); err != nil {
		return cfg, err
	}
	// Flags given on the command line win over the file: replay them.
	fs2 := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs2.SetOutput(new(bytes.Buffer))
	fs2.StringVar(&fromFile.Upstream, "upstream", fromFile.Upstream, "")
	bindDecisionFlags(fs2, &fromFile)
	var replay []string
	fs.Visit(func(f *flag.Flag) {
		if fs2.Lookup(f.Name) != nil {
			replay = append(replay, "-"+f.Name+"="+f.Value.String())
		}
	})
	if err := fs2.Parse(replay); err != nil {
		return cfg, err
	}
	return fromFile, nil
}

// listFlag is a repeatable, comma-separable string list flag; its first
// use on the command line replaces the default or the file's list.
type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.dst = append(*l.dst, s)
		}
	}
	return nil
}

// loadServeConfig parses args: --config first, then the file, then every
// flag over it.
func loadServeConfig(args []string) (serveConfig, error) {
	cfg := defaultServeConfig()
	probe := flag.NewFlagSet("serve", flag.ContinueOnError)
	probe.SetOutput(new(bytes.Buffer))
	scratch := cfg
	path := bindServeFlags(probe, &scratch)
	if err := probe.Parse(args); err != nil {
		return cfg, err
	}
	if *path != "" {
		if err := readYAMLFile(*path, &cfg); err != nil {
			return cfg, err
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(new(bytes.Buffer))
	bindServeFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

var yamlLineErr = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// readYAMLFile decodes a YAML file strictly: an unknown key is an error
// that names the key and its line.
func readYAMLFile(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) { // an empty file is an empty config
		msg := yamlLineErr.ReplaceAllString(err.Error(), `line $1: unknown key "$2"`)
		msg = strings.TrimPrefix(msg, "yaml: ")
		return fmt.Errorf("config %s: %s", path, msg)
	}
	return nil
}
