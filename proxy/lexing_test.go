package proxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// crafted is one statement to libpg_query's scanner (two string constants)
// and another to PostgreSQL with standard_conforming_strings off, where
// 'a\' ... does not end at the second quote and the subquery is SQL: the
// unfiltered IBANs of every customer.
const crafted = `SELECT 'a\' , $$ ' , (SELECT string_agg(iban, ',') FROM accounts) AS x , ' $$ -- '`

// TestSettingsThatChangeScanningAreRefused: a session where PostgreSQL
// would scan SQL unlike the rewriter (standard_conforming_strings off, an
// encoding whose multibyte characters contain backslashes or quotes) is
// never reached, whichever way the setting comes.
func TestSettingsThatChangeScanningAreRefused(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	wantCode := func(what string, err error, code string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("%s: got %v, want SQLSTATE %s", what, err, code)
		}
	}

	// pg_settings' update rule is set_config by another name: writes into
	// it are refused too (and pipelined ahead of the crafted statement,
	// below, which PostgreSQL would read before mandate saw the setting's
	// report).
	const viaRule = "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'"
	alice := w.assume(t, "alice", nil, nil)
	for sql, code := range map[string]string{
		"SET standard_conforming_strings = off":                        codeFeatureUnsupported,
		"SET standard_conforming_strings TO 'no'":                      codeFeatureUnsupported,
		"BEGIN; SET LOCAL standard_conforming_strings = false; COMMIT": codeFeatureUnsupported,
		"SET client_encoding = 'SJIS'":                                 codeFeatureUnsupported,
		"SET NAMES 'big5'":                                             codeFeatureUnsupported,
		"SET client_encoding TO 'Windows_936'":                         codeFeatureUnsupported,
		"SET client_encoding = 'LATIN1'":                               codeFeatureUnsupported,
		viaRule:                                                        codeInsufficientPriv,
		"UPDATE pg_catalog.pg_settings SET setting = 'shadow' WHERE name = 'search_path'":                                           codeInsufficientPriv,
		"WITH x AS (UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings' RETURNING 1) SELECT * FROM x": codeInsufficientPriv,
		"INSERT INTO pg_settings (name, setting) VALUES ('standard_conforming_strings', 'off')":                                     codeInsufficientPriv,
		"DELETE FROM pg_settings WHERE name = 'search_path'":                                                                        codeInsufficientPriv,
	} {
		_, err := alice.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		wantCode(sql, err, code)
		if _, err := alice.Exec(ctx, "ROLLBACK"); err != nil { // the refusal aborted BEGIN's transaction
			t.Fatal(err)
		}
	}
	// Still the rewriter's reading: two constants, no IBAN. (pgconn, not
	// pgx, which would refuse to send it with the setting off.)
	res, err := alice.PgConn().Exec(ctx, crafted).ReadAll()
	if err != nil {
		t.Fatalf("crafted statement: %v", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 2 ||
		string(res[0].Rows[0][0]) != `a\` || strings.Contains(string(res[0].Rows[0][1]), "DE") {
		t.Errorf("crafted statement read %q: not the two constants", res[0].Rows)
	}
	for _, msgs := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Query{String: viaRule}, &pgproto3.Query{String: crafted}},
		append(append(unnamedQuery(viaRule), &pgproto3.Sync{}), append(unnamedQuery(crafted), &pgproto3.Sync{})...),
	} {
		got := pipelined(t, alice, 2, msgs...)
		if got[0].code != codeInsufficientPriv || got[1].code != "" || len(got[1].rows) != 1 || strings.Contains(got[1].rows[0], "DE") {
			t.Errorf("pipelined behind UPDATE pg_settings: %+v", got)
		}
	}
	var scs string
	if err := alice.QueryRow(ctx, "SHOW standard_conforming_strings").Scan(&scs); err != nil || scs != "on" {
		t.Errorf("standard_conforming_strings is %q (%v) after the attempts", scs, err)
	}

	// Harmless values pass.
	for _, sql := range []string{"SET standard_conforming_strings = on", "SET client_encoding = 'UTF8'", "RESET client_encoding"} {
		if _, err := alice.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}

	// At start-up, as an option or as the database's default.
	for _, opt := range []string{"-c standard_conforming_strings=off", "-c client_encoding=SJIS", "-c client_encoding=LATIN1"} {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://alice@%s/%s?sslmode=disable&options=%s", w.p.addr, w.db, strings.NewReplacer(" ", "%20", "=", "%3D").Replace(opt)))
		if err == nil {
			c.Close(ctx)
		}
		wantCode("options "+opt, err, codeFeatureUnsupported)
	}
	if _, err := w.owner.Exec(ctx, "ALTER DATABASE "+w.db+" SET standard_conforming_strings = off"); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://alice@%s/%s?sslmode=disable", w.p.addr, w.db))
	if err == nil {
		c.Close(ctx)
	}
	wantCode("database default off", err, codeFeatureUnsupported)
	if _, err := w.owner.Exec(ctx, "ALTER DATABASE "+w.db+" RESET standard_conforming_strings"); err != nil {
		t.Fatal(err)
	}
}
