package rewrite

import (
	"slices"
	"strings"
)

// Which overload PostgreSQL picks for a call or an operator (func_get_detail,
// oper_select_candidate), as far as the rewriter needs it: a candidate whose
// parameter types the known argument types cannot reach by implicit
// coercion is never picked, and of those that remain PostgreSQL picks among
// the ones with the most exact matches. The rest of its rules (preferred
// types, categories) only narrow further, so keeping every candidate these
// two steps leave is safe. Without them an extension such as citext, whose
// public.max(citext) and public.<(citext, citext) are candidates for any
// max() and <, made mandate refuse max(amount) and amount < 0 (red team
// round 40b).

// coercible reports whether PostgreSQL may coerce a value of type src to
// dst implicitly (can_coerce_type): "" (an untyped literal, a type the
// rewriter cannot infer) and types of other schemas (a composite coerces
// to its parent's row type) may reach anything, as may any polymorphic or
// pseudo-type that is not tied to a kind of type the source is not.
func (c *Catalog) coercible(src, dst string) bool {
	if c.ImplicitCasts == nil || src == "" || src == "unknown" || dst == "" {
		return true
	}
	src, dst = canonicalType(c.domainBase(src)), canonicalType(c.domainBase(dst))
	switch {
	case src == dst || c.Pseudo[src] || strings.Contains(src, "."):
		return true
	case c.Pseudo[dst]:
		return polymorphicTakes(dst, src)
	case slices.ContainsFunc(c.ImplicitCasts[src], func(t string) bool { return canonicalType(t) == dst }):
		return true
	}
	// An array reaches another array type whose elements its elements reach
	// (find_coercion_pathway's ARRAYCOERCE; red team round 42: int4[]
	// reached an owner's @>(int8[], int4[]), and varchar[] text[]).
	se, sok := arrayElement(src)
	de, dok := arrayElement(dst)
	return sok && dok && dst != "int2vector" && dst != "oidvector" && c.coercible(se, de)
}

// arrayElement is the element type of an array type named as pg_type
// names built-in ones ("_int4"), in or out of a schema ("s._t"); int2vector
// and oidvector are arrays as a source (red team round 43: they reached an
// owner's array_position(int2[], int2)), never as a target.
func arrayElement(t string) (string, bool) {
	switch t {
	case "int2vector":
		return "int2", true
	case "oidvector":
		return "oid", true
	}
	schema, name, qualified := strings.Cut(t, ".")
	if !qualified {
		schema, name = "", t
	}
	if !strings.HasPrefix(name, "_") || len(name) == 1 {
		return "", false
	}
	if qualified {
		return schema + "." + name[1:], true
	}
	return name[1:], true
}

// polymorphicTakes reports whether the pseudo-type dst may take a value of
// the built-in, non-pseudo type src: the array, range, multirange and enum
// kinds only take their kind (no built-in type is an enum).
func polymorphicTakes(dst, src string) bool {
	array := strings.HasPrefix(src, "_") || src == "oidvector" || src == "int2vector"
	switch dst {
	case "anyarray", "anycompatiblearray":
		return array
	case "anynonarray", "anycompatiblenonarray":
		return !array
	case "anyrange", "anycompatiblerange":
		return strings.HasSuffix(src, "range")
	case "anymultirange", "anycompatiblemultirange":
		return strings.HasSuffix(src, "multirange")
	case "anyenum":
		return false
	}
	return true
}

// domainBase is t's base type when t is a domain, else t.
func (c *Catalog) domainBase(t string) string {
	for range 16 {
		b, ok := c.Domains[t]
		if !ok {
			break
		}
		t = b
	}
	return t
}

// mayTake reports whether a call with arguments of types args ("" when
// unknown) may resolve to f: each known type reaches its parameter's
// implicitly. A variadic function's last parameters are not checked.
func (c *Catalog) mayTake(f *Function, args []string) bool {
	for i, a := range args {
		if f.Args == nil || i >= len(f.Args) || f.Variadic && i >= len(f.Args)-1 {
			break
		}
		if !c.coercible(a, f.Args[i]) {
			return false
		}
	}
	return true
}

// narrow marks, of candidates with parameter types params, those with the
// most exact matches of the known argument types (func_select_candidate's
// first step; a domain argument counts as its base type; "unknown", an
// untyped literal or parameter, matches none): PostgreSQL's pick is among
// them, provided the candidates are those PostgreSQL finds coercible, not
// more: all are kept unless coercible was exact for every pair, that is,
// each argument's type is known ("" is not), a built-in and no
// pseudo-type, and no candidate's parameter there is one. All are kept too
// when a candidate's parameters are not known (nil).
func (c *Catalog) narrow(params [][]string, known []string) []bool {
	keep := make([]bool, len(params))
	for i := range keep {
		keep[i] = true
	}
	if c.ImplicitCasts == nil {
		return keep
	}
	bases := make([]string, len(known))
	for i, k := range known {
		b := canonicalType(c.domainBase(k))
		switch {
		case b == "unknown":
			continue // an untyped literal or parameter: no exact match
		case b == "" || c.Pseudo[b] || strings.Contains(b, "."):
			// A type the rewriter cannot infer is one PostgreSQL knows:
			// candidates this one reaches only by mandate's leave may be
			// out, and the pick among the rest (red team round 43: 1 +
			// ANY(ARRAY['a']) ran an owner's +(int8, text)).
			return keep
		}
		bases[i] = b
	}
	counts := make([]int, len(params))
	best := 0
	for j, ps := range params {
		if ps == nil {
			return keep
		}
		for i, b := range bases {
			if b != "" && i < len(ps) && c.Pseudo[c.domainBase(ps[i])] {
				return keep
			}
		}
		for i, b := range bases {
			if b != "" && i < len(ps) && canonicalType(ps[i]) == b {
				counts[j]++
			}
		}
		best = max(best, counts[j])
	}
	for j := range keep {
		keep[j] = counts[j] == best
	}
	return keep
}

// visibleFunctions are the functions called name that a call with n
// arguments may resolve to, in schema or else along the session's path, in
// path order, less those hidden by a function of the same argument types
// and variadic form earlier on the path (FuncnameGetCandidates). A call
// that names its arguments hides nothing: a built-in without parameter
// names is then no candidate at all, and one further on may be (red team
// round 35: upper(s => 'x') ran public.upper(s text)).
func (c *Catalog) visibleFunctions(sess Session, schema, name string, n int, named bool) []*Function {
	path := sess.functionPath()
	if schema != "" {
		path = []string{schema}
	}
	var out []*Function
	var seen []string // signatures of earlier schemas' functions
	for _, sn := range path {
		s := c.Schemas[sn]
		if s == nil {
			continue
		}
		for _, f := range s.Functions[name] {
			if f.accepts(n) && (named || f.sig == "" || !slices.Contains(seen, f.sig)) {
				out = append(out, f)
			}
		}
		for _, f := range s.Functions[name] {
			if f.sig != "" {
				seen = append(seen, f.sig)
			}
		}
	}
	return out
}

// functionResult is the type a call of name (in schema, or along the path)
// with arguments of types args returns, when every function PostgreSQL may
// pick for it returns that one type; "" otherwise. A set-returning function
// counts with its rows' type only if sets (a function in FROM).
func (c *Catalog) functionResult(sess Session, schema, name string, args []string, sets bool) string {
	var cands []*Function
	var params [][]string
	for _, f := range c.visibleFunctions(sess, schema, name, len(args), false) {
		if f.Kind == KindProcedure || !c.mayTake(f, args) {
			continue
		}
		ps := f.Args
		if f.Variadic || len(ps) != len(args) {
			ps = nil // expanded or defaulted: which parameter an argument meets is not worked out
		}
		cands, params = append(cands, f), append(params, ps)
	}
	keep := c.narrow(params, args)
	result := ""
	for i, f := range cands {
		if !keep[i] {
			continue
		}
		if f.Result == "" || f.Set && !sets || result != "" && f.Result != result {
			return ""
		}
		result = f.Result
	}
	return result
}

// operatorCandidates are the operators PostgreSQL may run for name
// (OPERATOR(schema.name) when schema is set) applied to operands of types
// exact and known. exact holds the types an exact match is looked up with
// (an untyped literal takes the other operand's type, as in
// binary_oper_exact; "" when unknown): like OpernameGetOprid, the first
// schema on the path holding an exact match wins, and that operator is
// match. Otherwise PostgreSQL chooses among the operators of that name on
// the path (one hidden by an operator of the same operand types earlier on
// the path is no candidate) by the types known, those it coerces from (""
// for an untyped literal): cands are those it may choose (see narrow),
// or all of them when none may.
func (c *Catalog) operatorCandidates(sess Session, schema, name string, prefix bool, exact, known [2]string) (match *Operator, cands []*Operator) {
	matches := func(op *Operator) bool { return op.Name == name && (op.Left == "") == prefix }
	path := sess.functionPath()
	if schema != "" {
		path = []string{schema}
	}
	if known[1] == "unknown" && (prefix || known[0] == "unknown") {
		// Two untyped operands (one, prefix) stay unknown for the exact
		// lookup (binary_oper_exact): an operator on unknown, which only C
		// code can implement, comes first (red team round 48a).
		uu := [2]string{"", "unknown"}
		if !prefix {
			uu[0] = "unknown"
		}
		for _, sn := range path {
			for _, op := range c.opsIn[[2]string{sn, name}] {
				if matches(op) && op.sig == uu {
					return op, nil
				}
			}
		}
	}
	if exact[1] != "" && (prefix || exact[0] != "") {
		for _, sn := range path {
			for _, op := range c.opsIn[[2]string{sn, name}] {
				if matches(op) && op.sig == exact {
					return op, nil
				}
			}
		}
	}
	var params [][]string
	var visible []*Operator
	var seen [][2]string // signatures of earlier schemas' operators
	for _, sn := range path {
		ops := c.opsIn[[2]string{sn, name}]
		for _, op := range ops {
			if !matches(op) || slices.Contains(seen, op.sig) {
				continue
			}
			visible = append(visible, op)
			if (prefix || c.coercible(known[0], op.Left)) && c.coercible(known[1], op.Right) {
				cands, params = append(cands, op), append(params, []string{op.Left, op.Right})
			}
		}
		for _, op := range ops {
			if matches(op) {
				seen = append(seen, op.sig)
			}
		}
	}
	if len(cands) == 0 {
		// PostgreSQL finds no operator that takes them and says so: every
		// one of the name counts, as none may be told apart.
		return nil, visible
	}
	keep := c.narrow(params, known[:])
	out := cands[:0]
	for i, op := range cands {
		if keep[i] {
			out = append(out, op)
		}
	}
	return nil, out
}

// operatorResult is the type the operator PostgreSQL picks for these
// operands returns (see operatorCandidates), when every one it may pick
// returns that one type; "" otherwise.
func (c *Catalog) operatorResult(sess Session, schema, name string, prefix bool, exact, known [2]string) string {
	match, cands := c.operatorCandidates(sess, schema, name, prefix, exact, known)
	if match != nil {
		return match.Result
	}
	result := ""
	for _, op := range cands {
		if op.Result == "" || result != "" && op.Result != result {
			return ""
		}
		result = op.Result
	}
	return result
}
