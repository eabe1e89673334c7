package identity

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mandate-proxy/mandate/policy"
)

func TestVerifyRoundTrip(t *testing.T) {
	clk := &clock{now: t0}
	keys := []testKey{newKey(t, "rsa", "RS256"), newKey(t, "ec", "ES256"), newKey(t, "ed", "EdDSA")}
	v, _ := fileVerifier(t, clk, keys...)
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			c := baseClaims()
			c["act"] = map[string]any{"sub": "agent:assistant", "act": map[string]any{"sub": "bob"}}
			c["scope"] = "read:accounts read:transactions read:accounts"
			c["device"] = "laptop-7"
			c["risk"] = 2
			token := sign(t, k, c)
			id, err := v.Verify(token)
			if err != nil {
				t.Fatal(err)
			}
			want := []policy.Actor{{ID: "bob", Kind: policy.ActorDelegate}, {ID: "assistant", Kind: policy.ActorAgent}}
			if id.Subject != "alice" || !reflect.DeepEqual(id.Actors, want) {
				t.Errorf("subject %q actors %v, want alice %v", id.Subject, id.Actors, want)
			}
			if !reflect.DeepEqual(id.Scopes, []string{"read:accounts", "read:transactions"}) {
				t.Errorf("scopes %v", id.Scopes)
			}
			if !id.ExpiresAt.Equal(t0.Add(time.Hour)) {
				t.Errorf("expires %v", id.ExpiresAt)
			}
			if id.Claims["device"] != "laptop-7" || id.Claims["risk"] != 2.0 || id.Claims["iss"] != testIss {
				t.Errorf("claims %v", id.Claims)
			}
			for _, k := range []string{"sub", "act", "scope", "exp", "iat", "nbf", "jti"} {
				if _, ok := id.Claims[k]; ok {
					t.Errorf("claim %q should be mapped or dropped, not copied", k)
				}
			}
			if strings.Contains(fmt.Sprint(id), token) || strings.Contains(fmt.Sprint(id), strings.Split(token, ".")[2]) {
				t.Error("identity carries the raw token")
			}
		})
	}
}

func TestActorChain(t *testing.T) {
	clk := &clock{now: t0}
	k := newKey(t, "ed", "EdDSA")
	v, _ := fileVerifier(t, clk, k)
	nest := func(n int) map[string]any {
		var act map[string]any
		for i := range n {
			next := map[string]any{"sub": fmt.Sprintf("d%d", i)}
			if act != nil {
				next["act"] = act
			}
			act = next
		}
		return act
	}
	cases := []struct {
		name    string
		act     any
		want    []policy.Actor
		wantErr *Error
	}{
		{"kind claim marks an agent", map[string]any{"sub": "assistant", ActorKindClaim: "agent"},
			[]policy.Actor{{ID: "assistant", Kind: policy.ActorAgent}}, nil},
		{"prefix and kind agree", map[string]any{"sub": "agent:assistant", ActorKindClaim: "agent"},
			[]policy.Actor{{ID: "assistant", Kind: policy.ActorAgent}}, nil},
		{"explicit delegate", map[string]any{"sub": "bob", ActorKindClaim: "delegate"},
			[]policy.Actor{{ID: "bob", Kind: policy.ActorDelegate}}, nil},
		{"max depth", nest(DefaultMaxActorDepth), nil, nil},
		{"too deep", nest(DefaultMaxActorDepth + 1), nil, ErrActorChainTooDeep},
		{"prefix contradicts kind", map[string]any{"sub": "agent:x", ActorKindClaim: "delegate"}, nil, ErrInvalidActor},
		{"unknown kind", map[string]any{"sub": "x", ActorKindClaim: "robot"}, nil, ErrInvalidActor},
		{"not an object", "bob", nil, ErrInvalidActor},
		{"null", nil, nil, ErrInvalidActor},
		{"no sub", map[string]any{"act": map[string]any{"sub": "bob"}}, nil, ErrInvalidActor},
		{"empty agent id", map[string]any{"sub": "agent:"}, nil, ErrInvalidActor},
		{"nested not an object", map[string]any{"sub": "bob", "act": []any{"x"}}, nil, ErrInvalidActor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseClaims()
			c["act"] = tc.act
			id, err := v.Verify(sign(t, k, c))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(id.Actors, tc.want) {
				t.Errorf("actors %v, want %v", id.Actors, tc.want)
			}
			if tc.name == "max depth" && (len(id.Actors) != DefaultMaxActorDepth || id.Actors[0].ID != "d0") {
				t.Errorf("actors %v", id.Actors)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	clk := &clock{now: t0}
	k := newKey(t, "ed", "EdDSA")
	v, _ := fileVerifier(t, clk, k)
	c := baseClaims()
	c["scope"] = []any{"a", "b", "a"}
	id, err := v.Verify(sign(t, k, c))
	if err != nil || !reflect.DeepEqual(id.Scopes, []string{"a", "b"}) {
		t.Fatalf("scopes %v err %v", id.Scopes, err)
	}
	for _, bad := range []any{[]any{"a", 1}, []any{"a b"}, 42} {
		c["scope"] = bad
		if _, err := v.Verify(sign(t, k, c)); !errors.Is(err, ErrInvalidScope) {
			t.Errorf("scope %v: err %v", bad, err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	clk := &clock{now: t0}
	ed := newKey(t, "ed", "EdDSA")
	rs := newKey(t, "rsa", "RS256")
	v, _ := fileVerifier(t, clk, ed, rs)
	skew := DefaultClockSkew

	with := func(edit func(jwt.MapClaims)) string {
		c := baseClaims()
		edit(c)
		return sign(t, ed, c)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	valid := sign(t, ed, baseClaims())
	parts := strings.Split(valid, ".")

	// Algorithm confusion: HS256 keyed with the RSA public key's PEM, which a
	// naive verifier would hand to HMAC as the "key" for kid rsa.
	der, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, baseClaims())
	hs.Header["kid"] = "rsa"
	hsToken, err := hs.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, baseClaims())
	none.Header["kid"] = "ed"
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// A token claiming RS256 for the Ed25519 key id.
	mismatch := b64([]byte(`{"alg":"RS256","kid":"ed","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	// Flip a bit of the signature itself, not of its base64 text: a
	// flipped character may not be base64 at all (a malformed token).
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[5] ^= 1
	tamperedSig := base64.RawURLEncoding.EncodeToString(sig)
	payloadJSON := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"mallory","exp":%d}`, testIss, testAud, t0.Add(time.Hour).Unix())

	unknown := newKey(t, "gone", "EdDSA")
	noKid := jwt.NewWithClaims(jwt.SigningMethodEdDSA, baseClaims())
	noKidToken, _ := noKid.SignedString(ed.priv)
	crit := jwt.NewWithClaims(jwt.SigningMethodEdDSA, baseClaims())
	crit.Header["kid"], crit.Header["crit"] = "ed", []string{"exp"}
	critToken, _ := crit.SignedString(ed.priv)
	dev := newKey(t, DevKeyID+"-2", "EdDSA")

	cases := []struct {
		name  string
		token string
		want  *Error
	}{
		{"expired beyond skew", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-skew - time.Second).Unix() }), ErrExpired},
		{"expired within skew", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-skew + time.Second).Unix() }), nil},
		{"nbf beyond skew", with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(skew + time.Second).Unix() }), ErrNotYetValid},
		{"nbf within skew", with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(skew - time.Second).Unix() }), nil},
		{"iat beyond skew", with(func(c jwt.MapClaims) { c["iat"] = t0.Add(skew + time.Second).Unix() }), ErrNotYetValid},
		{"iat within skew", with(func(c jwt.MapClaims) { c["iat"] = t0.Add(skew - time.Second).Unix() }), nil},
		{"nbf beyond int64", with(func(c jwt.MapClaims) { c["nbf"] = 1e19 }), ErrMalformed},
		{"iat beyond int64", with(func(c jwt.MapClaims) { c["iat"] = 1e300 }), ErrMalformed},
		{"negative nbf", with(func(c jwt.MapClaims) { c["nbf"] = -1 }), ErrMalformed},
		{"exp a century ahead", with(func(c jwt.MapClaims) { c["exp"] = t0.AddDate(100, 0, 0).Unix() }), ErrTooLongLived},
		{"exp just beyond the lifetime", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(DefaultMaxLifetime + skew + time.Second).Unix() }), ErrTooLongLived},
		{"exp at the lifetime", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(DefaultMaxLifetime).Unix() }), nil},
		{"wrong audience", with(func(c jwt.MapClaims) { c["aud"] = []string{"billing"} }), ErrWrongAudience},
		{"second audience matches", with(func(c jwt.MapClaims) { c["aud"] = []string{"billing", testAud} }), nil},
		{"no audience", with(func(c jwt.MapClaims) { delete(c, "aud") }), ErrWrongAudience},
		{"empty audience list", with(func(c jwt.MapClaims) { c["aud"] = []string{} }), ErrWrongAudience},
		{"wrong issuer", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), ErrWrongIssuer},
		{"no issuer", with(func(c jwt.MapClaims) { delete(c, "iss") }), ErrWrongIssuer},
		{"no expiry", with(func(c jwt.MapClaims) { delete(c, "exp") }), ErrNoExpiry},
		{"exp not a number", with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), ErrMalformed},
		{"no subject", with(func(c jwt.MapClaims) { delete(c, "sub") }), ErrNoSubject},
		{"subject not a string", with(func(c jwt.MapClaims) { c["sub"] = 7 }), ErrNoSubject},
		{"unknown kid", sign(t, unknown, baseClaims()), ErrUnknownKey},
		{"no kid", noKidToken, ErrUnknownKey},
		{"dev kid not allowed", sign(t, dev, baseClaims()), ErrUnknownKey},
		{"tampered signature", parts[0] + "." + parts[1] + "." + tamperedSig, ErrBadSignature},
		{"tampered payload", parts[0] + "." + b64([]byte(payloadJSON)) + "." + parts[2], ErrBadSignature},
		{"alg none", noneToken, ErrUnsupportedAlg},
		{"alg none, empty signature", b64([]byte(`{"alg":"none","kid":"ed"}`)) + "." + parts[1] + ".", ErrUnsupportedAlg},
		{"HS256 with public key as secret", hsToken, ErrUnsupportedAlg},
		{"unknown alg", b64([]byte(`{"alg":"XS999","kid":"ed"}`)) + "." + parts[1] + "." + parts[2], ErrUnsupportedAlg},
		{"alg does not fit key", mismatch, ErrUnsupportedAlg},
		{"crit header", critToken, ErrMalformed},
		{"garbage", "not-a-token", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"bad base64", parts[0] + ".!!!." + parts[2], ErrMalformed},
		{"too long", parts[0] + "." + strings.Repeat("A", MaxTokenLen) + "." + parts[2], ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v (%T), want *Error %v", err, err, tc.want)
			}
			if e.Code != tc.want.Code || e.Msg != tc.want.Msg || !errors.Is(err, tc.want) {
				t.Fatalf("got %s %q, want %s %q (cause: %v)", e.Code, e.Msg, tc.want.Code, tc.want.Msg, e.Unwrap())
			}
			if id.Subject != "" {
				t.Error("a refusal returned an identity")
			}
			if tc.token != "" && strings.Contains(e.Error(), tc.token) {
				t.Error("error message echoes the token")
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{Issuer: testIss, Audiences: []string{testAud}, JWKSFile: "x"}
	cases := map[string]func(*Config){
		"no issuer":      func(c *Config) { c.Issuer = "" },
		"no audience":    func(c *Config) { c.Audiences = nil },
		"HS256":          func(c *Config) { c.Algorithms = []string{"HS256"} },
		"none":           func(c *Config) { c.Algorithms = []string{"EdDSA", "none"} },
		"no key source":  func(c *Config) { c.JWKSFile = "" },
		"two sources":    func(c *Config) { c.JWKSURL = "https://idp.example/jwks" },
		"huge skew":      func(c *Config) { c.ClockSkew = time.Hour },
		"negative life":  func(c *Config) { c.MaxLifetime = -time.Hour },
		"plain http URL": func(c *Config) { c.JWKSFile, c.JWKSURL = "", "http://idp.example/jwks" },
		"missing file":   func(c *Config) { c.JWKSFile = "/nonexistent/jwks.json" },
	}
	for name, edit := range cases {
		c := good
		edit(&c)
		if v, err := NewVerifier(c); err == nil {
			v.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	clk := &clock{now: t0}
	for _, alg := range SupportedAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k := newKey(b, "k", alg)
			v, _ := fileVerifier(b, clk, k)
			c := baseClaims()
			c["act"] = map[string]any{"sub": "agent:assistant", "act": map[string]any{"sub": "bob"}}
			token := sign(b, k, c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
