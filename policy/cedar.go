package policy

// This file is the only one that imports cedar-go's x/exp packages, which are
// outside semantic versioning (the module pins cedar-go). Everything Cedar
// specific that is not in cedar-go's stable API lives here: schema
// resolution and validation, partial evaluation, and the translation of
// residual policies into grant predicates.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/eval"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/mandate-proxy/mandate/grant"
)

// tableAnnotation marks an entity type of the schema as a protected table.
const tableAnnotation = "table"

// actionUnmask is the Cedar action deciding who sees a masked column raw.
const actionUnmask = "unmask"

// table is a protected relation as the Cedar schema declares it.
type table struct {
	name  string // schema-qualified relation name
	etype types.EntityType
	attrs map[string]bool // declared attributes: the columns policies may use
}

// cedarSchema is what the engine needs from a resolved Cedar schema.
type cedarSchema struct {
	validator *validate.Validator
	tables    map[string]*table
	actions   map[string]types.EntityUID // by action id
	// actionEntities carry the action hierarchy (`action in [...]`), which
	// Cedar reads from the entity store.
	actionEntities []types.Entity
	userType       types.EntityType
	agentType      types.EntityType
	// consentAttrs are the User attributes unioned into context.consenting.
	consentAttrs []string
}

func parseSchema(file string, src []byte) (*cedarSchema, error) {
	var s schema.Schema
	s.SetFilename(file)
	if err := s.UnmarshalCedar(src); err != nil {
		return nil, configError("%s", prefixFile(file, err))
	}
	res, err := s.Resolve()
	if err != nil {
		return nil, configError("%s: %v", file, err)
	}
	cs := &cedarSchema{
		validator: validate.New(res),
		tables:    map[string]*table{},
		actions:   map[string]types.EntityUID{},
	}
	for et, e := range res.Entities {
		switch baseName(et) {
		case "User":
			if cs.userType != "" {
				return nil, configError("%s: more than one entity type named User", file)
			}
			cs.userType = et
			for name, a := range e.Shape {
				if consentable(a.Type) {
					cs.consentAttrs = append(cs.consentAttrs, string(name))
				}
			}
			sort.Strings(cs.consentAttrs)
		case "Agent":
			if cs.agentType != "" {
				return nil, configError("%s: more than one entity type named Agent", file)
			}
			cs.agentType = et
		}
		rel, ok := e.Annotations[tableAnnotation]
		if !ok {
			continue
		}
		name := string(rel)
		if strings.Count(name, ".") != 1 {
			return nil, configError("%s: entity %s: @table(%q) must be schema-qualified, like \"public.accounts\"", file, et, name)
		}
		if prev, dup := cs.tables[name]; dup {
			return nil, configError("%s: @table(%q) is declared by both %s and %s", file, name, prev.etype, et)
		}
		t := &table{name: name, etype: et, attrs: map[string]bool{}}
		for attr := range e.Shape {
			t.attrs[string(attr)] = true
		}
		cs.tables[name] = t
	}
	if cs.userType == "" {
		return nil, configError("%s: no entity type named User", file)
	}
	for uid, a := range res.Actions {
		id := string(uid.ID)
		if prev, dup := cs.actions[id]; dup {
			return nil, configError("%s: action %q is declared by both %s and %s", file, id, prev, uid)
		}
		cs.actions[id] = uid
		cs.actionEntities = append(cs.actionEntities, a.Entity)
	}
	return cs, nil
}

// consentable reports whether a User attribute of type t can be unioned into
// a set: a primitive or a set of primitives.
func consentable(t resolved.IsType) bool {
	switch t := t.(type) {
	case resolved.LongType, resolved.StringType, resolved.BoolType:
		return true
	case resolved.SetType:
		return consentable(t.Element) && !isSet(t.Element)
	}
	return false
}

func isSet(t resolved.IsType) bool {
	_, ok := t.(resolved.SetType)
	return ok
}

func baseName(et types.EntityType) string {
	s := string(et)
	return s[strings.LastIndex(s, "::")+1:]
}

// prefixFile rewrites cedar-go's "<input>:line:col" positions into file:line:col.
func prefixFile(file string, err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "<input>:"); i >= 0 {
		return file + ":" + msg[i+len("<input>:"):]
	}
	if strings.HasPrefix(msg, file) {
		return msg
	}
	return file + ": " + msg
}

// cedarPolicy is one loaded policy.
type cedarPolicy struct {
	id     string
	forbid bool
	pos    string // file:line, for errors and audit
	ast    *ast.Policy
	// principalType is the type the principal scope requires, if any: a
	// cheap filter before partial evaluation.
	principalType types.EntityType
	// readsColumn: the policy may read context.column, so an unmask decision
	// must be made per column rather than once per relation.
	readsColumn bool
}

func newCedarPolicy(id string, forbid bool, pos string, a *ast.Policy) *cedarPolicy {
	p := &cedarPolicy{id: id, forbid: forbid, pos: pos, ast: a}
	switch s := a.Principal.(type) {
	case ast.ScopeTypeIs:
		p.principalType = s.Type
	case ast.ScopeTypeIsIn:
		p.principalType = s.Type
	}
	for _, c := range a.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			switch n := n.(type) {
			case ast.NodeTypeAccess:
				p.readsColumn = p.readsColumn || n.Value == "column"
			case ast.NodeTypeHas:
				p.readsColumn = p.readsColumn || n.Value == "column"
			}
			return !p.readsColumn
		})
	}
	return p
}

// parsePolicies parses one .cedar file and validates each policy against the
// schema. Every policy needs an @id annotation: ids are how denials, audit
// records and tests name policies.
func parsePolicies(file string, src []byte, cs *cedarSchema) ([]*cedarPolicy, error) {
	list, err := cedar.NewPolicyListFromBytes(file, src)
	if err != nil {
		return nil, configError("%s", prefixFile(file, err))
	}
	out := make([]*cedarPolicy, 0, len(list))
	var errs []error
	for _, p := range list {
		pos := fmt.Sprintf("%s:%d", file, p.Position().Line)
		id, ok := p.Annotations()["id"]
		if !ok || id == "" {
			errs = append(errs, fmt.Errorf("%s: policy has no @id(\"...\") annotation", pos))
			continue
		}
		a := (*ast.Policy)(p.AST())
		if err := cs.validator.Policy(string(id), a); err != nil {
			errs = append(errs, fmt.Errorf("%s: policy %q does not match the schema: %v", pos, id, err))
			continue
		}
		out = append(out, newCedarPolicy(string(id), p.Effect() == cedar.Forbid, pos, a))
	}
	if len(errs) > 0 {
		return nil, &Error{Code: CodeConfigFile, Msg: errors.Join(errs...).Error()}
	}
	return out, nil
}

// validateEntity checks one entity of the entities file against the schema.
func (cs *cedarSchema) validateEntity(e types.Entity) error {
	return cs.validator.Entity(e)
}

// appliesTo reports whether p's action and resource scopes can match action
// on rows of t. A row is never a named entity, so `resource == E` and
// `resource in E` scopes never match one.
func (p *cedarPolicy) appliesTo(action types.EntityUID, t *table, ents types.EntityGetter) bool {
	var actionOK bool
	switch s := p.ast.Action.(type) {
	case ast.ScopeTypeAll:
		actionOK = true
	case ast.ScopeTypeEq:
		actionOK = s.Entity == action
	case ast.ScopeTypeIn:
		actionOK = entityIn(ents, action, s.Entity)
	case ast.ScopeTypeInSet:
		actionOK = slices.ContainsFunc(s.Entities, func(e types.EntityUID) bool { return entityIn(ents, action, e) })
	}
	if !actionOK {
		return false
	}
	switch s := p.ast.Resource.(type) {
	case ast.ScopeTypeAll:
		return true
	case ast.ScopeTypeIs:
		return s.Type == t.etype
	}
	return false
}

// entityIn is Cedar's `in` over the entity hierarchy: uid is target or one
// of its transitive parents is.
func entityIn(ents types.EntityGetter, uid, target types.EntityUID) bool {
	seen := map[types.EntityUID]bool{}
	queue := []types.EntityUID{uid}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if u == target {
			return true
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		if e, ok := ents.Get(u); ok {
			queue = slices.AppendSeq(queue, e.Parents.All())
		}
	}
	return false
}

// parseCondition parses a delegation's row constraint, a Cedar condition over
// `resource`, as the single policy `permit (principal, action, resource)
// when { cond };`. Anything that does not parse as exactly that is rejected.
func parseCondition(cond string) (*cedarPolicy, error) {
	src := "permit (principal, action, resource) when {\n" + cond + "\n};"
	list, err := cedar.NewPolicyListFromBytes("row constraint", []byte(src))
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("not a single condition")
	}
	return newCedarPolicy("row-constraint", false, "", (*ast.Policy)(list[0].AST())), nil
}

// request is one party's Cedar request with the resource (the row) unknown.
type request struct {
	entities  types.EntityGetter
	principal types.EntityUID
	action    types.EntityUID
	context   types.Record
}

// rowShape is the relation the residual is about: its Cedar table and the
// columns the live catalog has, with their SQL types.
type rowShape struct {
	table   *table
	columns map[string]string
}

// residual partially evaluates p with the row unknown. It reports whether p
// can apply at all and, if so, the row predicate under which it does. An
// error means the residual could not be translated: callers fail closed.
func (p *cedarPolicy) residual(req *request, row *rowShape) (grant.Expr, bool, error) {
	env := eval.Env{
		Entities:  req.entities,
		Principal: req.principal,
		Action:    req.action,
		Resource:  eval.Variable("resource"),
		Context:   req.context,
	}
	rp, keep := eval.PartialPolicy(env, p.ast)
	if !keep {
		return grant.False, false, nil
	}
	tr := translator{row: row}
	terms := make([]grant.Expr, 0, len(rp.Conditions))
	for _, c := range rp.Conditions {
		e, err := tr.cond(c.Body)
		if err != nil {
			return grant.False, true, err
		}
		if c.Condition == ast.ConditionUnless {
			e = not(e)
		}
		terms = append(terms, e)
	}
	return and(terms...), true, nil
}

// translator turns a residual Cedar expression over `resource` into a grant
// predicate. It accepts only the forms it can translate exactly and returns
// an error for anything else.
type translator struct{ row *rowShape }

func (tr translator) cond(n ast.IsNode) (grant.Expr, error) {
	switch n := n.(type) {
	case ast.NodeValue:
		if b, ok := n.Value.(types.Boolean); ok {
			return grant.Bool(b), nil
		}
		return nil, fmt.Errorf("condition is %s, not a boolean", eval.TypeName(n.Value))
	case ast.NodeTypeAnd:
		l, r, err := tr.pair(n.Left, n.Right)
		return and(l, r), err
	case ast.NodeTypeOr:
		l, r, err := tr.pair(n.Left, n.Right)
		return or(l, r), err
	case ast.NodeTypeNot:
		x, err := tr.cond(n.Arg)
		return not(x), err
	case ast.NodeTypeIfThenElse:
		c, err := tr.cond(n.If)
		if err != nil {
			return nil, err
		}
		t, e, err := tr.pair(n.Then, n.Else)
		return or(and(c, t), and(not(c), e)), err
	case ast.NodeTypeEquals:
		return tr.compare(grant.Eq, n.Left, n.Right)
	case ast.NodeTypeNotEquals:
		return tr.compare(grant.Ne, n.Left, n.Right)
	case ast.NodeTypeLessThan:
		return tr.compare(grant.Lt, n.Left, n.Right)
	case ast.NodeTypeLessThanOrEqual:
		return tr.compare(grant.Le, n.Left, n.Right)
	case ast.NodeTypeGreaterThan:
		return tr.compare(grant.Gt, n.Left, n.Right)
	case ast.NodeTypeGreaterThanOrEqual:
		return tr.compare(grant.Ge, n.Left, n.Right)
	case ast.NodeTypeExtensionCall:
		if err, ok := eval.ToPartialError(n); ok {
			return nil, fmt.Errorf("evaluation error: %w", err)
		}
		if op, ok := extComparisons[string(n.Name)]; ok && len(n.Args) == 2 {
			return tr.compare(op, n.Args[0], n.Args[1])
		}
		return nil, fmt.Errorf("function %s over a column is not supported", n.Name)
	case ast.NodeTypeContains:
		// [v1, v2].contains(resource.col)
		return tr.member(n.Right, n.Left)
	case ast.NodeTypeIn:
		// resource.col in [v1, v2]: not Cedar (`in` wants entities) but
		// the natural reading in hand-written delegation row constraints.
		return tr.member(n.Left, n.Right)
	case ast.NodeTypeHas:
		if !isResource(n.Arg) {
			return nil, fmt.Errorf("`has` on %s is not supported", describe(n.Arg))
		}
		col, err := tr.column(string(n.Value))
		if err != nil {
			return nil, err
		}
		return grant.NotNull{Column: col}, nil
	case ast.NodeTypeIs:
		if !isResource(n.Left) {
			return nil, fmt.Errorf("`is` on %s is not supported", describe(n.Left))
		}
		return grant.Bool(n.EntityType == tr.row.table.etype), nil
	case ast.NodeTypeAccess:
		// A boolean column used as a condition.
		l, err := tr.operand(n)
		if err != nil {
			return nil, err
		}
		return grant.Compare{Op: grant.Eq, Left: l, Right: grant.Literal{V: true}}, nil
	}
	return nil, fmt.Errorf("%s over the row is not supported", describe(n))
}

func (tr translator) pair(a, b ast.IsNode) (grant.Expr, grant.Expr, error) {
	x, err := tr.cond(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := tr.cond(b)
	return x, y, err
}

var extComparisons = map[string]grant.CmpOp{
	"lessThan":           grant.Lt,
	"lessThanOrEqual":    grant.Le,
	"greaterThan":        grant.Gt,
	"greaterThanOrEqual": grant.Ge,
}

func (tr translator) compare(op grant.CmpOp, a, b ast.IsNode) (grant.Expr, error) {
	l, err := tr.operand(a)
	if err != nil {
		return nil, err
	}
	r, err := tr.operand(b)
	if err != nil {
		return nil, err
	}
	_, lc := l.(grant.Column)
	_, rc := r.(grant.Column)
	if !lc && !rc {
		return nil, fmt.Errorf("comparison without a column")
	}
	return grant.Compare{Op: op, Left: l, Right: r}, nil
}

// member translates "column is one of the set's values".
func (tr translator) member(colNode, setNode ast.IsNode) (grant.Expr, error) {
	c, err := tr.operand(colNode)
	if err != nil {
		return nil, err
	}
	col, ok := c.(grant.Column)
	if !ok {
		return nil, fmt.Errorf("set membership of %s is not supported", describe(colNode))
	}
	v, ok := setNode.(ast.NodeValue)
	if !ok {
		return nil, fmt.Errorf("set membership in %s is not supported", describe(setNode))
	}
	set, ok := v.Value.(types.Set)
	if !ok {
		return nil, fmt.Errorf("membership in a %s is not supported", eval.TypeName(v.Value))
	}
	in := grant.In{Column: col.Name, Values: make([]grant.Literal, 0, set.Len())}
	for e := range set.All() {
		lit, err := literal(e)
		if err != nil {
			return nil, err
		}
		in.Values = append(in.Values, lit)
	}
	sortLiterals(in.Values)
	if len(in.Values) == 0 {
		return grant.False, nil
	}
	return in, nil
}

func (tr translator) operand(n ast.IsNode) (grant.Operand, error) {
	switch n := n.(type) {
	case ast.NodeValue:
		return literal(n.Value)
	case ast.NodeTypeAccess:
		if isResource(n.Arg) {
			col, err := tr.column(string(n.Value))
			if err != nil {
				return nil, err
			}
			return grant.Column{Name: col}, nil
		}
	}
	return nil, fmt.Errorf("%s is not a column or a constant", describe(n))
}

func (tr translator) column(name string) (string, error) {
	if _, ok := tr.row.columns[name]; !ok {
		return "", fmt.Errorf("%s has no column %q", tr.row.table.name, name)
	}
	return name, nil
}

// isResource reports whether n is the unknown row.
func isResource(n ast.IsNode) bool {
	switch n := n.(type) {
	case ast.NodeTypeVariable:
		return n.Name == "resource"
	case ast.NodeValue:
		uid, ok := n.Value.(types.EntityUID)
		if !ok {
			return false
		}
		name, ok := eval.ToVariable(uid)
		return ok && name == "resource"
	}
	return false
}

// literal converts a Cedar constant into a grant literal. Decimals and
// datetimes travel as canonical strings with the SQL type to cast them to.
func literal(v types.Value) (grant.Literal, error) {
	switch v := v.(type) {
	case types.Long:
		return grant.Literal{V: int64(v)}, nil
	case types.String:
		return grant.Literal{V: string(v)}, nil
	case types.Boolean:
		return grant.Literal{V: bool(v)}, nil
	case types.Decimal:
		return grant.Literal{V: v.String(), Type: "numeric"}, nil
	case types.Datetime:
		return grant.Literal{V: v.Time().UTC().Format(time.RFC3339Nano), Type: "timestamptz"}, nil
	}
	return grant.Literal{}, fmt.Errorf("a %s constant has no SQL form", eval.TypeName(v))
}

func describe(n ast.IsNode) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", n), "ast.NodeType")
}
