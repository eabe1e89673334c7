package identity

import (
	"errors"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// SQLSTATE codes of identity failures.
const (
	CodeInvalidAuthorization = "28000" // invalid_authorization_specification
	CodeInvalidPassword      = "28P01" // invalid_password
)

// Error is a refused token. Code is the SQLSTATE and Msg a message that is
// safe to show the client: it never echoes token content. The underlying
// cause, if any, is reachable through errors.Unwrap for server-side logs.
type Error struct {
	Code string
	Msg  string

	cause error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the library error that caused the refusal, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is lets errors.Is(err, ErrExpired) match any *Error of the same kind,
// whatever its cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == e.Msg
}

func (e *Error) with(cause error) *Error {
	return &Error{Code: e.Code, Msg: e.Msg, cause: cause}
}

// The refusals. Compare with errors.Is; the returned errors are copies that
// also carry the cause.
var (
	ErrMalformed         = &Error{Code: CodeInvalidPassword, Msg: "malformed token"}
	ErrUnsupportedAlg    = &Error{Code: CodeInvalidPassword, Msg: "unsupported algorithm"}
	ErrUnknownKey        = &Error{Code: CodeInvalidPassword, Msg: "unknown signing key"}
	ErrBadSignature      = &Error{Code: CodeInvalidPassword, Msg: "bad signature"}
	ErrExpired           = &Error{Code: CodeInvalidPassword, Msg: "token expired"}
	ErrNotYetValid       = &Error{Code: CodeInvalidPassword, Msg: "token not yet valid"}
	ErrWrongIssuer       = &Error{Code: CodeInvalidAuthorization, Msg: "wrong issuer"}
	ErrWrongAudience     = &Error{Code: CodeInvalidAuthorization, Msg: "wrong audience"}
	ErrNoExpiry          = &Error{Code: CodeInvalidAuthorization, Msg: "token has no expiry"}
	ErrTooLongLived      = &Error{Code: CodeInvalidAuthorization, Msg: "token expires too far ahead"}
	ErrNoSubject         = &Error{Code: CodeInvalidAuthorization, Msg: "token has no subject"}
	ErrInvalidActor      = &Error{Code: CodeInvalidAuthorization, Msg: "invalid actor claim"}
	ErrActorChainTooDeep = &Error{Code: CodeInvalidAuthorization, Msg: "actor chain too deep"}
	ErrInvalidScope      = &Error{Code: CodeInvalidAuthorization, Msg: "invalid scope claim"}
)

// classify maps a jwt parse error to one refusal. The parser checks the
// algorithm, then the key, then the signature, and only then the claims, so a
// forged token is reported as such even if it is also expired.
func classify(tok *jwt.Token, err error, allowedAlgs []string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed.with(err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// WithValidMethods reports a refused alg as an invalid signature.
		if tok != nil && tok.Method != nil && !slices.Contains(allowedAlgs, tok.Method.Alg()) {
			return ErrUnsupportedAlg.with(err)
		}
		return ErrBadSignature.with(err)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return classifyClaims(tok, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Raised before the keyfunc only for an unknown or missing alg.
		return ErrUnsupportedAlg.with(err)
	}
	return ErrMalformed.with(err)
}

func classifyClaims(tok *jwt.Token, err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrWrongIssuer.with(err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrWrongAudience.with(err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired.with(err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid.with(err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		claims := jwt.MapClaims{}
		if tok != nil {
			if c, ok := tok.Claims.(jwt.MapClaims); ok {
				claims = c
			}
		}
		iss, _ := claims.GetIssuer()
		aud, _ := claims.GetAudience()
		switch {
		case iss == "":
			return ErrWrongIssuer.with(err)
		case len(aud) == 0 || len(aud) == 1 && aud[0] == "":
			return ErrWrongAudience.with(err)
		default:
			return ErrNoExpiry.with(err)
		}
	}
	// A registered claim of the wrong JSON type.
	return ErrMalformed.with(err)
}
