package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/identity"
	"github.com/mandate-proxy/mandate/proxy"
	"github.com/mandate-proxy/mandate/rewrite"
)

// runExplain prints the decision for a statement and the SQL mandate would
// forward, without touching data: the policies, the live state and the
// catalog are read, nothing is executed.
func runExplain(args []string, stdout, stderr io.Writer) error {
	var as, purpose string
	var actors []string
	cfg, rest, err := parseCommand("explain", `mandate explain --config mandate.yaml --as SUBJECT [--actor bob] [--actor agent:assistant] [--purpose P] "SQL"`, 1, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&as, "as", "", "the subject whose rights apply")
		fs.Var(&listFlag{dst: &actors}, "actor", "an actor in the chain, closest to the subject first (agent:ID for an agent); repeatable")
		fs.StringVar(&purpose, "purpose", "", "declared purpose of use")
	})
	if err != nil {
		return err
	}
	if as == "" || len(rest) != 1 {
		return errors.New(`usage: mandate explain --as SUBJECT [--actor …] [--purpose …] "SQL"`)
	}
	var chain []policy.Actor
	for _, a := range actors {
		act, err := identity.ParseActor(a)
		if err != nil {
			return err
		}
		chain = append(chain, act)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	enf, err := buildEnforcement(ctx, cfg, log, proxy.NewMetrics(), true)
	if err != nil {
		return err
	}
	defer enf.close()
	upCfg, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		return err
	}
	ex := enf.enforcer.Explain(as, chain, purpose, upCfg.User, rest[0])
	printExplanation(stdout, ex)
	if ex.Err != nil {
		return errExplained
	}
	return nil
}

// errExplained makes explain exit 1 on a refusal it has already printed.
var errExplained = errors.New("statement refused")

func printExplanation(w io.Writer, ex proxy.Explanation) {
	sc := ex.Scope
	fmt.Fprintf(w, "subject:    %s\n", sc.Subject)
	if len(sc.Actors) > 0 {
		parts := make([]string, len(sc.Actors))
		for i, a := range sc.Actors {
			parts[i] = fmt.Sprintf("%s (%s)", a.ID, a.Kind)
		}
		fmt.Fprintf(w, "actors:     %s\n", strings.Join(parts, " → "))
	}
	if sc.Delegation != nil {
		fmt.Fprintf(w, "delegation: %s\n", sc.Delegation.ID)
	}
	if sc.Purpose != "" {
		fmt.Fprintf(w, "purpose:    %s\n", sc.Purpose)
	}
	if ex.Err != nil {
		fmt.Fprintf(w, "decision:   deny\nerror:      %v\n", ex.Err)
		return
	}
	fmt.Fprintln(w, "decision:   allow")
	for _, st := range ex.Result.Statements {
		for _, rel := range st.Relations {
			if !rel.Protected {
				continue
			}
			fmt.Fprintf(w, "\n%s (%s)\n", rel.Name, rel.Action)
			for _, f := range rel.Filters {
				fmt.Fprintf(w, "  filter:   %s\n", f)
			}
			for _, m := range rel.Masks {
				fmt.Fprintf(w, "  mask:     %s %s\n", m.Column, m.Kind)
			}
			if len(rel.Policies) > 0 {
				fmt.Fprintf(w, "  policies: %s\n", strings.Join(rel.Policies, ", "))
			}
		}
	}
	fmt.Fprintf(w, "\nrewritten SQL:\n%s\n", ex.Result.SQL)
}

// runCheck validates the policies against the Cedar schema and the live
// catalog: every protected table and column must exist, every mask must
// name a real column.
func runCheck(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := parseCommand("check", "mandate check --config mandate.yaml", 0, args, stdout, nil)
	if err != nil {
		return err
	}
	src, err := cfg.policySources()
	if err != nil {
		return err
	}
	snap, err := policy.Load(src)
	if err != nil {
		return err
	}
	upCfg, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		return fmt.Errorf("upstream URL: %w", err)
	}
	catalogs := proxy.NewCatalogCache(upCfg, slog.New(slog.NewTextHandler(stderr, nil)))
	defer catalogs.Close()
	if err := catalogs.Refresh(context.Background()); err != nil {
		return fmt.Errorf("upstream catalog: %w", err)
	}
	if err := snap.CheckCatalog(catalogRelations(catalogs)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %d policies, %d protected tables, checked against the live catalog\n", len(snap.PolicyIDs()), len(snap.Tables()))
	conn, err := pgconn.ConnectConfig(context.Background(), upCfg)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	defer conn.Close(context.Background())
	cat, _ := catalogs.Current()
	return valueStatistics(context.Background(), conn, cat, snap.Tables(), stdout)
}

// valueStatisticsQuery lists the planner statistics of the given tables
// that hold column values (most common values, histogram bounds, most
// common array elements; extended statistics' MCV lists).
const valueStatisticsQuery = `SELECT schemaname, tablename, attname, false
  FROM pg_catalog.pg_stats
 WHERE schemaname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) tablename = ANY($1::text[])
   AND (most_common_vals IS NOT NULL OR histogram_bounds IS NOT NULL OR most_common_elems IS NOT NULL)
UNION ALL
SELECT schemaname, tablename, statistics_schemaname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) statistics_name, true
  FROM pg_catalog.pg_stats_ext
 WHERE schemaname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) tablename = ANY($1::text[])
   AND most_common_vals IS NOT NULL
 ORDER BY 1, 2, 3`

// valueStatistics warns of planner statistics that hold values of protected
// tables: PostgreSQL estimates a persona's conditions from them, rows it
// may not see included, and the plan it then picks shows (red team round
// 25 read hidden merchants from the order rows came back in). Each comes
// with the statement that removes it.
func valueStatistics(ctx context.Context, conn *pgconn.PgConn, cat *rewrite.Catalog, tables []string, w io.Writer) error {
	res := conn.ExecParams(ctx, valueStatisticsQuery, [][]byte{[]byte(textArray(tables))}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("planner statistics: %w", res.Err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "warning: %d planner statistics hold values of protected rows; every persona can infer them from the plans PostgreSQL picks (docs/security.md, \"Planner statistics\"). As the tables' owner, remove them with:\n", len(res.Rows))
	for _, r := range res.Rows {
		table := pgx.Identifier{string(r[0]), string(r[1])}.Sanitize()
		if string(r[3]) == "t" {
			fmt.Fprintf(w, "  DROP STATISTICS %s; -- on %s\n", pgx.Identifier(strings.SplitN(string(r[2]), ".", 2)).Sanitize(), table)
			continue
		}
		col, typ := pgx.Identifier{string(r[2])}.Sanitize(), "?"
		if s := cat.Schemas[string(r[0])]; s != nil && s.Tables[string(r[1])] != nil {
			if c := s.Tables[string(r[1])].Column(string(r[2])); c != nil {
				typ = c.Type
			}
		}
		// SET STATISTICS 0 stops ANALYZE collecting them; changing the
		// type (to the same one) drops what was collected.
		fmt.Fprintf(w, "  ALTER TABLE %s ALTER COLUMN %s SET STATISTICS 0, ALTER COLUMN %s TYPE %s;\n", table, col, col, typ)
	}
	return nil
}

// textArray is a text[] literal of names.
func textArray(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
	}
	return "{" + strings.Join(quoted, ",") + "}"
}
