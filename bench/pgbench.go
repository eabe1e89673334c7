package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// sample is one pgbench run.
type sample struct {
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Clients   int     `json:"clients"`
	Round     int     `json:"round"`
	TPS       float64 `json:"tps"`
	LatencyMS float64 `json:"latency_ms"`
}

// measure runs every (mode, clients) cell against every target, -rounds
// times. Targets take turns within a cell, and each round starts with the
// next target, so slow drifts of a noisy machine hit all targets alike.
func measure(ctx context.Context, e *env, cfg config, targets []*target) ([]sample, error) {
	if cfg.warmup > 0 {
		// At the largest client count: the pools (mandate's, pgbouncer's)
		// then hold as many backends as any cell uses, all having run. A
		// backend's first touch of each shared-buffer page is a costly
		// fault on this VM, so pools warmed with fewer backends made the
		// first cells (simple mode) measure backend start-up, unevenly.
		clients := slices.Max(cfg.clients)
		fmt.Printf("warming up each target for %v at %d clients\n", cfg.warmup, clients)
		for _, t := range targets {
			if _, err := runPgbench(ctx, e, t, cfg.warmup, "prepared", clients); err != nil {
				return nil, err
			}
		}
	}
	runs := len(cfg.modes) * len(cfg.clients) * cfg.rounds * len(targets)
	fmt.Printf("%d runs of %v each\n", runs, cfg.duration)
	var samples []sample
	for _, mode := range cfg.modes {
		for _, clients := range cfg.clients {
			for round := range cfg.rounds {
				for i := range targets {
					t := targets[(round+i)%len(targets)]
					s, err := runPgbench(ctx, e, t, cfg.duration, mode, clients)
					if err != nil {
						return nil, err
					}
					s.Round = round
					samples = append(samples, s)
				}
			}
			fmt.Printf("  %-9s %3d clients done\n", mode, clients)
		}
	}
	return samples, nil
}

// runPgbench runs the select-only built-in script against t.
func runPgbench(ctx context.Context, e *env, t *target, d time.Duration, mode string, clients int) (sample, error) {
	cmd := e.pgbench(ctx, t, "-S", "-n",
		"-T", strconv.Itoa(int(d/time.Second)),
		"-c", strconv.Itoa(clients),
		"-j", strconv.Itoa(min(clients, 2)),
		"-M", mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("pgbench against %s (-M %s -c %d): %w\n%s", t.name, mode, clients, err, out)
	}
	s := sample{Target: t.name, Mode: mode, Clients: clients}
	if s.TPS, err = parseFloat(tpsRE, out); err == nil {
		s.LatencyMS, err = parseFloat(latencyRE, out)
	}
	if err != nil {
		return sample{}, fmt.Errorf("pgbench against %s: %w in:\n%s", t.name, err, out)
	}
	return s, nil
}

var (
	tpsRE     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyRE = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

func parseFloat(re *regexp.Regexp, out []byte) (float64, error) {
	m := re.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no match for %q", re)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
