package rewrite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestTimeZoneMovesNoFilterOrMask: a Cedar datetime compared with a date
// column, and a truncate mask on a timestamptz column, give the same rows
// and values whatever TimeZone the client sets. In the session's zone,
// SET TIME ZONE moved a filter on birth dates by up to a day, and stepping
// the zone a minute at a time showed when a truncated day flipped, and so
// the exact time (red team round 21, F1 and F2).
func TestTimeZoneMovesNoFilterOrMask(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer, owner text, born date, at timestamptz);
		INSERT INTO public.docs VALUES (1, 'alice', '1980-02-10', '2024-10-10 23:30+00'),
			(2, 'alice', '1980-02-09', '2024-10-10 00:30+00')`)
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "born date", "at timestamp with time zone").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	set := aliceDocs(map[string]grant.Mask{"at": {Kind: grant.MaskTruncate, Unit: "day"}})
	set.Relations["public.docs"].Filter[grant.Select] = grant.Compare{Op: grant.Lt,
		Left: grant.Column{Name: "born"}, Right: grant.Literal{V: "1980-02-10T00:00:00Z", Type: "timestamptz"}}
	res, err := RewriteSQL("SELECT id, extract(epoch FROM at)::int8 FROM docs ORDER BY id", cat, Session{}, &setSource{set: set}, &Options{Protected: docsOnly})
	if err != nil {
		t.Fatal(err)
	}
	conn := connectPG(t, c)
	const want = "[[2 1728518400]]" // born before 1980-02-10; 2024-10-10 00:00 UTC
	for _, zone := range []string{"UTC", "Etc/GMT-14", "Etc/GMT+12", "Asia/Kathmandu"} {
		if _, err := conn.Exec(context.Background(), "SET TIME ZONE '"+zone+"'"); err != nil {
			t.Fatal(err)
		}
		if got := rowsOf(t, conn, res.SQL); got != want {
			t.Errorf("TimeZone %s: %s, want %s\n%s", zone, got, want, res.SQL)
		}
	}
}

// TestTimeZoneDependentPolicyRefused: a datetime compared with a column
// whose type mandate cannot place (a domain over date), or a date column
// compared with a timestamptz one, has no form independent of TimeZone:
// the read is refused (red team round 22, F1: a domain over date let SET
// TIME ZONE move the filter again).
func TestTimeZoneDependentPolicyRefused(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "born public.dob", "seen date", "at timestamp with time zone").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []grant.Expr{
		grant.Compare{Op: grant.Lt, Left: grant.Column{Name: "born"}, Right: grant.Literal{V: "1980-02-10T00:00:00Z", Type: "timestamptz"}},
		grant.Compare{Op: grant.Lt, Left: grant.Column{Name: "seen"}, Right: grant.Column{Name: "at"}},
		grant.Compare{Op: grant.Gt, Left: grant.Column{Name: "at"}, Right: grant.Column{Name: "seen"}},
	} {
		set := aliceDocs(nil)
		set.Relations["public.docs"].Filter[grant.Select] = f
		_, err := RewriteSQL("SELECT id FROM docs", cat, Session{}, &setSource{set: set}, &Options{Protected: docsOnly})
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeDenied || !strings.Contains(re.Msg+re.Detail, "TimeZone") {
			t.Errorf("%v: got %v, want a refusal naming TimeZone", f, err)
		}
	}
}
