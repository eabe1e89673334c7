package identity

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mandate-proxy/mandate/policy"
)

// Identity is what a verified token says about the caller.
type Identity struct {
	// Subject is the identity whose data rights apply (the "sub" claim).
	Subject string
	// Actors is the actor chain, ordered like policy.Scope.Actors: from the
	// actor closest to the subject to the one actually connected. Empty when
	// the subject acts for itself.
	Actors []policy.Actor
	// Scopes are the OAuth scopes of the "scope" claim, in order, deduplicated.
	Scopes []string
	// Claims holds every other claim (iss, aud, jti, device, risk level, …) as
	// decoded JSON: numbers are float64. Never nil.
	Claims map[string]any
	// ExpiresAt is the token's "exp"; the session must not outlive it.
	ExpiresAt time.Time
}

// AgentPrefix marks an agent in an actor's "sub".
const AgentPrefix = "agent:"

// ActorKindClaim is the act-object member that can mark an actor as an agent
// when its sub has no AgentPrefix.
const ActorKindClaim = "mandate_actor_kind"

// maxIDLen bounds subject and actor IDs, which end up in policy requests,
// audit lines and error details.
const maxIDLen = 256

// ParseActor reads one actor's sub: "agent:assistant" is the agent
// "assistant", anything else a delegate. The CLI uses it for --act/--actor so
// that flags and tokens name actors the same way.
func ParseActor(sub string) (policy.Actor, error) {
	if id, ok := strings.CutPrefix(sub, AgentPrefix); ok {
		if err := validID(id); err != nil {
			return policy.Actor{}, err
		}
		return policy.Actor{ID: id, Kind: policy.ActorAgent}, nil
	}
	if err := validID(sub); err != nil {
		return policy.Actor{}, err
	}
	return policy.Actor{ID: sub, Kind: policy.ActorDelegate}, nil
}

// ActorSub is ParseActor's inverse: the sub that names a.
func ActorSub(a policy.Actor) string {
	if a.Kind == policy.ActorAgent {
		return AgentPrefix + a.ID
	}
	return a.ID
}

func validID(id string) error {
	if id == "" {
		return fmt.Errorf("empty identifier")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("identifier longer than %d bytes", maxIDLen)
	}
	if strings.ContainsFunc(id, unicode.IsControl) {
		return fmt.Errorf("identifier contains control characters")
	}
	return nil
}

// identityFromClaims maps verified claims. It works on a fresh map decoded
// for this token only, so it may take ownership of its values.
func identityFromClaims(c jwt.MapClaims, maxDepth int) (Identity, error) {
	sub, _ := c["sub"].(string)
	if err := validID(sub); err != nil {
		return Identity{}, ErrNoSubject.with(err)
	}
	id := Identity{Subject: sub, Claims: make(map[string]any, len(c))}

	if act, ok := c["act"]; ok {
		actors, err := parseActors(act, maxDepth)
		if err != nil {
			return Identity{}, err
		}
		id.Actors = actors
	}

	if s, ok := c["scope"]; ok {
		scopes, err := parseScopes(s)
		if err != nil {
			return Identity{}, ErrInvalidScope.with(err)
		}
		id.Scopes = scopes
	}

	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		return Identity{}, ErrNoExpiry.with(err)
	}
	id.ExpiresAt = exp.Time

	for k, v := range c {
		switch k {
		case "sub", "act", "scope":
		case "exp", "iat", "nbf", "jti":
			// The token's own bookkeeping, different in every token: a
			// grant must not depend on it, and as part of the scope it
			// would give each refreshed token its own grant cache entries.
		default:
			id.Claims[k] = v
		}
	}
	return id, nil
}

// parseActors walks the nested act objects, outermost (the connected actor)
// first, and returns them in policy.Scope order.
func parseActors(v any, maxDepth int) ([]policy.Actor, error) {
	var chain []policy.Actor
	for {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, ErrInvalidActor.with(fmt.Errorf("act is %T, not an object", v))
		}
		if len(chain) == maxDepth {
			return nil, ErrActorChainTooDeep.with(fmt.Errorf("more than %d actors", maxDepth))
		}
		a, err := actorFromClaim(obj)
		if err != nil {
			return nil, ErrInvalidActor.with(err)
		}
		chain = append(chain, a)
		next, ok := obj["act"]
		if !ok {
			break
		}
		v = next
	}
	slices.Reverse(chain)
	return chain, nil
}

func actorFromClaim(obj map[string]any) (policy.Actor, error) {
	sub, ok := obj["sub"].(string)
	if !ok {
		return policy.Actor{}, fmt.Errorf("act without a string sub")
	}
	a, err := ParseActor(sub)
	if err != nil {
		return policy.Actor{}, err
	}
	kind, ok := obj[ActorKindClaim]
	if !ok {
		return a, nil
	}
	switch kind {
	case string(policy.ActorAgent):
		a.Kind = policy.ActorAgent
	case string(policy.ActorDelegate):
		if a.Kind == policy.ActorAgent {
			return policy.Actor{}, fmt.Errorf("%s %q contradicts the %q prefix", ActorKindClaim, kind, AgentPrefix)
		}
	default:
		return policy.Actor{}, fmt.Errorf("unknown %s %v", ActorKindClaim, kind)
	}
	return a, nil
}

// parseScopes accepts the RFC 8693 space-separated string and the array form
// some issuers use.
func parseScopes(v any) ([]string, error) {
	var raw []string
	switch s := v.(type) {
	case string:
		raw = strings.Fields(s)
	case []any:
		for _, e := range s {
			str, ok := e.(string)
			if !ok || str == "" || strings.ContainsFunc(str, unicode.IsSpace) {
				return nil, fmt.Errorf("scope array holds %v", e)
			}
			raw = append(raw, str)
		}
	default:
		return nil, fmt.Errorf("scope is %T", v)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
