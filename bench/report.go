package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// The targets for mandate, relative to pgbouncer and to direct.
const (
	minRatioToPgbouncer = 0.9
	maxAddedLatencyMS   = 0.06
)

// Names with a fixed role in the comparison; every other target is a
// mandate configuration.
const (
	directName    = "direct"
	pgbouncerName = "pgbouncer"
	mandateName   = "mandate" // transparent: the baseline of enforcing runs
)

type cell struct {
	mode    string
	clients int
}

type key struct {
	target string
	cell
}

// results holds each key's samples in round order.
type results map[key][]sample

func index(samples []sample) results {
	r := results{}
	for _, s := range samples {
		k := key{s.Target, cell{s.Mode, s.Clients}}
		r[k] = append(r[k], s)
	}
	return r
}

func (r results) medianTPS(target string, c cell) float64 {
	var tps []float64
	for _, s := range r[key{target, c}] {
		tps = append(tps, s.TPS)
	}
	return median(tps)
}

// ratio is the median over rounds of num's TPS over den's in the same
// round. Within a round the targets run back to back, so pairing cancels
// drift that affects both alike (a noisy neighbour for a minute), which a
// ratio of the two medians would mix in when it hit one target's rounds.
func (r results) ratio(num, den string, c cell) float64 {
	return r.paired(num, den, c, func(a, b sample) float64 { return a.TPS / b.TPS })
}

// addedLatency is the median over rounds of proxy's latency minus direct's
// in the same round, paired for the same reason as ratio.
func (r results) addedLatency(proxy string, c cell) float64 {
	return r.paired(proxy, directName, c, func(a, b sample) float64 { return a.LatencyMS - b.LatencyMS })
}

// paired is the median over rounds of f(num's sample, den's sample).
// Samples are kept in round order, and every target runs once per round.
func (r results) paired(num, den string, c cell, f func(a, b sample) float64) float64 {
	base := r[key{den, c}]
	var xs []float64
	for i, s := range r[key{num, c}] {
		if i < len(base) {
			xs = append(xs, f(s, base[i]))
		}
	}
	return median(xs)
}

func median(xs []float64) float64 {
	xs = slices.Sorted(slices.Values(xs))
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// comparison is a column: num's TPS relative to den's.
type comparison struct{ num, den string }

// comparisons lists every proxy against direct, then every mandate target
// against pgbouncer and against transparent mandate, as far as the run has
// those targets.
func comparisons(targets []string) []comparison {
	var out []comparison
	for _, base := range []string{directName, pgbouncerName, mandateName} {
		if !slices.Contains(targets, base) {
			continue
		}
		for _, t := range targets {
			if t != directName && t != base && (base == directName || isMandate(t)) {
				out = append(out, comparison{t, base})
			}
		}
	}
	return out
}

func isMandate(target string) bool { return target != directName && target != pgbouncerName }

// proxies are the targets whose added latency is shown, when direct ran.
func proxies(targets []string) []string {
	if !slices.Contains(targets, directName) {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(targets), func(t string) bool { return t == directName })
}

func report(w io.Writer, cfg config, samples []sample) {
	r := index(samples)
	cmps, lat := comparisons(cfg.targets), proxies(cfg.targets)
	fmt.Fprintf(w, "\npgbench -S, %v per run, median of %d rounds (TPS; ratios of TPS and added latency vs direct at 1 client, paired within each round)\n\n", cfg.duration, cfg.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"mode", "clients"}
	for _, t := range cfg.targets {
		header = append(header, t+" tps")
	}
	for _, c := range cmps {
		header = append(header, c.num+"/"+c.den)
	}
	for _, p := range lat {
		header = append(header, "+lat "+p+" ms")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, mode := range cfg.modes {
		for _, clients := range cfg.clients {
			c := cell{mode, clients}
			row := []string{mode, fmt.Sprint(clients)}
			for _, t := range cfg.targets {
				row = append(row, fmt.Sprintf("%.0f", r.medianTPS(t, c)))
			}
			for _, cmp := range cmps {
				row = append(row, fmt.Sprintf("%.3f", r.ratio(cmp.num, cmp.den, c)))
			}
			for _, p := range lat {
				row = append(row, addedLatencyText(r, p, c))
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, line := range summary(cfg, r) {
		fmt.Fprintln(w, line)
	}
}

func addedLatencyText(r results, proxy string, c cell) string {
	if c.clients != 1 {
		return "-"
	}
	return fmt.Sprintf("%+.3f", r.addedLatency(proxy, c))
}

// summary checks each mandate target against the targets: its worst
// cell decides.
// goals are the issues' targets: transparent mandate against pgbouncer and
// direct; enforcing runs against transparent mandate and pgbouncer.
var goals = []struct {
	target, base string
	min          float64
}{
	{mandateName, pgbouncerName, minRatioToPgbouncer},
	{"mandate-protected", mandateName, 0.85},
	{"mandate-protected", pgbouncerName, 0.8},
}

func summary(cfg config, r results) []string {
	var lines []string
	for _, g := range goals {
		if !slices.Contains(cfg.targets, g.target) || !slices.Contains(cfg.targets, g.base) {
			continue
		}
		worst, at, ok := extreme(cfg, []int{8, 32}, func(c cell) float64 { return -r.ratio(g.target, g.base, c) })
		lines = append(lines, goalLine(ok, -worst >= g.min,
			fmt.Sprintf("%s/%s at 8 and 32 clients ≥ %.2f", g.target, g.base, g.min),
			fmt.Sprintf("worst %.3f (%s, %d clients)", -worst, at.mode, at.clients)))
	}
	if slices.Contains(cfg.targets, mandateName) && slices.Contains(cfg.targets, directName) {
		worst, at, ok := extreme(cfg, []int{1}, func(c cell) float64 { return r.addedLatency(mandateName, c) })
		lines = append(lines, goalLine(ok, worst <= maxAddedLatencyMS,
			fmt.Sprintf("%s added latency at 1 client ≤ %.2f ms", mandateName, maxAddedLatencyMS),
			fmt.Sprintf("worst %+.3f ms (%s)", worst, at.mode)))
	}
	return lines
}

// extreme returns the largest f over the run's cells whose client count is
// in clients; ok is false if the run has no such cell.
func extreme(cfg config, clients []int, f func(cell) float64) (worst float64, at cell, ok bool) {
	for _, mode := range cfg.modes {
		for _, n := range cfg.clients {
			if !slices.Contains(clients, n) {
				continue
			}
			c := cell{mode, n}
			if v := f(c); !ok || v > worst {
				worst, at, ok = v, c, true
			}
		}
	}
	return worst, at, ok
}

func goalLine(measured, pass bool, goal, detail string) string {
	switch {
	case !measured:
		return fmt.Sprintf("n/a   %s: not measured in this run", goal)
	case pass:
		return fmt.Sprintf("PASS  %s: %s", goal, detail)
	default:
		return fmt.Sprintf("MISS  %s: %s", goal, detail)
	}
}

func writeJSON(path string, samples []sample) error {
	b, err := json.MarshalIndent(samples, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
