package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/identity"
	"github.com/mandate-proxy/mandate/policy/store"
	"github.com/mandate-proxy/mandate/proxy"
)

// enforcement is what an enforcing proxy runs besides the relay.
type enforcement struct {
	enforcer *proxy.Enforcer
	audit    *audit.Writer
	closers  []func()
}

func (e *enforcement) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// policySources are the policy files named by the configuration.
func (c *serveConfig) policySources() (policy.Sources, error) {
	if c.PolicyDir == "" || c.CedarSchema == "" || c.Entities == "" {
		return policy.Sources{}, errors.New("no policies configured: set --policy-dir, --cedar-schema and --entities (and usually --masks), or start with --transparent to relay without enforcement")
	}
	return policy.Sources{PolicyDir: c.PolicyDir, Schema: c.CedarSchema, Entities: c.Entities, Masks: c.Masks}, nil
}

// verifier builds the bearer-token verifier, or nil when no keys are set.
func (c *serveConfig) verifier(log *slog.Logger, now func() time.Time) (*identity.Verifier, error) {
	if c.JWKSFile == "" && c.JWKSURL == "" {
		return nil, nil
	}
	return identity.NewVerifier(identity.Config{
		Issuer: c.JWTIssuer, Audiences: c.JWTAudience, AllowDevKeys: c.JWTAllowDevKeys, MaxLifetime: c.JWTMaxLifetime,
		JWKSFile: c.JWKSFile, JWKSURL: c.JWKSURL, Logger: log, Now: now,
	})
}

// migrateDB applies the policy store migrations (which also create the
// mask helpers) and makes sure every hash-mask key exists.
func migrateDB(ctx context.Context, url string, maskKeys []string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := store.Migrate(ctx, conn); err != nil {
		return err
	}
	return store.EnsureMaskKeys(ctx, conn, maskKeys)
}

// buildEnforcement loads the policies, migrates and watches the policy
// store, loads the catalog and opens the audit log. The background loops
// run until ctx ends. With oneShot (mandate explain) it reads the store and
// the catalog once and starts, migrates and opens nothing else.
func buildEnforcement(ctx context.Context, c serveConfig, log *slog.Logger, metrics *proxy.Metrics, oneShot bool) (*enforcement, error) {
	out := &enforcement{}
	fail := func(err error) (*enforcement, error) { out.close(); return nil, err }

	src, err := c.policySources()
	if err != nil {
		return nil, err
	}
	storeURL, err := c.storeURL()
	if err != nil {
		return nil, err
	}
	snap, err := policy.Load(src)
	if err != nil {
		return nil, err
	}
	keys := snap.Masks().HashKeys()
	for _, url := range uniq(storeURL, c.Upstream) {
		if oneShot {
			break
		}
		if err := migrateDB(ctx, url, keys); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", redactURL(url), err)
		}
	}

	connCfg, err := pgx.ParseConfig(storeURL)
	if err != nil {
		return nil, fmt.Errorf("store URL: %w", err)
	}
	state, err := store.NewState(store.Config{
		ConnConfig: connCfg, RefreshInterval: c.StoreRefreshInterval, MaxStaleness: c.StoreMaxStaleness,
		OnNotify: metrics.ObserveNotifyLag,
		OnError:  func(err error) { log.Warn("policy store", "err", err) },
	})
	if err != nil {
		return nil, err
	}
	out.closers = append(out.closers, state.Close)
	if err := state.Load(ctx); err != nil {
		out.close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" {
			return nil, fmt.Errorf("the policy store at %s has no mandate schema: run mandate migrate", redactURL(storeURL))
		}
		return nil, fmt.Errorf("policy store: %w", err)
	}
	engine, err := policy.Open(src, policy.Options{Consents: proxy.StateConsents{State: state}})
	if err != nil {
		return fail(err)
	}
	upCfg, err := pgconn.ParseConfig(c.Upstream)
	if err != nil {
		return fail(fmt.Errorf("upstream URL: %w", err))
	}
	catalogs := proxy.NewCatalogCache(upCfg, log)
	out.closers = append(out.closers, catalogs.Close)
	if err := catalogs.Refresh(ctx); err != nil {
		return fail(fmt.Errorf("upstream catalog: %w", err))
	}
	opts, err := c.rewriteOptions()
	if err != nil {
		return fail(err)
	}
	out.enforcer = &proxy.Enforcer{Engine: engine, State: state, Catalogs: catalogs, Rewrite: opts}
	if oneShot {
		return out, nil
	}

	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = state.Watch(watchCtx); close(done) }()
	out.closers = append(out.closers, func() { stop(); <-done })
	onReload := func(err error) {
		metrics.PolicyReloaded(err)
		if err != nil {
			log.Error("policy reload rejected; the previous policy set stays in force", "err", err)
			return
		}
		log.Info("policies reloaded", "policies", len(engine.Snapshot().PolicyIDs()))
	}
	go engine.Watch(watchCtx, c.PolicyReloadInterval, onReload)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				onReload(engine.Reload())
			case <-watchCtx.Done():
				signal.Stop(hup)
				return
			}
		}
	}()

	go catalogs.Run(watchCtx, c.CatalogRefresh, c.CatalogNotify)
	if err := engine.Snapshot().CheckCatalog(catalogRelations(catalogs)); err != nil {
		log.Warn("policies and the live catalog disagree (run mandate check)", "err", err)
	}

	verifier, err := c.verifier(log, nil)
	if err != nil {
		return fail(fmt.Errorf("token verifier: %w", err))
	}
	if verifier != nil {
		out.closers = append(out.closers, verifier.Close)
	}

	if c.AuditLog != "" {
		var w *audit.Writer
		if c.AuditLog == "-" {
			w, err = audit.NewWriter(os.Stdout, audit.Options{})
		} else {
			w, err = audit.Open(c.AuditLog, audit.Options{})
		}
		if err != nil {
			return fail(fmt.Errorf("audit log: %w", err))
		}
		out.audit = w
		out.closers = append(out.closers, func() { _ = w.Close() })
	}

	assume := map[string]bool{}
	for _, p := range c.AssumePrincipals {
		assume[p] = true
	}
	out.enforcer.Verifier, out.enforcer.AssumeAllowed = verifier, assume
	return out, nil
}

// catalogRelations lists the catalog's relations for CheckCatalog.
func catalogRelations(c *proxy.CatalogCache) []policy.RelationInfo {
	cat, _ := c.Current()
	var out []policy.RelationInfo
	for _, sch := range cat.Schemas {
		for _, t := range sch.Tables {
			info := policy.RelationInfo{Name: t.QualifiedName()}
			for _, col := range t.Columns {
				info.Columns = append(info.Columns, policy.ColumnInfo{Name: col.Name, Type: col.Type})
			}
			out = append(out, info)
		}
	}
	return out
}

func uniq(urls ...string) []string {
	var out []string
	for _, u := range urls {
		if u != "" && (len(out) == 0 || out[len(out)-1] != u) {
			out = append(out, u)
		}
	}
	return out
}

// redactURL hides a URL's password for messages.
func redactURL(u string) string {
	cfg, err := pgconn.ParseConfig(u)
	if err != nil {
		return "the database"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
