package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestConstraintErrorsShowNoRowValues: PostgreSQL describes the failing
// row of a NOT NULL or CHECK violation in the error's DETAIL ("Failing row
// contains (…)"), every column of it raw, and an exclusion or foreign-key
// violation names the other row's key. Through mandate the upstream role
// may read every column, so such details would show masked values (native
// RLS leaves them out for the same reason): they are dropped.
func TestConstraintErrorsShowNoRowValues(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	// sam may update the customers assigned to him (2 and 4) but sees their
	// ssn and phone masked.
	dir := copyBankPolicies(t)
	extra := `@id("support-updates-assigned-customers")
permit (principal is User in Group::"support", action == Action::"update", resource is Customer)
when { principal has assigned_customers && principal.assigned_customers.contains(resource.id) };
`
	if err := os.WriteFile(filepath.Join(dir, "support_update.cedar"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := w.replica(t, replicaOptions{policyDir: dir})
	sam := w.connectTo(t, p, "sam")

	var ssn, phone string
	if err := w.owner.QueryRow(ctx, "SELECT ssn, phone FROM customers WHERE id = 2").Scan(&ssn, &phone); err != nil {
		t.Fatal(err)
	}
	var masked string
	if err := sam.QueryRow(ctx, "SELECT ssn FROM customers WHERE id = 2").Scan(&masked); err != nil || masked == ssn {
		t.Fatalf("sam reads ssn %q (%v): the test needs it masked", masked, err)
	}
	for _, tc := range []struct{ sql, code string }{
		{"UPDATE customers SET email = NULL WHERE id = 2", "23502"},
		{"UPDATE customers SET name = NULL WHERE id = 2 RETURNING id", "23502"},
	} {
		_, err := sam.Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Fatalf("%s: got %v, want SQLSTATE %s", tc.sql, err, tc.code)
		}
		all := strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where}, " ")
		if strings.Contains(all, ssn) || strings.Contains(all, phone) {
			t.Errorf("%s: the error shows sam's masked ssn or phone: %q", tc.sql, all)
		}
		if pe.ConstraintName == "" && pe.ColumnName == "" && pe.TableName == "" {
			t.Errorf("%s: the error lost its table and column fields: %+v", tc.sql, pe)
		}
	}
}

func TestWithoutFieldKeepsTheOthers(t *testing.T) {
	in := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "23502", Message: "null value", Detail: "Failing row contains (secret)",
		TableName: "customers", ColumnName: "email", ConstraintName: ""}
	msg, err := in.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := withoutFields(msg, "D")
	var got pgproto3.ErrorResponse
	if err := got.Decode(out[5:]); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if got.Detail != "" || got.Message != in.Message || got.Code != in.Code || got.TableName != in.TableName || got.ColumnName != in.ColumnName || got.Severity != in.Severity {
		t.Errorf("withoutField gave %+v", got)
	}
	if n := int(binary.BigEndian.Uint32(out[1:5])); n != len(out)-1 {
		t.Errorf("length field %d, message %d bytes", n, len(out)-1)
	}
}

// TestLockConflictErrorsShowNoTransactions: a deadlock's DETAIL names the
// transaction ids and backend pids involved, and a lock wait's CONTEXT the
// heap slot of the row ("while inserting index tuple (0,16)"): the
// transaction counter, which counts every identity's writes, and the row
// count mandate hides elsewhere (red team round 18, D1). Both are dropped.
func TestLockConflictErrorsShowNoTransactions(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	a, b := w.connect(t, "carol"), w.connect(t, "carol")
	insert := func(c *pgx.Conn, id int) error {
		_, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO support_tickets (id, customer_id, subject, body, status) VALUES (%d, 2, 's', 'b', 'open')", id), pgx.QueryExecModeSimpleProtocol)
		return err
	}
	for _, c := range []*pgx.Conn{a, b} {
		if _, err := c.Exec(ctx, "BEGIN", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(insert(a, 9001), insert(b, 9002)); err != nil {
		t.Fatal(err)
	}
	// Each now waits for the other's uncommitted key: one of them is the
	// deadlock's victim, the other goes on once the victim rolls back.
	errs := make(chan error, 2)
	go func() { errs <- insert(a, 9002) }()
	go func() { errs <- insert(b, 9001) }()
	var deadlock *pgconn.PgError
	for range 2 {
		var pe *pgconn.PgError
		if err := <-errs; errors.As(err, &pe) && pe.Code == "40P01" {
			deadlock = pe
		}
	}
	for _, c := range []*pgx.Conn{a, b} {
		_, _ = c.Exec(ctx, "ROLLBACK", pgx.QueryExecModeSimpleProtocol)
	}
	if deadlock == nil {
		t.Fatal("no deadlock detected")
	}
	if deadlock.Detail != "" || deadlock.Where != "" {
		t.Errorf("the deadlock error shows %q / %q", deadlock.Detail, deadlock.Where)
	}

	// A lock wait cut short by lock_timeout names the row it waited for.
	if _, err := a.Exec(ctx, "BEGIN; UPDATE customers SET email = email WHERE id = 2", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	defer a.Exec(ctx, "ROLLBACK", pgx.QueryExecModeSimpleProtocol)
	_, err := b.Exec(ctx, "SET lock_timeout = '50ms'; UPDATE customers SET email = email WHERE id = 2", pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55P03" {
		t.Fatalf("got %v, want 55P03", err)
	}
	if pe.Where != "" || strings.Contains(pe.Detail, "tuple") {
		t.Errorf("the lock timeout shows %q / %q", pe.Detail, pe.Where)
	}

	// Any other error's too: an index row too large names the heap slot
	// of the row (red team round 19, E1), and a position points into the
	// rewritten statement, whose length tells the filter's (E2).
	for _, tc := range []struct{ sql, code string }{
		{"INSERT INTO support_tickets (id, customer_id, assignee, subject, body, status) SELECT 9003, 2, string_agg(md5(i::text), ''), 's', 'b', 'open' FROM generate_series(1, 200) i", "54000"},
		{"SELECT id FROM support_tickets WHERE id = 'x'", "22P02"},
	} {
		_, err := b.Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Fatalf("%s: got %v, want %s", tc.sql, err, tc.code)
		}
		if pe.Detail != "" || pe.Where != "" || pe.Position != 0 || pe.InternalPosition != 0 || pe.InternalQuery != "" {
			t.Errorf("%s: the error shows %q / %q / position %d", tc.sql, pe.Detail, pe.Where, pe.Position)
		}
	}
}
