package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-proxy/mandate/grant"
)

// RelationInfo is one relation as the live catalog has it.
type RelationInfo struct {
	Name    string // schema-qualified, e.g. "public.accounts"
	Columns []ColumnInfo
}

// ColumnInfo is one column of a relation and its SQL type.
type ColumnInfo struct {
	Name string
	Type string // as the catalog spells it, e.g. "numeric(14,2)"
	// GeneratedFrom names the columns a generated column computes from.
	GeneratedFrom []string
}

// ConsentIndex answers which subjects currently consent to a purpose. The
// policy store implements it. An error (e.g. a stale store) fails the
// decision; an *Error keeps its SQLSTATE, any other error becomes 57P03.
type ConsentIndex interface {
	ConsentedSubjects(purpose string) ([]string, error)
}

// party is one principal whose rights are intersected: the subject or an actor.
type party struct {
	label     string // e.g. "delegate bob", for reasons
	principal types.EntityUID
}

// evaluation is one scope prepared against one snapshot: its parties, the
// Cedar context they share, and the reason the scope grants nothing at all,
// if it does not.
type evaluation struct {
	snap             *Snapshot
	scope            *Scope
	now              time.Time
	parties          []party
	context          types.RecordMap
	record           types.Record // context as a Cedar record
	denied           string
	allowUnprotected bool
	parseConstraint  func(string) (*cedarPolicy, error)
}

// prepare checks the actor chain against the scope's delegation and agent
// registration and builds the context. An actor without an active
// delegation or registration for the one it acts for makes the whole scope
// grant nothing (SPEC §2).
func (e *Engine) prepare(snap *Snapshot, sc *Scope) (*evaluation, error) {
	ev := &evaluation{
		snap:             snap,
		scope:            sc,
		now:              sc.now(),
		allowUnprotected: e.opts.AllowUnprotected,
		parseConstraint:  e.rowConstraint,
	}
	ev.denied = ev.checkChain()
	if ev.denied != "" {
		return ev, nil
	}
	if err := ev.buildContext(e.opts.Consents); err != nil {
		return nil, err
	}
	return ev, nil
}

func (sc *Scope) now() time.Time {
	if sc.Context.Now.IsZero() {
		return time.Now()
	}
	return sc.Context.Now
}

func (ev *evaluation) checkChain() string {
	sc, cs := ev.scope, ev.snap.schema
	if sc.Subject == "" {
		return "no subject"
	}
	ev.parties = append(ev.parties, party{"subject " + sc.Subject, types.NewEntityUID(cs.userType, types.String(sc.Subject))})
	if d := sc.Delegation; d != nil {
		switch {
		case d.Grantor != sc.Subject:
			return fmt.Sprintf("delegation %s is granted by %s, not by %s", d.ID, d.Grantor, sc.Subject)
		case !d.Active(ev.now):
			return fmt.Sprintf("delegation %s is revoked, expired or not yet valid", d.ID)
		case d.Purpose != "" && d.Purpose != sc.Purpose:
			return fmt.Sprintf("delegation %s is for purpose %q, not %q", d.ID, d.Purpose, sc.Purpose)
		}
	}
	agentSeen := false
	for i, a := range sc.Actors {
		onBehalfOf := sc.Subject
		if i > 0 {
			onBehalfOf = sc.Actors[i-1].ID
		}
		for _, b := range sc.Actors[:i] {
			if b.ID == a.ID && b.Kind == a.Kind {
				return fmt.Sprintf("actor %s appears twice in the chain", a.ID)
			}
		}
		switch a.Kind {
		case ActorDelegate:
			// A delegation is the subject's: its delegate acts for the
			// subject, first in the chain (red team round 32, F4).
			if d := sc.Delegation; d == nil || d.Delegate != a.ID || onBehalfOf != sc.Subject {
				return fmt.Sprintf("delegate %s has no delegation from %s", a.ID, onBehalfOf)
			}
			ev.parties = append(ev.parties, party{"delegate " + a.ID, types.NewEntityUID(cs.userType, types.String(a.ID))})
		case ActorAgent:
			if ag := sc.Agent; ag == nil || ag.ID != a.ID || !ag.Active(onBehalfOf, ev.now) {
				return fmt.Sprintf("agent %s has no active registration for %s", a.ID, onBehalfOf)
			}
			if cs.agentType == "" {
				return "the Cedar schema declares no Agent entity type"
			}
			agentSeen = true
			ev.parties = append(ev.parties, party{"agent " + a.ID, types.NewEntityUID(cs.agentType, types.String(a.ID))})
		default:
			return fmt.Sprintf("actor %s has unknown kind %q", a.ID, a.Kind)
		}
	}
	if ag := sc.Agent; ag != nil && !agentSeen && !ag.Active(sc.Subject, ev.now) {
		return fmt.Sprintf("agent %s has no active registration for %s", ag.ID, sc.Subject)
	}
	return ""
}

// relation computes the grant of one relation: for every action, the AND of
// all parties' filters and the delegation's row constraint, allowed only if
// every party and every registered scope allows it; a column is masked if
// any party sees it masked.
func (ev *evaluation) relation(rel RelationInfo) *grant.Relation {
	r := &grant.Relation{
		Name:    rel.Name,
		Allowed: map[grant.Action]bool{},
		Filter:  map[grant.Action]grant.Expr{},
		Masks:   map[string]grant.Mask{},
	}
	if ev.denied != "" {
		r.Reason = ev.denied
		return r
	}
	t, protected := ev.snap.schema.tables[rel.Name]
	if !protected {
		if !ev.allowUnprotected {
			r.Reason = rel.Name + " is not a protected table (no @table entity in the Cedar schema) and unknown tables are denied"
			return r
		}
		t = &table{name: rel.Name}
	}
	row := &rowShape{table: t, columns: make(map[string]string, len(rel.Columns))}
	for _, c := range rel.Columns {
		row.columns[c.Name] = c.Type
	}
	ids := map[string]bool{}
	var denials []actionReason
	for _, a := range grant.Actions {
		f, why := ev.action(row, a, protected, ids)
		if f == grant.False {
			denials = append(denials, actionReason{a, why})
			continue
		}
		r.Allowed[a] = true
		r.Filter[a] = f
	}
	if len(r.Allowed) > 0 {
		ev.masks(row, rel, r, ids)
	}
	r.Policies = make([]string, 0, len(ids))
	for id := range ids {
		r.Policies = append(r.Policies, id)
	}
	slices.Sort(r.Policies)
	r.Reason = joinReasons(denials)
	return r
}

// action decides one action on one relation for the whole scope.
func (ev *evaluation) action(row *rowShape, a grant.Action, protected bool, ids map[string]bool) (grant.Expr, string) {
	name := row.table.name
	d, ag := ev.scope.Delegation, ev.scope.Agent
	switch {
	case d != nil && !slices.Contains(d.Tables, name):
		return grant.False, fmt.Sprintf("delegation %s does not cover %s", d.ID, name)
	case d != nil && !slices.Contains(d.Actions, a):
		return grant.False, fmt.Sprintf("delegation %s allows only %s", d.ID, joinActions(d.Actions))
	case ag != nil && !slices.Contains(ag.Tables, name):
		return grant.False, fmt.Sprintf("agent %s is not registered for %s", ag.ID, name)
	case ag != nil && !slices.Contains(ag.Actions, a):
		return grant.False, fmt.Sprintf("agent %s is registered for %s only", ag.ID, joinActions(ag.Actions))
	}
	terms := make([]grant.Expr, 0, len(ev.parties)+1)
	if protected {
		for _, p := range ev.parties {
			v := ev.snap.decide(ev.request(p, string(a), ev.record), row)
			if v.filter == grant.False {
				return grant.False, v.reason
			}
			for _, id := range v.policies {
				ids[id] = true
			}
			terms = append(terms, v.filter)
		}
	}
	if d != nil && d.RowConstraint[name] != "" {
		f, err := ev.rowConstraint(d, d.RowConstraint[name], row, a)
		if err != nil {
			return grant.False, fmt.Sprintf("row constraint of delegation %s on %s failed closed: %v", d.ID, name, err)
		}
		terms = append(terms, f)
	}
	f := and(terms...)
	if f == grant.False {
		return f, fmt.Sprintf("the row constraint of delegation %s excludes every row of %s", d.ID, name)
	}
	return f, ""
}

func (ev *evaluation) request(p party, action string, ctx types.Record) *request {
	uid, ok := ev.snap.schema.actions[action]
	if !ok {
		uid = types.NewEntityUID("Action", types.String(action))
	}
	return &request{entities: ev.snap.entities, principal: p.principal, action: uid, context: ctx}
}

// rowConstraint evaluates a delegation's row constraint for the delegate,
// the same residual way as a policy condition.
func (ev *evaluation) rowConstraint(d *Delegation, cond string, row *rowShape, a grant.Action) (grant.Expr, error) {
	p, err := ev.parseConstraint(cond)
	if err != nil {
		return nil, err
	}
	delegate := party{principal: types.NewEntityUID(ev.snap.schema.userType, types.String(d.Delegate))}
	f, ok, err := p.residual(ev.request(delegate, string(a), ev.record), row)
	if err != nil {
		return nil, err
	}
	if !ok {
		return grant.False, nil
	}
	return f, nil
}

// masks decides the masked columns of an allowed relation. A declared mask
// applies unless every party is permitted Action::"unmask" on the column
// unconditionally; a column outside the delegation's Columns or in the
// agent's Masked list is masked too, with its declared mask or NULL.
func (ev *evaluation) masks(row *rowShape, rel RelationInfo, r *grant.Relation, ids map[string]bool) {
	d, ag := ev.scope.Delegation, ev.scope.Agent
	// Without a policy reading context.column, one decision covers every column.
	perColumn := ev.snap.unmaskReadsColumn[rel.Name]
	var wholeRow *bool
	for _, c := range rel.Columns {
		qualified := rel.Name + "." + c.Name
		mk, declared := ev.snap.masks.Column(rel.Name, c.Name)
		masked := false
		if declared {
			switch {
			case perColumn:
				masked = !ev.unmasked(row, c.Name, ids)
			case wholeRow == nil:
				raw := ev.unmasked(row, "", ids)
				wholeRow = &raw
				masked = !raw
			default:
				masked = !*wholeRow
			}
		}
		if d != nil && len(d.Columns) > 0 && !slices.Contains(d.Columns, qualified) {
			masked = true
		}
		if ag != nil && slices.Contains(ag.Masked, qualified) {
			masked = true
		}
		if !masked {
			continue
		}
		if !declared {
			mk = grant.Mask{Kind: grant.MaskNull}
		}
		r.Masks[c.Name] = mk
	}
	// A generated column computed from a masked one would carry its raw
	// value (red team round 33: ssn_digits beside a masked ssn): it is
	// masked too, with its own mask or NULL.
	for _, c := range rel.Columns {
		if _, done := r.Masks[c.Name]; done || !slices.ContainsFunc(c.GeneratedFrom, func(src string) bool { _, m := r.Masks[src]; return m }) {
			continue
		}
		mk, declared := ev.snap.masks.Column(rel.Name, c.Name)
		if !declared {
			mk = grant.Mask{Kind: grant.MaskNull}
		}
		r.Masks[c.Name] = mk
	}
}

// unmasked reports whether every party may see column col raw ("": any
// column, when no unmask policy reads context.column). Only an
// unconditional permit counts: a mask cannot depend on the row.
func (ev *evaluation) unmasked(row *rowShape, col string, ids map[string]bool) bool {
	ctx := ev.record
	if col != "" {
		m := make(types.RecordMap, len(ev.context)+1)
		for k, v := range ev.context {
			m[k] = v
		}
		m["column"] = types.String(col)
		ctx = types.NewRecord(m)
	}
	var used []string
	for _, p := range ev.parties {
		v := ev.snap.decide(ev.request(p, actionUnmask, ctx), row)
		if v.filter != grant.True {
			return false
		}
		used = append(used, v.policies...)
	}
	for _, id := range used {
		ids[id] = true
	}
	return true
}

// verdict is one party's decision on one action: the row filter (False when
// denied), the policies that decided, and why it was denied or failed closed.
type verdict struct {
	filter   grant.Expr
	policies []string
	reason   string
}

// decide evaluates the policies that can apply, with the row unknown:
// the filter is OR(permit residuals) AND NOT(forbid residual) for each
// forbid. A residual that cannot be translated fails closed: a permit
// contributes nothing, a forbid forbids every row.
func (s *Snapshot) decide(req *request, row *rowShape) verdict {
	var permits, forbids []grant.Expr
	var permitIDs, forbidIDs, failed []string
	action := string(req.action.ID)
	for _, p := range s.index[indexKey{action, row.table.name}] {
		if p.principalType != "" && p.principalType != req.principal.Type {
			continue
		}
		e, ok, err := p.residual(req, row)
		if !ok {
			continue
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("policy %s (%s) failed closed: %v", p.id, p.pos, err))
			if !p.forbid {
				continue
			}
			e = grant.True
		}
		if e == grant.False {
			continue
		}
		if p.forbid {
			forbids = append(forbids, not(e))
			forbidIDs = append(forbidIDs, p.id)
		} else {
			permits = append(permits, e)
			permitIDs = append(permitIDs, p.id)
		}
	}
	permitted := or(permits...)
	f := and(append([]grant.Expr{permitted}, forbids...)...)
	v := verdict{filter: f, policies: append(permitIDs, forbidIDs...)}
	if f != grant.False {
		return v
	}
	v.policies = nil
	if len(forbidIDs) > 0 && and(forbids...) == grant.False {
		v.reason = fmt.Sprintf("%s is forbidden on %s by %s", principalLabel(req.principal), row.table.name, strings.Join(forbidIDs, ", "))
		v.policies = forbidIDs
	} else {
		v.reason = fmt.Sprintf("no policy permits %s on %s", principalLabel(req.principal), row.table.name)
	}
	if len(failed) > 0 {
		v.reason += " (" + strings.Join(failed, "; ") + ")"
	}
	return v
}

func principalLabel(uid types.EntityUID) string {
	return strings.ToLower(baseName(uid.Type)) + " " + string(uid.ID)
}

type actionReason struct {
	action grant.Action
	reason string
}

// joinReasons explains the denied actions, grouping actions denied for the
// same reason: "insert, update, delete: no policy permits …".
func joinReasons(denials []actionReason) string {
	if len(denials) == 0 {
		return ""
	}
	var order []string
	byReason := map[string][]string{}
	for _, d := range denials {
		if _, ok := byReason[d.reason]; !ok {
			order = append(order, d.reason)
		}
		byReason[d.reason] = append(byReason[d.reason], string(d.action))
	}
	if len(order) == 1 && len(denials) == len(grant.Actions) {
		return order[0]
	}
	parts := make([]string, len(order))
	for i, reason := range order {
		parts[i] = strings.Join(byReason[reason], ", ") + ": " + reason
	}
	return strings.Join(parts, "; ")
}

// buildContext assembles the Cedar context every party is evaluated with.
// The clock is deliberately absent: time windows live in delegation and
// agent records, checked by the engine, so grants stay cacheable.
func (ev *evaluation) buildContext(consents ConsentIndex) error {
	sc, cs := ev.scope, ev.snap.schema
	user := func(id string) types.EntityUID { return types.NewEntityUID(cs.userType, types.String(id)) }
	m := types.RecordMap{
		"subject":     user(sc.Subject),
		"purpose":     types.String(sc.Purpose),
		"consents":    stringSet(sc.Consents),
		"client_addr": types.String(sc.Context.ClientAddr),
		"auth_method": types.String(sc.Context.AuthMethod),
		"scopes":      stringSet(sc.Context.Scopes),
		"claims":      claimsRecord(sc.Context.Claims),
	}
	consenting, err := ev.consenting(consents)
	if err != nil {
		return err
	}
	m["consenting"] = consenting
	if d := sc.Delegation; d != nil {
		rec := types.RecordMap{
			"id":       types.String(d.ID),
			"grantor":  user(d.Grantor),
			"delegate": user(d.Delegate),
			"tables":   stringSet(d.Tables),
			"actions":  actionSet(d.Actions),
			"columns":  stringSet(d.Columns),
			"purpose":  types.String(d.Purpose),
		}
		if !d.ExpiresAt.IsZero() {
			rec["expires_at"] = types.NewDatetime(d.ExpiresAt)
		}
		m["delegation"] = types.NewRecord(rec)
	}
	if ag := sc.Agent; ag != nil {
		m["agent"] = types.NewRecord(types.RecordMap{
			"id":      types.String(ag.ID),
			"tables":  stringSet(ag.Tables),
			"actions": actionSet(ag.Actions),
			"masked":  stringSet(ag.Masked),
		})
	}
	ev.context = m
	ev.record = types.NewRecord(m)
	return nil
}

// consenting is context.consenting: for each consentable attribute of the
// User type, the union of its values over the subjects consenting to the
// statement's purpose. It is how consent reaches row filters over other
// subjects' rows, e.g. context.consenting.account_ids.contains(resource.account_id).
func (ev *evaluation) consenting(idx ConsentIndex) (types.Record, error) {
	if idx == nil || ev.scope.Purpose == "" {
		return ev.snap.noConsent, nil
	}
	subjects, err := idx.ConsentedSubjects(ev.scope.Purpose)
	if err != nil {
		if pe, ok := err.(*Error); ok {
			return types.Record{}, pe
		}
		return types.Record{}, &Error{Code: CodeCannotConnectNow, Msg: "consents are unavailable", Err: err}
	}
	attrs := ev.snap.schema.consentAttrs
	values := make(map[string][]types.Value, len(attrs))
	for _, s := range subjects {
		e, ok := ev.snap.entities.Get(types.NewEntityUID(ev.snap.schema.userType, types.String(s)))
		if !ok {
			continue
		}
		for _, a := range attrs {
			switch v, _ := e.Attributes.Get(types.String(a)); v := v.(type) {
			case nil:
			case types.Set:
				values[a] = slices.AppendSeq(values[a], v.All())
			default:
				values[a] = append(values[a], v)
			}
		}
	}
	m := make(types.RecordMap, len(attrs))
	for _, a := range attrs {
		m[types.String(a)] = types.NewSet(values[a]...)
	}
	return types.NewRecord(m), nil
}

var emptySet = types.NewSet()

func stringSet(ss []string) types.Set {
	if len(ss) == 0 {
		return emptySet
	}
	vs := make([]types.Value, len(ss))
	for i, s := range ss {
		vs[i] = types.String(s)
	}
	return types.NewSet(vs...)
}

func joinActions(as []grant.Action) string {
	if len(as) == 0 {
		return "no action"
	}
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = string(a)
	}
	return strings.Join(ss, ", ")
}

func actionSet(as []grant.Action) types.Set {
	vs := make([]types.Value, len(as))
	for i, a := range as {
		vs[i] = types.String(a)
	}
	return types.NewSet(vs...)
}

// claimsRecord converts token claims into Cedar values. Claims with no Cedar
// form (fractional numbers, null) are left out rather than guessed at.
func claimsRecord(claims map[string]any) types.Record {
	m := make(types.RecordMap, len(claims))
	for k, v := range claims {
		if cv, ok := cedarValue(v); ok {
			m[types.String(k)] = cv
		}
	}
	return types.NewRecord(m)
}

func cedarValue(v any) (types.Value, bool) {
	switch v := v.(type) {
	case string:
		return types.String(v), true
	case bool:
		return types.Boolean(v), true
	case int:
		return types.Long(v), true
	case int64:
		return types.Long(v), true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return types.Long(int64(v)), true
		}
	case []string:
		return stringSet(v), true
	case []any:
		var vs []types.Value
		for _, e := range v {
			if cv, ok := cedarValue(e); ok {
				vs = append(vs, cv)
			}
		}
		return types.NewSet(vs...), true
	case map[string]any:
		return claimsRecord(v), true
	}
	return nil, false
}
