package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mandate-proxy/mandate/proxy"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadServeConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		c := defaultServeConfig()
		bindServeFlags(fs, &c)
		printFlags(stdout, fs, "mandate serve [--config mandate.yaml] [flags]")
		return err
	}
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	return serve(cfg, log, nil, nil)
}

// serve runs the proxy until stop delivers a signal; with a nil stop, until
// SIGTERM or SIGINT. ready, if set, is called once clients are accepted.
// mandate demo passes both: it owns the signals for its whole run.
func serve(cfg serveConfig, log *slog.Logger, stop <-chan os.Signal, ready func()) error {
	pcfg, err := proxyConfig(cfg, log)
	if err != nil {
		return err
	}
	pcfg.Metrics = proxy.NewMetrics()
	if !cfg.Transparent {
		bgCtx, stopBackground := context.WithCancel(context.Background())
		defer stopBackground()
		enf, err := buildEnforcement(bgCtx, cfg, log, pcfg.Metrics, false)
		if err != nil {
			return err
		}
		defer enf.close()
		pcfg.Enforcer, pcfg.Audit = enf.enforcer, enf.audit
	}
	srv, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.UpstreamConnectTimeout)
	err = srv.CheckUpstream(ctx)
	cancel()
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	var admin *http.Server
	if cfg.AdminListen != "" {
		l, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		// Idle keep-alive connections close after a minute (red team
		// round 36, F5: they were kept forever).
		admin = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		log.Info("admin endpoint", "addr", l.Addr().String(), "paths", "/metrics /healthz /readyz")
		go func() {
			if err := admin.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin endpoint", "err", err)
			}
		}()
	}

	if stop == nil {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
		stop = sigs
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	if ready != nil {
		ready()
	}

	sig := <-stop
	log.Info("shutting down: no new clients; statements in flight may finish", "signal", sig.String(), "timeout", cfg.ShutdownTimeout)
	ctx, cancel = context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown timeout reached; remaining connections closed", "err", err)
	}
	<-served
	if admin != nil {
		_ = admin.Shutdown(ctx)
	}
	log.Info("stopped")
	return nil
}

// proxyConfig turns the file-and-flags configuration into the proxy's.
func proxyConfig(c serveConfig, log *slog.Logger) (proxy.Config, error) {
	pc := proxy.Config{
		Listen:                   c.Listen,
		UnixSocketDir:            c.UnixSocketDir,
		UnixPort:                 c.UnixPort,
		Upstream:                 c.Upstream,
		UpstreamConnectTimeout:   c.UpstreamConnectTimeout,
		AllowSuperuserUpstream:   c.AllowSuperuserUpstream,
		UpstreamPoolSize:         c.UpstreamPoolSize,
		UpstreamStatementCache:   c.UpstreamStatementCache,
		UpstreamIdleTimeout:      c.UpstreamIdleTimeout,
		UpstreamLifetime:         c.UpstreamLifetime,
		RequireTLS:               c.TLSRequired,
		Auth:                     proxy.AuthMethod(c.Auth),
		AuthTimeout:              c.AuthTimeout,
		MaxClientConns:           c.MaxClientConns,
		MaxMessageSize:           c.MaxMessageSize,
		IdleTimeout:              c.IdleTimeout,
		IdleInTransactionTimeout: c.IdleInTransactionTimeout,
		ShutdownTimeout:          c.ShutdownTimeout,
		Transparent:              c.Transparent,
		Pprof:                    c.AdminPprof,
		Logger:                   log,
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return pc, errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return pc, fmt.Errorf("TLS: %w", err)
		}
		pc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if c.PasswdFile != "" {
		f, err := os.Open(c.PasswdFile)
		if err != nil {
			return pc, err
		}
		defer f.Close()
		if pc.Verifiers, err = proxy.ParseVerifiers(f); err != nil {
			return pc, fmt.Errorf("%s: %w", c.PasswdFile, err)
		}
	}
	return pc, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
