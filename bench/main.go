// Command bench runs pgbench against PostgreSQL directly, through mandate and
// through pgbouncer, side by side in one run, and prints how the proxies
// compare. It is what `make bench` runs:
//
//	make bench                       # builds bin/mandate, then go run ./bench
//	go run ./bench -duration 2s -rounds 1 -clients 1,8   # a quick look
//
// It starts a throwaway PostgreSQL (internal/pgtest), creates a non-superuser
// role owning a database initialised with `pgbench -i -s <scale>`, then
// starts mandate (bin/mandate serve --transparent) and pgbouncer (session
// pool mode) in front of it. Every (mode, clients) cell runs
// `pgbench -S` against each target, interleaved in rotating order and
// repeated -rounds times, so that noise from a shared machine spreads evenly
// over the targets. Everything it started is stopped on exit and on Ctrl-C.
//
// Reading the output: one row per protocol mode (-M) and client count with
// the median TPS of each target, each proxy's TPS as a ratio to direct, each
// mandate target's ratio to pgbouncer, and at 1 client the latency each proxy
// adds to direct (pgbench's "latency average"). Ratios and added latencies
// are medians over rounds of the two targets' runs paired within a round. The summary marks the targets mandate aims for as
// PASS or MISS; they are informational, and the exit status is non-zero only
// if something failed to run. -json writes every pgbench run as raw data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	mandateBin  string
	mandateArgs []string
	targets     []string
	modes       []string
	clients     []int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	scale       int
	jsonPath    string
	planCost    bool
}

func parseFlags() (config, error) {
	var (
		cfg                                  config
		mandateArgs, targets, modes, clients string
	)
	flag.StringVar(&cfg.mandateBin, "mandate-bin", "./bin/mandate", "mandate binary")
	flag.StringVar(&mandateArgs, "mandate-args", "", "extra arguments for `mandate serve`, space-separated; they override the defaults")
	flag.StringVar(&targets, "targets", "direct,mandate,mandate-protected,pgbouncer", "targets to compare, comma-separated: "+strings.Join(slices.Sorted(maps.Keys(starters)), ", "))
	flag.StringVar(&modes, "modes", "simple,extended,prepared", "pgbench query modes (-M), comma-separated")
	flag.StringVar(&clients, "clients", "1,8,32", "pgbench client counts (-c), comma-separated")
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "length of one pgbench run (-T, whole seconds)")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "an unmeasured pgbench run per target, at the largest -clients, before measuring; 0: none")
	flag.IntVar(&cfg.rounds, "rounds", 5, "runs per target and cell; the median counts")
	flag.IntVar(&cfg.scale, "scale", 10, "pgbench -i scale factor")
	flag.StringVar(&cfg.jsonPath, "json", "", "write every run's results to this file as JSON")
	flag.BoolVar(&cfg.planCost, "plan-cost", true, "after pgbench, measure what the fence costs a few statements' plans (EXPLAIN ANALYZE of mandate's rewrite with --fence auto and always)")
	flag.Parse()

	cfg.mandateArgs = strings.Fields(mandateArgs)
	cfg.targets = splitList(targets)
	cfg.modes = splitList(modes)
	var err error
	for _, s := range splitList(clients) {
		n, convErr := strconv.Atoi(s)
		if convErr != nil || n < 1 {
			err = errors.Join(err, fmt.Errorf("-clients: %q is not a positive number", s))
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, name := range cfg.targets {
		if starters[name] == nil {
			err = errors.Join(err, fmt.Errorf("-targets: unknown target %q", name))
		}
	}
	if cfg.duration < time.Second || cfg.duration%time.Second != 0 {
		err = errors.Join(err, errors.New("-duration must be whole seconds, at least 1s"))
	}
	if cfg.rounds < 1 || len(cfg.targets) == 0 || len(cfg.modes) == 0 || len(cfg.clients) == 0 {
		err = errors.Join(err, errors.New("-rounds, -targets, -modes and -clients must not be empty"))
	}
	return cfg, err
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err = run(ctx, cfg)
	if ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("total runtime %v\n", time.Since(start).Round(time.Second))
}

// run sets everything up, measures and reports; the deferred cleanups stop
// whatever was started, in reverse order, however run ends.
func run(ctx context.Context, cfg config) error {
	var cleanups cleanupStack
	defer cleanups.run()

	env, err := setupPostgres(ctx, cfg.scale, &cleanups)
	if err != nil {
		return err
	}
	var targets []*target
	for _, name := range cfg.targets {
		t, err := starters[name](ctx, env, cfg)
		if err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		cleanups.add(t.stop)
		targets = append(targets, t)
	}
	results, err := measure(ctx, env, cfg, targets)
	if err != nil {
		return err
	}
	report(os.Stdout, cfg, results)
	if cfg.planCost {
		plans, err := measurePlanCosts(ctx, env, cfg)
		if err != nil {
			return fmt.Errorf("plan cost: %w", err)
		}
		reportPlanCosts(os.Stdout, plans)
	}
	if cfg.jsonPath != "" {
		return writeJSON(cfg.jsonPath, results)
	}
	return nil
}

// cleanupStack runs functions in reverse order of registration, printing
// their errors: cleanup must go on after one step fails.
type cleanupStack []func() error

func (s *cleanupStack) add(f func() error) { *s = append(*s, f) }

func (s *cleanupStack) run() {
	for i := len(*s) - 1; i >= 0; i-- {
		if err := (*s)[i](); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}
	*s = nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
