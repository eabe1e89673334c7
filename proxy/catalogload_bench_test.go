package proxy

import "testing"

// BenchmarkLoadCatalog is one catalog load of the bank database with
// citext, hstore, pg_trgm and ltree installed: what a refresh costs the
// upstream and mandate.
func BenchmarkLoadCatalog(b *testing.B) {
	w := startBank(b)
	w.migrate(b, "CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; CREATE EXTENSION ltree")
	conn := w.owner.PgConn()
	for b.Loop() {
		if _, err := LoadCatalog(ctxT(b), conn); err != nil {
			b.Fatal(err)
		}
	}
}
