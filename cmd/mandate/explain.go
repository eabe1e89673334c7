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
	return valueStatistics(context.Background(), conn, snap.Tables(), stdout)
}

// valueStatisticsQuery lists the planner statistics that hold column
// values (most common values, histogram bounds, most common array elements;
// extended statistics' MCV lists) of the given tables, of their partitions
// and inheritance children, which the planner estimates each from its own,
// and of the indexes of all of them (an expression index keeps statistics
// of its expressions). Rows: schema, relation, relkind, column or
// statistics object, column number (0 for an extended statistics object).
const valueStatisticsQuery = `WITH RECURSIVE tables(oid) AS (
  SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = ANY($1::text[])
  UNION
  SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tables t ON i.inhparent = t.oid
), rels(oid) AS (
  SELECT oid FROM tables
  UNION
  SELECT x.indexrelid FROM pg_catalog.pg_index x JOIN tables t ON x.indrelid = t.oid
)
SELECT DISTINCT n.nspname, c.relname, c.relkind, s.attname, a.attnum
  FROM rels r
  JOIN pg_catalog.pg_class c ON c.oid = r.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
 WHERE s.most_common_vals IS NOT NULL OR s.histogram_bounds IS NOT NULL OR s.most_common_elems IS NOT NULL
UNION ALL
SELECT e.statistics_schemaname, e.statistics_name, 'e', '', 0
  FROM pg_catalog.pg_stats_ext e
  JOIN pg_catalog.pg_namespace n ON n.nspname = e.schemaname
  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = e.tablename
  JOIN tables t ON t.oid = c.oid
 WHERE e.most_common_vals IS NOT NULL
 ORDER BY 1, 2, 5`

// valueStatistics warns of planner statistics that hold values of protected
// tables: PostgreSQL estimates a persona's conditions from them, rows it
// may not see included, and the plan it then picks shows (red team round
// 25 read hidden merchants from the order rows came back in). It prints
// the statements that stop ANALYZE collecting them (for the owner) and
// that drop what was collected (DELETE from pg_statistic needs a
// superuser; docs/security.md gives an owner's way where PostgreSQL allows
// one).
func valueStatistics(ctx context.Context, conn *pgconn.PgConn, tables []string, w io.Writer) error {
	res := conn.ExecParams(ctx, valueStatisticsQuery, [][]byte{[]byte(textArray(tables))}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("planner statistics: %w", res.Err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	var stop, drop []string
	var rel string    // the relation of the columns in cols
	var cols []string // their numbers
	flush := func() {
		if len(cols) > 0 {
			drop = append(drop, fmt.Sprintf("DELETE FROM pg_catalog.pg_statistic WHERE starelid = %s::regclass AND staattnum IN (%s);",
				quoteLiteral(rel), strings.Join(cols, ", ")))
		}
		cols = nil
	}
	for _, r := range res.Rows {
		name := pgx.Identifier{string(r[0]), string(r[1])}.Sanitize()
		switch kind := string(r[2]); kind {
		case "e":
			stop = append(stop, "DROP STATISTICS "+name+";")
			continue
		case "i", "I":
			stop = append(stop, fmt.Sprintf("ALTER INDEX %s ALTER COLUMN %s SET STATISTICS 0;", name, r[4]))
		default:
			stop = append(stop, fmt.Sprintf("ALTER TABLE ONLY %s ALTER COLUMN %s SET STATISTICS 0;", name, pgx.Identifier{string(r[3])}.Sanitize()))
		}
		if name != rel {
			flush()
			rel = name
		}
		cols = append(cols, string(r[4]))
	}
	flush()
	fmt.Fprintf(w, "warning: %d planner statistics hold values of protected rows; every persona can infer them from the plans PostgreSQL picks (docs/security.md, \"Planner statistics\").\n", len(res.Rows))
	fmt.Fprintf(w, "Stop ANALYZE collecting them (as the owner; a partition added later needs its own, so run check again):\n  %s\n", strings.Join(stop, "\n  "))
	if len(drop) > 0 {
		fmt.Fprintf(w, "Then drop what it collected (as a superuser):\n  %s\n", strings.Join(drop, "\n  "))
	}
	return nil
}

// quoteLiteral is s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// textArray is a text[] literal of names.
func textArray(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
	}
	return "{" + strings.Join(quoted, ",") + "}"
}
