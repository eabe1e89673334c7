package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup packet codes (the first four body bytes).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocol30        = 3 << 16
	maxStartupLen     = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
)

// readStartupPacket reads one length-prefixed startup packet straight from
// the connection, without read-ahead: bytes a client sends before the TLS
// handshake must never be taken as if they came through TLS.
func readStartupPacket(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:]))) - 4
	if n < 4 || n > maxStartupLen {
		return nil, fatalf(codeProtocolViolation, fmt.Sprintf("invalid length of startup packet: %d", n+4), nil)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// startupResult is what the negotiation phase produced: a startup message
// (the normal case) or a cancel request (the connection ends after it).
type startupResult struct {
	startup *pgproto3.StartupMessage
	cancel  *pgproto3.CancelRequest
}

// negotiate runs the pre-startup exchange: SSLRequest (answered with TLS when
// configured), GSSENCRequest (refused), then StartupMessage or CancelRequest.
// It may replace s.conn with a TLS connection.
func (s *session) negotiate() (startupResult, error) {
	for {
		body, err := readStartupPacket(s.conn)
		if err != nil {
			return startupResult{}, err
		}
		switch code := binary.BigEndian.Uint32(body); {
		case code == codeSSLRequest:
			if s.tls || s.srv.cfg.TLS == nil || s.unix {
				if _, err := s.conn.Write([]byte{'N'}); err != nil {
					return startupResult{}, err
				}
				continue
			}
			if _, err := s.conn.Write([]byte{'S'}); err != nil {
				return startupResult{}, err
			}
			tc := tls.Server(s.conn, s.srv.cfg.TLS)
			if err := tc.Handshake(); err != nil {
				return startupResult{}, fmt.Errorf("TLS handshake: %w", err)
			}
			s.conn, s.tls = tc, true
		case code == codeGSSENCRequest:
			// GSSAPI encryption is not offered; 'N' lets the client go on
			// in plaintext or over TLS, as with PostgreSQL without GSSAPI.
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return startupResult{}, err
			}
		case code == codeCancelRequest:
			var cr pgproto3.CancelRequest
			if err := cr.Decode(body); err != nil {
				return startupResult{}, fatalf(codeProtocolViolation, "malformed cancel request", err)
			}
			return startupResult{cancel: &cr}, nil
		case code>>16 == 3:
			var sm pgproto3.StartupMessage
			if err := sm.Decode(body); err != nil {
				return startupResult{}, fatalf(codeProtocolViolation, "malformed startup packet", err)
			}
			return startupResult{startup: &sm}, nil
		default:
			return startupResult{}, fatalf(codeFeatureUnsupported, fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff), nil)
		}
	}
}

// safeStartupOptions are the settings a client may pass in the `options`
// startup parameter (-c name=value). Anything else could change who the
// upstream thinks we are (role, session_authorization) and is refused.
var safeStartupOptions = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "intervalstyle": true,
	"timezone": true, "extra_float_digits": true, "search_path": true, "statement_timeout": true,
	"lock_timeout": true, "idle_in_transaction_session_timeout": true, "geqo": true,
	"standard_conforming_strings": true, "bytea_output": true, "default_transaction_isolation": true,
	"default_transaction_read_only": true, "jit": true, "work_mem": true,
}

// upstreamParams returns the startup parameters to pass on upstream, and the
// `_pq_.` protocol options to report as unrecognized. user and database are
// mandate's to decide; replication and unsafe settings are refused. A
// setting's name is case-insensitive to PostgreSQL, so it is passed on in
// lower case, once (red team round 32: SEARCH_PATH reached the upstream
// while the proxy tracked the default path). LOG and DEBUG messages a
// startup client_min_messages asks for are dropped in relay.
func upstreamParams(sm *pgproto3.StartupMessage) (params map[string]string, unrecognized []string, err error) {
	params = map[string]string{}
	for k, v := range sm.Parameters {
		switch lk := strings.ToLower(k); {
		case k == "user" || k == "database":
		case k == "replication":
			if v != "false" && v != "off" && v != "no" && v != "0" {
				return nil, nil, fatalf(codeFeatureUnsupported, "replication connections are not supported through mandate", nil)
			}
		case strings.HasPrefix(k, "_pq_."):
			unrecognized = append(unrecognized, k)
		case k == "options":
			if err := checkStartupOptions(v); err != nil {
				return nil, nil, err
			}
			params[k] = v
		case lk == "user" || lk == "database" || lk == "replication" || lk == "options" ||
			lk == "role" || lk == "session_authorization" || strings.HasPrefix(lk, "mandate."):
			return nil, nil, fatalf(codeInsufficientPriv, fmt.Sprintf("startup parameter %q is not allowed through mandate", k), nil)
		default:
			if _, twice := params[lk]; twice {
				return nil, nil, fatalf(codeProtocolViolation, fmt.Sprintf("startup parameter %q is given twice", lk), nil)
			}
			params[lk] = v
		}
	}
	return params, unrecognized, nil
}

// checkStartupOptions allows only "-c name=value" / "--name=value" pairs of
// safe settings in the options parameter.
func checkStartupOptions(opts string) error {
	settings, err := optionSettings(opts)
	if err != nil {
		return err
	}
	for _, kv := range settings {
		if !safeStartupOptions[kv[0]] {
			return fatalf(codeInsufficientPriv, fmt.Sprintf("startup option %q is not allowed through mandate", kv[0]), nil)
		}
	}
	return nil
}

// optionSettings reads the options startup parameter as PostgreSQL does:
// split by pg_split_opts (whitespace separates, a backslash escapes the
// next character: "-c application_name=x\ -c\ role=y" is one setting),
// then "-c name=value", "-cname=value" or "--name=value", the name in
// lower case with dashes as underscores. Any other switch is refused.
func optionSettings(opts string) ([][2]string, error) {
	var args []string
	var arg strings.Builder
	escaped, inArg := false, false
	for i := 0; i < len(opts); i++ {
		c := opts[i]
		switch {
		case !escaped && isOptionSpace(c):
			if inArg {
				args, inArg = append(args, arg.String()), false
				arg.Reset()
			}
			continue
		case !escaped && c == '\\':
			escaped = true
		default:
			escaped = false
			arg.WriteByte(c)
		}
		inArg = true
	}
	if inArg {
		args = append(args, arg.String())
	}
	var settings [][2]string
	for i := 0; i < len(args); i++ {
		a := args[i]
		var kv string
		switch {
		case a == "-c" && i+1 < len(args):
			i++
			kv = args[i]
		case strings.HasPrefix(a, "-c") && a != "-c":
			kv = a[2:]
		case strings.HasPrefix(a, "--") && a != "--":
			kv = a[2:]
		default:
			return nil, fatalf(codeInsufficientPriv, fmt.Sprintf("startup option %q is not allowed through mandate", a), nil)
		}
		name, value, _ := strings.Cut(kv, "=")
		settings = append(settings, [2]string{strings.ReplaceAll(strings.ToLower(name), "-", "_"), value})
	}
	return settings, nil
}

// isOptionSpace is C's isspace, which pg_split_opts splits on.
func isOptionSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// isLoopback reports whether a client connection comes from this host.
func isLoopback(c net.Conn) bool {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
