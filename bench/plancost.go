package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"
)

// planCase is a statement whose plan cost make bench measures as written
// (direct), as mandate rewrites it for the bench user (fence auto), with
// every protected table fenced (--fence always), and fenced with nothing
// copied inside (--fence strict). The bench user reads
// branch 1's accounts: at the default scale, 100,000 of 1,000,000 rows.
type planCase struct{ name, sql string }

var planCases = []planCase{
	{"point read (pgbench -S)", "SELECT abalance FROM pgbench_accounts WHERE aid = 5000"},
	{"range join", "SELECT a.aid, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.bid WHERE a.aid BETWEEN 5000 AND 5100"},
	{"leaky qual, other relation", "SELECT a.aid FROM generate_series(5000, 5050) g(i) JOIN pgbench_accounts a ON a.aid = g.i WHERE g.i % 7 <> 0"},
	{"leaky qual, protected table", "SELECT aid FROM pgbench_accounts WHERE aid = 5000 AND filler LIKE 'x%'"},
}

// planRuns is how many EXPLAIN ANALYZE runs each cell's median takes,
// after one unmeasured run that warms the cache.
const planRuns = 5

// planCost is one cell: median execution plus planning time, and the
// shared buffers the plan touched (hit + read; the same on every warm run).
type planCost struct {
	ms     float64
	blocks int64
	fenced bool
}

type planRow struct {
	planCase
	direct, auto, always, strict planCost
}

// measurePlanCosts gets each case's three rewrites from `mandate explain` and
// runs the four statements with EXPLAIN (ANALYZE, BUFFERS) as benchRole.
func measurePlanCosts(ctx context.Context, e *env, cfg config) ([]planRow, error) {
	upstream := e.cluster.TCPDSN(benchRole, e.password, benchRole)
	// explain reads the policy store, which mandate serve creates.
	if out, err := exec.CommandContext(ctx, cfg.mandateBin, "migrate", "--store", upstream).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mandate migrate: %w\n%s", err, out)
	}
	conn, err := pgconn.Connect(ctx, upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var rows []planRow
	for _, c := range planCases {
		row := planRow{planCase: c}
		for _, cell := range []struct {
			dst   *planCost
			fence string // "": the statement as written
		}{{&row.direct, ""}, {&row.auto, "auto"}, {&row.always, "always"}, {&row.strict, "strict"}} {
			sql := c.sql
			if cell.fence != "" {
				if sql, err = rewriteForBench(ctx, cfg.mandateBin, upstream, cell.fence, c.sql); err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
			}
			if *cell.dst, err = explainAnalyze(ctx, conn, sql); err != nil {
				return nil, fmt.Errorf("%s (fence %q): %w\n%s", c.name, cell.fence, err, sql)
			}
			cell.dst.fenced = strings.Contains(sql, " OFFSET 0)")
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// rewriteForBench returns mandate's rewrite of sql for the bench user.
func rewriteForBench(ctx context.Context, bin, upstream, fence, sql string) (string, error) {
	args := append([]string{"explain", "--upstream", upstream, "--fence", fence, "--as", benchRole}, protectedArgs()...)
	out, err := exec.CommandContext(ctx, bin, append(args, sql)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mandate explain: %w\n%s", err, out)
	}
	_, rewritten, ok := strings.Cut(string(out), "\nrewritten SQL:\n")
	if !ok {
		return "", fmt.Errorf("mandate explain printed no rewritten SQL:\n%s", out)
	}
	return strings.TrimSpace(rewritten), nil
}

// explainAnalyze runs sql under EXPLAIN (ANALYZE, BUFFERS) planRuns+1 times.
func explainAnalyze(ctx context.Context, conn *pgconn.PgConn, sql string) (planCost, error) {
	var times []float64
	var blocks int64
	for i := range planRuns + 1 {
		res := conn.ExecParams(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+sql, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return planCost{}, res.Err
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			return planCost{}, fmt.Errorf("EXPLAIN returned %d rows", len(res.Rows))
		}
		var out []struct {
			Plan struct {
				Hit  int64 `json:"Shared Hit Blocks"`
				Read int64 `json:"Shared Read Blocks"`
			}
			Planning  float64 `json:"Planning Time"`
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(res.Rows[0][0], &out); err != nil || len(out) != 1 {
			return planCost{}, fmt.Errorf("EXPLAIN output: %v", err)
		}
		if i > 0 {
			times = append(times, out[0].Planning+out[0].Execution)
			blocks = out[0].Plan.Hit + out[0].Plan.Read
		}
	}
	slices.Sort(times)
	return planCost{ms: times[len(times)/2], blocks: blocks}, nil
}

func reportPlanCosts(w io.Writer, rows []planRow) {
	fmt.Fprintf(w, "\nplan cost of the fence (EXPLAIN ANALYZE as %s, median of %d runs: planning + execution ms, shared blocks touched)\n\n", benchRole, planRuns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "statement\tdirect\tmandate (fence auto)\tfence always\tfence strict\talways/auto ms\tstrict/auto ms\t")
	cost := func(c planCost) string {
		s := fmt.Sprintf("%.3f ms %d blocks", c.ms, c.blocks)
		if c.fenced {
			s += " fenced"
		}
		return s
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f×\t%.1f×\t\n", r.name, cost(r.direct), cost(r.auto), cost(r.always), cost(r.strict),
			r.always.ms/r.auto.ms, r.strict.ms/r.auto.ms)
	}
	tw.Flush()
}
