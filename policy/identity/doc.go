// Package identity turns a JWT bearer token into the caller's identity: the
// subject whose data rights apply, the actor chain that acts for it (RFC 8693
// "act"), the OAuth scopes and the remaining claims as policy context.
//
// A Verifier checks the signature against a JWKS (a local file re-read when it
// changes, or a URL cached and refreshed through keyfunc/jwkset, with a
// rate-limited refresh when an unknown "kid" shows up during key rotation),
// then iss, aud, exp and nbf against an injected clock with a bounded skew.
// Only RS256, ES256 and EdDSA are ever accepted; "none", HMAC and everything
// else are refused before any key is looked up, so a public key can never be
// used as an HMAC secret (algorithm confusion).
//
// Every refusal is an *Error carrying a SQLSTATE and a short message that is
// safe to send to the client:
//
//   - 28P01 (invalid_password): the credential itself does not hold — malformed
//     token, unsupported algorithm, unknown signing key, bad signature, expired
//     or not yet valid. PostgreSQL reports an expired role password the same way.
//   - 28000 (invalid_authorization_specification): an authentic token that does
//     not authorize this connection — wrong issuer or audience, no expiry, no
//     subject, an invalid or too deep actor chain, an invalid scope claim.
//
// Actor chain. {"sub":"alice","act":{"sub":"agent:assistant","act":{"sub":"bob"}}}
// reads "assistant acts for bob, who acts for alice". Identity.Actors follows
// policy.Scope's order, from the actor closest to the subject to the one that
// is connected: [bob (delegate), assistant (agent)]. An actor is an agent when
// its sub carries the "agent:" prefix or its act object says
// "mandate_actor_kind":"agent"; otherwise it is a delegate. The prefix is not
// part of the ID ("agent:assistant" becomes ID "assistant", kind agent), so the
// same agent has one ID whichever way the issuer marked it. A prefixed sub
// marked "delegate" is contradictory and refused. Chains deeper than
// Config.MaxActorDepth (default 8) are refused.
//
// Development keys. GenerateDevKey writes an Ed25519 key and its JWKS for the
// demo, and Mint signs tokens for `mandate token`. Mint only accepts a *DevKey,
// which only GenerateDevKey and LoadDevKey produce, and LoadDevKey only accepts
// a PEM block whose "Mandate-Key-ID" header starts with "mandate-dev". Keys
// from an identity provider or openssl never carry that header, so a real
// signing key cannot be used to mint tokens by mistake. Conversely a Verifier
// refuses tokens signed with a "mandate-dev*" kid unless Config.AllowDevKeys is
// set, so a demo JWKS copied into production does not open a back door.
//
// This package must never log, store or return the raw token, never fetch keys
// named by the token itself (jku, x5u, jwk headers are ignored), and never
// talk to PostgreSQL; it knows nothing of sockets or sessions.
package identity
