// Package proxy is mandate's PostgreSQL wire-protocol front: it accepts
// clients, authenticates them, opens their upstream connection and relays
// every protocol path between the two.
//
// A session is a short script, one method per step (session.go):
//
//	startup      → SSL/GSS negotiation, StartupMessage or CancelRequest
//	authenticate → trust (loopback only) or SCRAM-SHA-256 against a verifier file
//	connect      → the upstream connection (pgconn.Connect, then Hijack)
//	ready        → ParameterStatus, our own BackendKeyData, ReadyForQuery
//	relay        → two loops until either side ends
//
// The relay is asymmetric. Client to upstream is decoded with a
// pgproto3.Backend whose body length is capped, so Query and Parse can be
// rewritten. Upstream to client is copied through as framed bytes with a side
// tap that reads only message types, command tags and SQLSTATEs for metrics:
// DataRows are never decoded or re-encoded.
//
// Errors become ErrorResponses in one place (errors.go). The package never
// builds SQL itself; it asks policy for grants and rewrite for SQL.
package proxy
