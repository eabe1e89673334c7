package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// mockSalt keys the fake SCRAM credentials of unknown users, so that an
// unknown user fails exactly like a wrong password (as PostgreSQL does) and
// the salt for a name is stable across attempts.
var mockSalt = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// authenticate proves the client's identity and returns it.
func (s *session) authenticate(user string) (principal, error) {
	if user == "" {
		return principal{}, fatalf(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet", nil)
	}
	method := s.srv.cfg.Auth
	var p principal
	var err error
	switch method {
	case AuthTrust:
		// Checked at start-up too; this guards against a listener added later.
		if isLoopback(s.conn) {
			p = principal{Subject: user, Method: "trust"}
		} else {
			err = fatalf(codeInvalidAuthSpec, "trust authentication is allowed only from loopback", nil)
		}
	case AuthSCRAM:
		err = s.authSCRAM(user)
		p = principal{Subject: user, Method: "scram"}
	case AuthJWT:
		p, err = s.authJWT(user)
	default:
		err = fatalf(codeInvalidAuthSpec, "no authentication method configured", nil)
	}
	if err != nil {
		s.srv.metrics.authFailures.WithLabelValues(string(method)).Inc()
	}
	s.auditLogin(user, p, err)
	return p, err
}

// authJWT takes a bearer token as the password: cleartext, so only over
// TLS or from this host.
func (s *session) authJWT(user string) (principal, error) {
	if !s.tls && !isLoopback(s.conn) {
		return principal{}, fatalf(codeInvalidAuthSpec, "bearer tokens are accepted only over TLS (sslmode=require) or from loopback", nil)
	}
	if err := s.send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return principal{}, err
	}
	msg, err := s.receiveAuth()
	if err != nil {
		return principal{}, err
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return principal{}, fatalf(codeProtocolViolation, fmt.Sprintf("expected password response, got %T", msg), nil)
	}
	e := s.srv.cfg.Enforcer
	id, err := e.Verifier.Verify(pw.Password)
	if err != nil {
		return principal{}, asFatal(err)
	}
	if id.Subject != user && !(len(id.Actors) > 0 && id.Actors[len(id.Actors)-1].ID == user) {
		// The startup user must name the token's subject or its acting party,
		// so logs and pg_stat_activity never show a misleading name.
		// The refusal's record names the token's holder (red team round
		// 33, F2: it named the user, whom anyone could so accuse).
		return fromIdentity(id), fatalf(codeInvalidAuthSpec, fmt.Sprintf("token is for %q, not for user %q", id.Subject, user), nil)
	}
	return fromIdentity(id), nil
}

func (s *session) authSCRAM(user string) error {
	creds, known := s.srv.cfg.Verifiers[user]
	if !known {
		creds = mockCredentials(user)
	}
	// PostgreSQL clients leave the SCRAM user name empty (it is in the
	// startup packet), so the lookup ignores its argument.
	server, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	if err != nil {
		return err
	}
	conv := server.NewConversation()
	failed := fatalf(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", user), nil)

	if err := s.send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}}); err != nil {
		return err
	}
	if err := s.backend.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return err
	}
	msg, err := s.receiveAuth()
	if err != nil {
		return err
	}
	initial, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return fatalf(codeProtocolViolation, fmt.Sprintf("expected SASL response, got %T", msg), nil)
	}
	if initial.AuthMechanism != "SCRAM-SHA-256" {
		return fatalf(codeProtocolViolation, "client selected an invalid SASL authentication mechanism", nil)
	}
	reply, err := conv.Step(string(initial.Data))
	if err != nil {
		return failed
	}
	if err := s.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(reply)}); err != nil {
		return err
	}
	if err := s.backend.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return err
	}
	msg, err = s.receiveAuth()
	if err != nil {
		return err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fatalf(codeProtocolViolation, fmt.Sprintf("expected SASL response, got %T", msg), nil)
	}
	final, err := conv.Step(string(resp.Data))
	if err != nil || !conv.Valid() || !known {
		return failed
	}
	return s.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(final)})
}

// mockCredentials derives stable, unguessable credentials for an unknown
// user, so the exchange runs to the end and fails like a wrong password.
func mockCredentials(user string) scram.StoredCredentials {
	mac := hmac.New(sha256.New, mockSalt)
	mac.Write([]byte(user))
	sum := mac.Sum(nil)
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(sum[:16]), Iters: scramIterations},
		StoredKey:  sum, ServerKey: sum,
	}
}

// maxAuthMessageLen bounds an authentication message's body, as
// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH does: before login a connection may
// not make mandate hold --max-message-size bytes (red team round 40c: 1,000
// unauthenticated connections could each pin 64 MiB).
const maxAuthMessageLen = 65535

// receiveAuth reads the client's next authentication message.
func (s *session) receiveAuth() (pgproto3.FrontendMessage, error) {
	msg, err := s.backend.Receive()
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooBig) {
		s.srv.metrics.connsRejected.WithLabelValues("message_too_large").Inc()
		return nil, fatalf(codeProtocolViolation, fmt.Sprintf("authentication message of %d bytes exceeds the limit of %d", tooBig.ActualBodyLen, maxAuthMessageLen), nil)
	}
	return msg, err
}
