// Package audit writes and verifies the decision log: one JSON line per
// statement decision (who, for whom, what, which policies, filters and masks,
// outcome), chained with SHA-256 so that editing, deleting, inserting or
// reordering lines is detected by Verify (`mandate audit verify FILE`).
//
// File format (mandate-audit/1). The first line is a genesis line naming the
// log; every following line is a Record:
//
//	{"seq":0,"format":"mandate-audit/1","log_id":"…","started":"…","prev":"000…0","hash":"…"}
//	{"seq":1,"prev":"<hash of line 1>","time":"…","session":"…",…,"hash":"…"}
//	{"seq":2,"prev":"<hash of line 2>",…,"hash":"…"}
//
// A line's hash is the lowercase hex SHA-256 of the line's exact bytes with
// the final `,"hash":"…"` member removed (so `…}` without the newline). Since
// "prev" sits inside the hashed bytes, each hash covers the whole history
// before it. Verify recomputes every hash from the bytes as written (no JSON
// re-encoding), checks seq counts up by one and prev equals the previous
// line's hash, and reports the first bad line by number. A genesis line with
// its random log_id and start time makes two logs' chains distinct.
//
// Limits. The chain is keyless: it proves a log is internally consistent,
// not who wrote it. Someone able to rewrite the file can recompute every
// hash after their edit, and dropping lines from the end leaves a valid
// shorter chain. Anchor the head (Writer.Head: seq and hash) somewhere the
// host cannot rewrite — a remote log, a metric, a ticket — and compare.
//
// Durability. By default a Writer hands every record to the OS before Write
// returns (one write(2) per record, no fsync), so a crash of the proxy loses
// nothing it has reported. Options.FlushInterval batches records in memory
// instead, for throughput, at the cost of losing up to one interval on a
// crash. Close always flushes and, for files, fsyncs.
//
// This package must never record a token, a password or a statement's
// parameter values — Record has no field that could hold them, and the
// statement itself appears only as its fingerprint. It never decides
// anything: it records what the proxy decided.
package audit
