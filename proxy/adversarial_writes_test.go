package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// Attack class 6: writes and COPY FROM. Every refused write is checked on
// the oracle to have written nothing.

// copyIn runs COPY … FROM STDIN with data as persona.
func copyIn(x *advCtx, persona, sql, data string) error {
	conn, err := x.as(persona)
	if err != nil {
		return err
	}
	tag, err := conn.PgConn().CopyFrom(ctxT(x.t), strings.NewReader(data), sql)
	x.recordErr(persona, err)
	x.record(persona, tag.String())
	return err
}

// copyOut runs COPY … TO STDOUT as persona and returns its lines, sorted.
func copyOut(x *advCtx, persona, sql string) ([]string, error) {
	conn, err := x.as(persona)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = conn.PgConn().CopyTo(ctxT(x.t), &buf, sql)
	x.recordErr(persona, err)
	x.record(persona, buf.String())
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if buf.Len() == 0 {
		lines = nil
	}
	return sortedCopy(lines), err
}

func sortedCopy(lines []string) []string {
	out := append([]string(nil), lines...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// copyRefused expects COPY FROM to be refused and the table untouched.
func copyRefused(name, persona, sql, data, table string) advCase {
	return custom(name, func(x *advCtx) error {
		before := x.digest(table)
		err := copyIn(x, persona, sql, data)
		var problems []string
		if sqlState(err) != stDenied {
			problems = append(problems, fmt.Sprintf("want 42501, got %v", err))
		}
		if x.digest(table) != before {
			problems = append(problems, table+" changed")
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
}

func advWrites() advClass {
	const ticket = "'subject', 'body', 'open'"
	return advClass{
		name: "6-writes",
		prep: func(t *testing.T, w *bankWorld) {
			ownerExec(t, w, "CREATE VIEW public.v_customers AS SELECT * FROM customers")
		},
		cases: []advCase{
			{name: "write/update-hidden-row", persona: "alice", sql: "UPDATE customers SET name = 'pwned' WHERE id = 2", tag: "UPDATE 0", unchanged: []string{"customers"}},
			// A qualified system column told where and when hidden rows were
			// written (red team round 15, F1: c.ctid counted them).
			{name: "write/returning-qualified-ctid", persona: "alice", sql: "UPDATE customers c SET email = email WHERE id = 1 RETURNING c.ctid", codes: []string{stUnsupported}, unchanged: []string{"customers"}},
			{name: "write/returning-table-qualified-xmin", persona: "alice", sql: "WITH d AS (UPDATE customers SET email = email WHERE id = 1 RETURNING customers.xmin) SELECT * FROM d", codes: []string{stUnsupported}, unchanged: []string{"customers"}},
			{name: "write/update-all-reaches-own-only", persona: "alice", sql: "UPDATE customers SET phone = phone", tag: "UPDATE 1", unchanged: []string{"customers"}},
			{name: "write/update-where-hidden-ssn", persona: "alice", sql: "UPDATE customers SET name = name WHERE ssn = '234-56-7890'", tag: "UPDATE 0"},
			{name: "write/update-moves-row-out", persona: "alice", sql: "UPDATE customers SET id = 99 WHERE id = 1", codes: []string{stDenied}, unchanged: []string{"customers"}},
			{name: "write/update-moves-row-out-expression", persona: "alice", sql: "UPDATE customers SET id = id + 1", codes: []string{stDenied}, unchanged: []string{"customers"}},
			{name: "write/update-from-hidden-row", persona: "alice", sql: "UPDATE customers SET email = c2.email FROM customers c2 WHERE c2.id = 2 AND customers.id = 1", tag: "UPDATE 0", unchanged: []string{"customers"}},
			{name: "write/update-set-from-hidden-subquery", persona: "alice", setup: []string{"BEGIN"},
				sql: "UPDATE customers SET ssn = (SELECT ssn FROM customers WHERE id = 2) WHERE id = 1 RETURNING ssn", rows: []string{"<null>"}, after: []string{"ROLLBACK"}},
			{name: "write/update-returning-hidden-sublink", persona: "alice", setup: []string{"BEGIN"},
				sql: "UPDATE customers SET name = name WHERE id = 1 RETURNING (SELECT string_agg(ssn, ',') FROM customers)", rows: []string{"123-45-6789"}, after: []string{"ROLLBACK"}},
			{name: "write/delete-without-permission", persona: "alice", sql: "DELETE FROM customers WHERE id = 2", codes: []string{stDenied}, unchanged: []string{"customers"}},
			{name: "write/delete-tickets-without-permission", persona: "alice", sql: "DELETE FROM support_tickets", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/update-accounts-without-permission", persona: "alice", sql: "UPDATE accounts SET balance = 0", codes: []string{stDenied}, unchanged: []string{"accounts"}},
			{name: "write/bob-update", persona: "bob", sql: "UPDATE accounts SET balance = 0 WHERE id = 101", codes: []string{stDenied}, unchanged: []string{"accounts"}},
			{name: "write/bob-delete", persona: "bob", sql: "DELETE FROM transactions", codes: []string{stDenied}, unchanged: []string{"transactions"}},
			{name: "write/assistant-insert", persona: "assistant", sql: "INSERT INTO transactions VALUES (999, 101, 1, 'x', 'tax', now())", codes: []string{stDenied}, unchanged: []string{"transactions"}},
			{name: "write/dana-update", persona: "dana", sql: "UPDATE transactions SET amount = 0", codes: []string{stDenied}, unchanged: []string{"transactions"}},
			{name: "write/insert-outside-scope", persona: "alice", sql: "INSERT INTO support_tickets VALUES (100, 2, NULL, " + ticket + ")", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-one-row-outside", persona: "alice", sql: "INSERT INTO support_tickets VALUES (101, 1, NULL, " + ticket + "), (102, 2, NULL, " + ticket + ")", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-select-outside", persona: "alice", sql: "INSERT INTO support_tickets (id, customer_id, subject, body, status) SELECT 103, 2, " + ticket, codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-null-owner", persona: "alice", sql: "INSERT INTO support_tickets VALUES (104, NULL, NULL, " + ticket + ")", codes: []string{stDenied, "23502"}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-volatile-owner", persona: "alice", sql: "INSERT INTO support_tickets VALUES (104, (random() * 0 + 2)::bigint, NULL, " + ticket + ")", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-default-checked-column", persona: "alice", sql: "INSERT INTO support_tickets (id, subject, body, status) VALUES (105, " + ticket + ")", codes: []string{stUnsupported, stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/insert-own-row", persona: "alice", setup: []string{"BEGIN"},
				sql: "INSERT INTO support_tickets VALUES (106, 1, NULL, " + ticket + ") RETURNING id, customer_id", rows: []string{"106|1"}, after: []string{"ROLLBACK"}},
			{name: "write/insert-select-copies-visible-only", persona: "alice", setup: []string{"BEGIN"},
				sql: "INSERT INTO support_tickets SELECT id + 1000, customer_id, assignee, subject, body, status FROM support_tickets RETURNING id", rows: []string{"1003", "1006"}, after: []string{"ROLLBACK"}},
			{name: "write/insert-returning-hidden-sublink", persona: "alice", setup: []string{"BEGIN"},
				sql: "INSERT INTO support_tickets VALUES (108, 1, NULL, " + ticket + ") RETURNING (SELECT count(*) FROM support_tickets)", rows: []string{"2"}, after: []string{"ROLLBACK"}},
			custom("write/insert-hidden-key-unique-violation", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				// Ticket 4 is erin's: its existence is not alice's to learn.
				_, _, err = x.exec("alice", conn, "INSERT INTO support_tickets VALUES (4, 1, NULL, "+ticket+")")
				if sqlState(err) == "23505" {
					return fmt.Errorf("a unique violation tells alice that hidden ticket 4 exists: %v", err)
				}
				return nil
			}),
			custom("write/on-conflict-do-nothing-probe", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				_, _, _ = x.exec("alice", conn, "BEGIN")
				defer func() { _, _, _ = x.exec("alice", conn, "ROLLBACK") }()
				_, hidden, err1 := x.exec("alice", conn, "INSERT INTO support_tickets VALUES (4, 1, NULL, "+ticket+") ON CONFLICT (id) DO NOTHING")
				_, free, err2 := x.exec("alice", conn, "INSERT INTO support_tickets VALUES (4004, 1, NULL, "+ticket+") ON CONFLICT (id) DO NOTHING")
				if err1 == nil && err2 == nil && hidden != free {
					return fmt.Errorf("ON CONFLICT DO NOTHING answers %q for hidden ticket 4 and %q for a free id", hidden, free)
				}
				return nil
			}),
			{name: "write/on-conflict-do-update-without-permission", persona: "alice",
				sql: "INSERT INTO support_tickets VALUES (4, 1, NULL, " + ticket + ") ON CONFLICT (id) DO UPDATE SET subject = 'pwned'", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/sam-insert-without-permission", persona: "sam",
				sql: "INSERT INTO support_tickets VALUES (4, 2, 'sam', " + ticket + ") ON CONFLICT (id) DO UPDATE SET assignee = 'sam'", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/sam-update-hidden-ticket", persona: "sam", sql: "UPDATE support_tickets SET status = 'closed' WHERE id = 4", tag: "UPDATE 0", unchanged: []string{"support_tickets"}},
			{name: "write/sam-update-closed-ticket", persona: "sam", sql: "UPDATE support_tickets SET body = 'x' WHERE id = 3", tag: "UPDATE 0", unchanged: []string{"support_tickets"}},
			{name: "write/sam-reassign-away", persona: "sam", sql: "UPDATE support_tickets SET assignee = 'tess' WHERE id = 1", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/sam-reassign-null", persona: "sam", sql: "UPDATE support_tickets SET assignee = NULL WHERE id = 1", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/sam-update-from-hidden", persona: "sam", sql: "UPDATE support_tickets s SET body = o.body FROM support_tickets o WHERE o.id = 4 AND s.id = 1", tag: "UPDATE 0", unchanged: []string{"support_tickets"}},
			{name: "write/sam-set-from-hidden-subquery", persona: "sam", sql: "UPDATE support_tickets SET body = (SELECT body FROM support_tickets WHERE id = 4) WHERE id = 1", codes: []string{"23502"}, unchanged: []string{"support_tickets"}},
			{name: "write/sam-delete-without-permission", persona: "sam", sql: "DELETE FROM support_tickets WHERE id = 1", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/writable-cte-update-hidden", persona: "alice", sql: "WITH u AS (UPDATE customers SET name = 'pwned' WHERE id = 2 RETURNING id) SELECT count(*) FROM u", rows: []string{"0"}, unchanged: []string{"customers"}},
			{name: "write/writable-cte-delete", persona: "alice", sql: "WITH d AS (DELETE FROM support_tickets RETURNING *) SELECT count(*) FROM d", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/writable-cte-insert-outside", persona: "alice", sql: "WITH i AS (INSERT INTO support_tickets VALUES (107, 2, NULL, " + ticket + ") RETURNING id) SELECT * FROM i", codes: []string{stDenied}, unchanged: []string{"support_tickets"}},
			{name: "write/merge-hidden-row", persona: "alice", sql: "MERGE INTO customers c USING (VALUES (2::bigint)) v(id) ON c.id = v.id WHEN MATCHED THEN UPDATE SET name = 'pwned'", codes: deniedOrUnsupported, unchanged: []string{"customers"}},
			{name: "write/merge-insert-outside", persona: "alice", sql: "MERGE INTO support_tickets t USING (VALUES (109::bigint)) v(id) ON t.id = v.id WHEN NOT MATCHED THEN INSERT VALUES (v.id, 2, NULL, " + ticket + ")", codes: deniedOrUnsupported, unchanged: []string{"support_tickets"}},
			{name: "write/truncate", persona: "alice", sql: "TRUNCATE support_tickets", codes: deniedOrUnsupported, unchanged: []string{"support_tickets"}},
			{name: "write/through-view", persona: "alice", sql: "UPDATE v_customers SET name = 'pwned'", codes: deniedOrUnsupported, unchanged: []string{"customers"}},
			{name: "write/lock-table", persona: "alice", setup: []string{"BEGIN"}, sql: "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE", codes: deniedOrUnsupported, after: []string{"ROLLBACK"}},
			{name: "write/select-for-update-hidden", persona: "alice", sql: "SELECT id FROM customers WHERE id = 2 FOR UPDATE", rows: nil, oracle: noRows},
			{name: "write/where-current-of", persona: "alice", setup: []string{"BEGIN", "DECLARE c CURSOR FOR SELECT * FROM customers FOR UPDATE", "FETCH c"},
				sql: "UPDATE customers SET name = 'x' WHERE CURRENT OF c", codes: deniedOrUnsupported, after: []string{"ROLLBACK"}},
			copyRefused("write/copy-from-outside-scope", "alice", "COPY support_tickets FROM STDIN", "110\t2\t\\N\ts\tb\topen\n", "support_tickets"),
			copyRefused("write/copy-from-mixed-rows", "alice", "COPY support_tickets FROM STDIN", "111\t1\t\\N\ts\tb\topen\n112\t2\t\\N\ts\tb\topen\n", "support_tickets"),
			copyRefused("write/copy-from-csv", "alice", "COPY support_tickets FROM STDIN (FORMAT csv)", "113,2,,s,b,open\n", "support_tickets"),
			copyRefused("write/copy-from-where", "alice", "COPY support_tickets FROM STDIN WHERE customer_id = 2 OR true", "114\t2\t\\N\ts\tb\topen\n", "support_tickets"),
			copyRefused("write/copy-from-column-list", "alice", "COPY support_tickets (id, customer_id, subject, body, status) FROM STDIN", "115\t2\ts\tb\topen\n", "support_tickets"),
			copyRefused("write/copy-from-without-permission", "bob", "COPY transactions FROM STDIN", "999\t101\t1\tx\ttax\t2024-01-01\n", "transactions"),
			copyRefused("write/copy-from-customers", "alice", "COPY customers FROM STDIN", "99\tEve\te@x\t1\t2\t2000-01-01\n", "customers"),
		},
	}
}
