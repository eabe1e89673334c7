package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/grant"
)

// copyBank copies the bank world into a temporary directory tests may edit.
func copyBank(t *testing.T) Sources {
	t.Helper()
	dir := t.TempDir()
	src := Sources{
		PolicyDir: filepath.Join(dir, "policies"),
		Schema:    filepath.Join(dir, "schema.cedarschema"),
		Entities:  filepath.Join(dir, "entities.json"),
		Masks:     filepath.Join(dir, "masks.yaml"),
	}
	if err := os.Mkdir(src.PolicyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(bankSources.PolicyDir, "*.cedar"))
	for _, f := range files {
		copyFile(t, f, filepath.Join(src.PolicyDir, filepath.Base(f)))
	}
	copyFile(t, bankSources.Schema, src.Schema)
	copyFile(t, bankSources.Entities, src.Entities)
	copyFile(t, bankSources.Masks, src.Masks)
	return src
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejects(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, src Sources)
		want string
	}{
		{"syntax error", func(t *testing.T, src Sources) {
			writeFile(t, filepath.Join(src.PolicyDir, "bad.cedar"), "@id(\"bad\")\npermit (principal, action, resource)\nwhen { resource.id == };\n")
		}, "bad.cedar:3:"},
		{"missing @id", func(t *testing.T, src Sources) {
			writeFile(t, filepath.Join(src.PolicyDir, "noid.cedar"), "// first line\n\npermit (principal, action == Action::\"select\", resource is Account);\n")
		}, "noid.cedar:3: policy has no @id"},
		{"schema mismatch", func(t *testing.T, src Sources) {
			writeFile(t, filepath.Join(src.PolicyDir, "typo.cedar"), "@id(\"typo\")\npermit (principal, action == Action::\"select\", resource is Account)\nwhen { resource.owner == 1 };\n")
		}, "typo.cedar:1: policy \"typo\" does not match the schema"},
		{"duplicate id", func(t *testing.T, src Sources) {
			writeFile(t, filepath.Join(src.PolicyDir, "zz.cedar"), "@id(\"customer-own-accounts\")\nforbid (principal, action, resource);\n")
		}, "zz.cedar:1: policy id \"customer-own-accounts\" is already used at"},
		{"entity not in schema", func(t *testing.T, src Sources) {
			writeFile(t, src.Entities, `[{"uid": {"type": "User", "id": "eve"}, "attrs": {"customer_id": 9}, "parents": []}]`)
		}, `entities.json: entity User::"eve"`},
		{"entities syntax", func(t *testing.T, src Sources) {
			writeFile(t, src.Entities, "[\n  {\"uid\": \n}\n]")
		}, "entities.json:3"},
		{"unknown mask key", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "columns:\n  public.customers.ssn: {mask: partial, keep: 4}\n  public.customers.phone: {mask: partial, keepp: 4}\n")
		}, "masks.yaml:3: field keepp not found"},
		{"unknown mask kind", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "columns:\n  public.customers.ssn: {mask: scramble}\n")
		}, `masks.yaml:2: column "public.customers.ssn": unknown mask "scramble"`},
		{"bad mask parameter", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "tags:\n  money: {mask: round}\ncolumns:\n  public.accounts.balance: {tag: money}\n")
		}, `masks.yaml:2: tag "money": round needs step > 0`},
		{"stray mask parameter", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "columns:\n  public.customers.email: {mask: email, keep: 3}\n")
		}, `keep does not apply to mask "email"`},
		{"unknown tag", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "columns:\n\n  public.customers.id: {tag: nope}\n")
		}, `masks.yaml:3: column "public.customers.id": unknown tag "nope"`},
		{"masked column not in schema", func(t *testing.T, src Sources) {
			writeFile(t, src.Masks, "columns:\n  public.customers.sn: {mask: null}\n")
		}, `masks.yaml:2: column "public.customers.sn": public.customers (Customer) has no attribute "sn"`},
		{"schema syntax", func(t *testing.T, src Sources) {
			writeFile(t, src.Schema, "entity User = {\n  username: String,\n;\n")
		}, "schema.cedarschema:3:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := copyBank(t)
			c.edit(t, src)
			_, err := Load(src)
			if err == nil {
				t.Fatalf("Load accepted it, want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, c.want)
			}
			if !errors.Is(err, &Error{Code: CodeConfigFile}) {
				t.Errorf("error %v is not a %s config error", err, CodeConfigFile)
			}
		})
	}
}

func TestReloadKeepsOldSetOnError(t *testing.T) {
	src := copyBank(t)
	e := openBank(t, src, Options{})
	v1 := e.Snapshot().Version
	accounts := bankTables["accounts"]

	writeFile(t, filepath.Join(src.PolicyDir, "broken.cedar"), "@id(\"broken\")\npermit (principal, action, resource) when { resource. };\n")
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), "broken.cedar:2:") {
		t.Fatalf("Reload error = %v, want one naming broken.cedar:2", err)
	}
	if e.Snapshot().Version != v1 {
		t.Fatal("a failed reload replaced the snapshot")
	}
	r, err := e.Grants(aliceScope, accounts)
	if err != nil || !r.Can(grant.Select) {
		t.Fatalf("old policies no longer serve alice: %v %v", err, r)
	}

	// A good reload takes effect on the next decision, cached or not.
	if _, err := e.GrantSet(aliceScope, []RelationInfo{accounts}, 1); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src.PolicyDir, "broken.cedar"), "@id(\"freeze-accounts\")\nforbid (principal, action, resource is Account);\n")
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Snapshot().Version == v1 {
		t.Error("version did not change on reload")
	}
	set, err := e.GrantSet(aliceScope, []RelationInfo{accounts}, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkGrant(t, set.Lookup("public.accounts"), want{reason: "user alice is forbidden on public.accounts by freeze-accounts"})
}

// Residuals the engine cannot translate fail closed: a permit grants
// nothing, a forbid forbids everything, and the reason says so.
func TestUntranslatableResidualsFailClosed(t *testing.T) {
	cases := []struct {
		name, policy, table string
		want                want
	}{
		{"permit with like", `@id("fresh-only")
permit (principal is User, action == Action::"select", resource is Transaction)
when { resource.merchant like "Fresh*" };`, "transactions",
			// alice keeps her own rows; the untranslatable permit adds none.
			want{filters: sel("account_id IN (101, 102)")}},
		{"permit with like on a denied table", `@id("fresh-customers")
permit (principal is User, action == Action::"delete", resource is Customer)
when { resource.name like "A*" };`, "customers",
			want{filters: map[grant.Action]string{grant.Select: "id = 1", grant.Update: "id = 1"}, reason: "policy fresh-customers"}},
		{"forbid with like", `@id("no-fresh")
forbid (principal, action == Action::"select", resource is Transaction)
when { resource.merchant like "Fresh*" };`, "transactions",
			want{reason: "user alice is forbidden on public.transactions by no-fresh (policy no-fresh"}},
		{"forbid with a residual", `@id("no-big-debits")
forbid (principal, action == Action::"select", resource is Transaction)
when { resource.amount.lessThan(decimal("-1000.0")) || resource.category == "rent" };`, "transactions",
			want{filters: sel("account_id IN (101, 102) AND NOT (amount < '-1000.0'::numeric OR category = 'rent')")}},
		{"if-then-else residual", `@id("ite")
permit (principal is User, action == Action::"delete", resource is SupportTicket)
when { principal has customer_id && (if resource.status == "closed" then resource.customer_id == principal.customer_id else false) };`, "support_tickets",
			want{filters: map[grant.Action]string{
				grant.Select: "customer_id = 1", grant.Insert: "customer_id = 1",
				// if/then/else folds; the frozen-ticket forbid still applies.
				grant.Delete: "status = 'closed' AND customer_id = 1 AND NOT status = 'closed'",
			}, reason: "update"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := copyBank(t)
			writeFile(t, filepath.Join(src.PolicyDir, "extra.cedar"), c.policy)
			e := openBank(t, src, Options{})
			r, err := e.Grants(aliceScope, bankTables[c.table])
			if err != nil {
				t.Fatal(err)
			}
			checkGrant(t, r, c.want)
		})
	}
}

func TestParseMasks(t *testing.T) {
	src := `tags:
  ref: {mask: hash, key: customer}
  gone: {mask: null}
columns:
  public.t.a: {tag: ref}
  public.t.b: {mask: null}
  public.t.c: {mask: redact}
  public.t.d: {mask: partial, keep: 2}
  public.t.e: {mask: email}
  public.t.f: {mask: bucket, step: 0.5}
  public.t.g: {mask: truncate, unit: month}
  public.t.h: {tag: gone}
`
	m, err := ParseMasks("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "hash(customer)", "b": "null", "c": "redact", "d": "partial(2)", "e": "email", "f": "bucket(0.5)", "g": "truncate(month)", "h": "null"}
	for col, w := range want {
		mk, ok := m.Column("public.t", col)
		if !ok || mk.String() != w {
			t.Errorf("%s: got %v %v, want %s", col, mk.String(), ok, w)
		}
	}
	if mk, _ := m.Column("public.t", "a"); mk.Tag != "ref" {
		t.Errorf("tag of a = %q, want ref", mk.Tag)
	}
	if _, ok := m.Column("public.t", "z"); ok {
		t.Error("undeclared column has a mask")
	}
}

func TestWatchReloadsChangedSources(t *testing.T) {
	src := copyBank(t)
	e := openBank(t, src, Options{})
	v1 := e.Snapshot().Version
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan error, 4)
	go e.Watch(ctx, 5*time.Millisecond, func(err error) { reloads <- err })

	writeFile(t, filepath.Join(src.PolicyDir, "bad.cedar"), "permit (principal, action, resource);\n")
	select {
	case err := <-reloads:
		if err == nil || !strings.Contains(err.Error(), "bad.cedar:1: policy has no @id") {
			t.Fatalf("reload error = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after a policy file was added")
	}
	if e.Snapshot().Version != v1 {
		t.Fatal("a rejected reload replaced the snapshot")
	}
	if err := os.Remove(filepath.Join(src.PolicyDir, "bad.cedar")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reloads:
		if err != nil {
			t.Fatalf("reload after fix: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after the bad file was removed")
	}
	if e.Snapshot().Version == v1 {
		t.Error("the fixed sources were not loaded")
	}
}

func TestCheckCatalog(t *testing.T) {
	s, err := Load(bankSources)
	if err != nil {
		t.Fatal(err)
	}
	var catalog []RelationInfo
	for _, name := range allTables {
		catalog = append(catalog, bankTables[name])
	}
	if err := s.CheckCatalog(catalog); err != nil {
		t.Fatalf("bank catalog: %v", err)
	}
	tx := bankTables["transactions"]
	tx.Columns = tx.Columns[:len(tx.Columns)-1]
	err = s.CheckCatalog([]RelationInfo{bankTables["customers"], bankTables["accounts"], tx})
	for _, want := range []string{`public.transactions (Transaction) has no column "booked_at"`, "public.support_tickets (SupportTicket) is not in the catalog"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
}
