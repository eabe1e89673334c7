package rewrite

import (
	"fmt"
	"slices"
	"strings"
)

// Catalog is the part of the upstream's pg_catalog the rewriter needs:
// schemas, their relations and columns, functions and operators with their
// leakproof flags. The proxy loads it (system schemas included) and replaces
// it wholesale when the upstream changes; a Catalog is read-only after
// NewCatalog, so one value may serve every session concurrently.
type Catalog struct {
	Schemas   map[string]*Schema
	Operators []*Operator
	// Casts are the casts whose function lies outside pg_catalog (an
	// extension's, the owner's): PostgreSQL runs it for x::t.
	Casts []*Cast
	// ImplicitCasts are pg_cast's implicit casts (castcontext 'i'), by
	// source type, named as Operator's types are; Pseudo the pseudo-types
	// (any, anyelement, record, unknown, …) and Domains each domain's base
	// type. With them the rewriter tells which overloads PostgreSQL may
	// pick for arguments of known types (coerce.go); ImplicitCasts nil
	// means not loaded, and then every overload of a name counts.
	ImplicitCasts map[string][]string
	Pseudo        map[string]bool
	Domains       map[string]string
	// BuiltinTypes are pg_catalog's type names: an unqualified name
	// pg_catalog lacks is another schema's (red team round 42: 'x'::vd
	// passed for a built-in and ran public.lower(vd)). Nil: not loaded,
	// and every name pg_catalog is searched first for counts as its.
	BuiltinTypes map[string]bool
	// OtherTypes are the names (unqualified) of other schemas' types:
	// name(x) of one may be a cast to it, not a call (func_get_detail).
	// Nil: not loaded, and no call is taken for a cast.
	OtherTypes map[string]bool
	// SearchPathSetting is SearchPath as the upstream spelled it (reset_val),
	// for the proxy to start upstream sessions with.
	SearchPathSetting string
	// SearchPath is the upstream's default search_path, for a session
	// that sets none (Session.SearchPath nil); nil means PostgreSQL's own
	// default ("$user", public).
	SearchPath []string

	ops   map[opKey][]*Operator
	opsIn map[[2]string][]*Operator // by schema and name
	// funcHomes and opHomes are the schemas with each function and
	// operator name (qualify.go).
	funcHomes, opHomes nameHomes
}

// Schema is a namespace.
type Schema struct {
	Name      string
	Tables    map[string]*Table      // relations by name: tables, views, …
	Functions map[string][]*Function // overloads by name
}

// RelKind is pg_class.relkind.
type RelKind byte

// Relation kinds the rewriter distinguishes.
const (
	KindTable       RelKind = 'r'
	KindPartitioned RelKind = 'p'
	KindView        RelKind = 'v'
	KindMatView     RelKind = 'm'
	KindForeign     RelKind = 'f'
	KindSequence    RelKind = 'S'
)

// Table is a relation. Columns are in attnum order without dropped columns;
// the derived table that replaces a protected relation keeps that order so
// `SELECT *`, NATURAL JOIN and column aliases keep working.
type Table struct {
	Schema  string
	Name    string
	Kind    RelKind
	Columns []*Column
	// BaseTables lists the schema-qualified relations reading this one reads:
	// for a view, materialized view or relation with rules, what their
	// queries read (pg_rewrite → pg_depend); for an inheritance or partition
	// parent, its children. An unprotected relation with a protected base
	// table is refused, and only this list is checked, so it must be
	// transitive (proxy.LoadCatalog makes it so). System views list none:
	// PostgreSQL records no dependencies on its pinned catalogs.
	BaseTables []string
	// HasRules is set for a table with rules (CREATE RULE … ON INSERT,
	// UPDATE or DELETE): they run statements of their own when it is
	// written, which the rewriter never sees.
	HasRules bool

	colIndex map[string]*Column
}

// QualifiedName is "schema.name", the key of grants.
func (t *Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Column looks a column up by its exact (case-sensitive) name.
func (t *Table) Column(name string) *Column { return t.colIndex[name] }

// Column is an attribute. Type is format_type(atttypid, atttypmod), e.g.
// "character varying(20)"; masks cast back to it so a masked column keeps a
// compatible type.
type Column struct {
	Name string
	Type string
	// Collated: the column has a collation other than the database's
	// default. Comparing it can fail whatever its value, leakproof or not:
	// with a nondeterministic collation (text ^@ text), or beside another
	// non-default collation (42P22 "could not determine which collation").
	Collated bool
	// GeneratedFrom names the columns a generated column computes from.
	GeneratedFrom []string
	// PrimaryKey: the column is part of its table's primary key.
	PrimaryKey bool

	typeName *pgTypeName // parsed Type; cloned whenever it is injected
	base     string      // internal type name without typmod: "varchar", "int4"
	array    bool
}

// Volatility is pg_proc.provolatile.
type Volatility byte

// Volatilities.
const (
	Immutable Volatility = 'i'
	Stable    Volatility = 's'
	Volatile  Volatility = 'v'
)

// FuncKind is pg_proc.prokind.
type FuncKind byte

// Function kinds.
const (
	KindFunction  FuncKind = 'f'
	KindAggregate FuncKind = 'a'
	KindWindow    FuncKind = 'w'
	KindProcedure FuncKind = 'p'
)

// Function is one overload of a function.
type Function struct {
	Schema   string
	Name     string
	NArgs    int // pronargs; -1 when unknown
	Defaults int // pronargdefaults: trailing arguments a call may leave out
	Variadic bool
	Args     []string // proargtypes, named as Operator's types are; nil when unknown
	// Result is prorettype named so, "" when it is a pseudo-type or an
	// array, or it is not known; Set, proretset: it is each row's type.
	Result string
	Set    bool
	// Out: it has OUT (INOUT, TABLE) parameters (proallargtypes): a
	// column it returns in FROM is named after one, not the call.
	Out        bool
	Leakproof  bool
	Volatility Volatility
	Kind       FuncKind

	sig string // argument types and variadic form, "" when not known
}

// accepts reports whether a call with n arguments may resolve to f.
func (f *Function) accepts(n int) bool {
	return f.NArgs < 0 || f.NArgs == n || f.Variadic && n >= f.NArgs-1 || n < f.NArgs && n >= f.NArgs-f.Defaults
}

// Cast is a cast run by a function: Source and Target are internal type
// names as Operator's are, Function its schema-qualified name.
type Cast struct {
	Source, Target string
	Function       string
}

// Operator is one operator; Left and Right are internal type names ("int4",
// "text"); Left is empty for a prefix operator.
type Operator struct {
	Schema    string
	Name      string
	Left      string
	Right     string
	Leakproof bool   // proleakproof of oprcode
	Result    string // oprresult, "" as Function.Result

	sig [2]string // canonical operand types
}

type opKey struct{ name, left, right string }

// NewCatalog indexes and validates schemas and operators: every column type
// must parse as a type name. The schemas must include pg_catalog (and
// information_schema if clients use it): a relation missing from the catalog
// is refused with 42P01, never passed through.
func NewCatalog(schemas []*Schema, operators []*Operator) (*Catalog, error) {
	c := &Catalog{Schemas: make(map[string]*Schema, len(schemas)), Operators: operators,
		ops: map[opKey][]*Operator{}, opsIn: map[[2]string][]*Operator{}, funcHomes: nameHomes{}, opHomes: nameHomes{}}
	// A live catalog has thousands of columns but few distinct types: parse
	// each once. Parsed types are shared read-only (injection copies them).
	parsed := map[string]*pgTypeName{}
	for _, s := range schemas {
		if _, dup := c.Schemas[s.Name]; dup {
			return nil, fmt.Errorf("catalog: schema %q listed twice", s.Name)
		}
		c.Schemas[s.Name] = s
		for name, fs := range s.Functions {
			if len(fs) > 0 {
				c.funcHomes.add(name, s.Name)
			}
			for _, f := range fs {
				if f.Args != nil {
					f.sig = fmt.Sprint(f.Variadic, f.Args)
				}
			}
		}
		for name, t := range s.Tables {
			if t.Name != name || t.Schema != s.Name {
				return nil, fmt.Errorf("catalog: table %q filed under %s.%s", t.QualifiedName(), s.Name, name)
			}
			t.colIndex = make(map[string]*Column, len(t.Columns))
			for _, col := range t.Columns {
				tn := parsed[col.Type]
				if tn == nil {
					var err error
					if tn, err = parseTypeName(col.Type); err != nil {
						return nil, fmt.Errorf("catalog: %s.%s: type %q: %w", t.QualifiedName(), col.Name, col.Type, err)
					}
					if len(tn.Names) == 1 {
						// format_type (read under search_path pg_catalog)
						// qualifies every other schema's types: this is
						// pg_catalog's, and injected casts must say so, or
						// the session's path picks the type (red team round
						// 35: a domain s1.text ahead of pg_catalog).
						tn.Names = append([]*pgNode{strNode("pg_catalog")}, tn.Names...)
					}
					parsed[col.Type] = tn
				}
				col.typeName = tn
				col.base, col.array = baseType(tn)
				t.colIndex[col.Name] = col
			}
		}
	}
	for _, op := range operators {
		op.sig = [2]string{canonicalType(op.Left), canonicalType(op.Right)}
		k := opKey{op.Name, op.sig[0], op.sig[1]}
		c.ops[k] = append(c.ops[k], op)
		c.opsIn[[2]string{op.Schema, op.Name}] = append(c.opsIn[[2]string{op.Schema, op.Name}], op)
		c.opHomes.add(op.Name, op.Schema)
	}
	return c, nil
}

// baseType reduces a parsed type to the internal name the operator and mask
// logic switch on.
func baseType(tn *pgTypeName) (string, bool) {
	if tn == nil || len(tn.Names) == 0 {
		return "", false
	}
	name := tn.Names[len(tn.Names)-1].GetString_().GetSval()
	if len(tn.Names) > 1 {
		if s := tn.Names[0].GetString_().GetSval(); s != "pg_catalog" {
			name = s + "." + name
		}
	}
	return canonicalType(name), len(tn.ArrayBounds) > 0
}

// canonicalType maps spellings to one internal name: pg_type's, for
// operator resolution tells every type apart (red team round 41: varchar
// had been taken for text, and an owner's =(text, varchar) for texteq).
// Where varchar behaves as text, textual says so.
func canonicalType(t string) string {
	switch t {
	case "character varying":
		return "varchar"
	case "integer", "int":
		return "int4"
	case "bigint":
		return "int8"
	case "smallint":
		return "int2"
	case "boolean":
		return "bool"
	case "decimal":
		return "numeric"
	case "double precision":
		return "float8"
	case "real":
		return "float4"
	case "character":
		return "bpchar" // "char" is a type of its own
	case "timestamp with time zone":
		return "timestamptz"
	case "timestamp without time zone":
		return "timestamp"
	}
	return t
}

// Session is the name-resolution state the proxy tracks per connection.
type Session struct {
	// User is the upstream session user, substituted for "$user".
	User string
	// SearchPath is the search_path setting as a list, "$user" and pg_temp
	// allowed; nil means PostgreSQL's default ("$user", public).
	SearchPath []string
	// FunctionPath, when not nil, is the search_path functions, operators
	// and types resolve by where it may differ upstream from the one
	// relations resolve by (which the rewrite writes out qualified): the
	// proxy checks a statement pipelined behind unanswered ones under each
	// path a failure among them may leave.
	FunctionPath []string
	// TempSchema is the session's pg_temp_N schema once it has temp tables.
	TempSchema string
	// ParamTypes are the types the client declared for $1, $2, … (the
	// extended protocol's Parse): "" when it left one to PostgreSQL, a
	// type name ("int8", "text[]") or "?" for a type mandate does not know.
	ParamTypes []string
}

// relationPath is PostgreSQL's effective search path for relations: the temp
// schema first and pg_catalog next unless the path lists them.
func (s Session) relationPath() []string { return s.path(s.SearchPath, true) }

// functionPath is the path for functions, operators and types: never
// pg_temp.
func (s Session) functionPath() []string {
	if s.FunctionPath != nil {
		return s.path(s.FunctionPath, false)
	}
	return s.path(s.SearchPath, false)
}

func (s Session) path(listed []string, withTemp bool) []string {
	if listed == nil {
		listed = []string{"$user", "public"}
	}
	var out []string
	hasTemp, hasCatalog := false, false
	for _, n := range listed {
		switch n {
		case "pg_temp":
			hasTemp = true
		case "pg_catalog":
			hasCatalog = true
		}
	}
	if withTemp && !hasTemp && s.TempSchema != "" {
		out = append(out, s.TempSchema)
	}
	if !hasCatalog {
		out = append(out, "pg_catalog")
	}
	for _, n := range listed {
		switch n {
		case "$user":
			if s.User != "" {
				out = append(out, s.User)
			}
		case "pg_temp":
			if withTemp && s.TempSchema != "" {
				out = append(out, s.TempSchema)
			}
		default:
			out = append(out, n)
		}
	}
	return out
}

// lookupRelation resolves a possibly qualified relation name like
// PostgreSQL's RangeVarGetRelid. It returns nil when nothing matches.
func (c *Catalog) lookupRelation(sess Session, schema, name string) *Table {
	if schema != "" {
		if schema == "pg_temp" {
			if sess.TempSchema == "" {
				return nil
			}
			schema = sess.TempSchema
		}
		if s := c.Schemas[schema]; s != nil {
			return s.Tables[name]
		}
		return nil
	}
	for _, sn := range sess.relationPath() {
		if s := c.Schemas[sn]; s != nil {
			if t := s.Tables[name]; t != nil {
				return t
			}
		}
	}
	return nil
}

// lookupFunction resolves a function name to the overloads of the first
// schema on the path that has any (argument types are not resolved; callers
// treat the overloads conservatively). Unknown names resolve to pg_catalog
// with no overloads.
// otherFunctionSchemas are the schemas on the path after resolved with a
// function called name that a call with n arguments of types args ("" when
// unknown) may resolve to: PostgreSQL chooses among every schema's
// candidates (FuncnameGetCandidates), so an exact match further on wins
// over a built-in that needs a cast (public.upper(bigint) over
// pg_catalog.upper(text) for upper(id); red team round 34). A call that
// names its arguments is matched by count alone (see visibleFunctions).
func (c *Catalog) otherFunctionSchemas(sess Session, resolved, name string, n int, named bool, args []string) []string {
	var out []string
	for _, f := range c.visibleFunctions(sess, "", name, n, named) {
		if f.Schema != resolved && !slices.Contains(out, f.Schema) && (named || c.mayTake(f, args)) {
			out = append(out, f.Schema)
		}
	}
	return out
}

func (c *Catalog) lookupFunction(sess Session, schema, name string) (string, []*Function) {
	if schema != "" {
		if s := c.Schemas[schema]; s != nil {
			return schema, s.Functions[name]
		}
		return schema, nil
	}
	for _, sn := range sess.functionPath() {
		if s := c.Schemas[sn]; s != nil {
			if fs := s.Functions[name]; len(fs) > 0 {
				return sn, fs
			}
		}
	}
	return "pg_catalog", nil
}

// operatorSchemas returns the schemas of the operators PostgreSQL may run
// for an operator written name (OPERATOR(schema.name) when schema is set)
// with operand types exact and known (see operatorCandidates), in path
// order. An empty result means no operator of that name may take them.
func (c *Catalog) operatorSchemas(sess Session, schema, name string, prefix bool, exact, known [2]string) []string {
	match, cands := c.operatorCandidates(sess, schema, name, prefix, exact, known)
	if match != nil {
		return []string{match.Schema}
	}
	var out []string
	for _, op := range cands {
		if !slices.Contains(out, op.Schema) {
			out = append(out, op.Schema)
		}
	}
	return out
}

// hasOperator reports whether an operator name takes exactly these types.
func (c *Catalog) hasOperator(name, left, right string) bool {
	return len(c.ops[opKey{name, left, right}]) > 0
}

// operatorLeakproof reports whether the operator that PostgreSQL would pick
// for (left name right) is leakproof. Unknown operand types or a missing
// operator mean false: the caller then fences.

func (c *Catalog) operatorLeakproof(schema, name, left, right string) bool {
	if left == "" || right == "" {
		return false
	}
	ops := c.ops[opKey{name, left, right}]
	if len(ops) == 0 {
		// varchar has no operators of its own: PostgreSQL runs text's.
		ops = c.ops[opKey{name, textual(left), textual(right)}]
	}
	if len(ops) == 0 {
		return false
	}
	for _, op := range ops {
		if schema != "" && op.Schema != schema {
			continue
		}
		if op.Schema != "pg_catalog" || !op.Leakproof {
			return false
		}
	}
	return true
}

// mayBeRowType reports whether values of type t (named as Operator's
// types are) may be rows: record, a relation's row type in pg_catalog, or
// any other schema's type, which the catalog does not describe.
func (c *Catalog) mayBeRowType(t string) bool {
	return t == "record" || strings.Contains(t, ".") || c.lookupRelation(Session{}, "pg_catalog", t) != nil
}

// hasOutParameters reports whether a function of this name in any schema
// has OUT parameters, or whether the catalog does not say (no function of
// the name lists its arguments).
func (c *Catalog) hasOutParameters(name string) bool {
	listed := false
	for _, s := range c.Schemas {
		for _, f := range s.Functions[name] {
			if f.Out || f.Args == nil {
				return true
			}
			listed = true
		}
	}
	return !listed
}

// hasBuiltinType reports whether pg_catalog may have a type of this
// pg_type name.
func (c *Catalog) hasBuiltinType(name string) bool {
	return c.BuiltinTypes == nil || c.BuiltinTypes[name]
}

// textual is t, or text for varchar, which is binary-coercible to text and
// has no operators or functions of its own in pg_catalog.
func textual(t string) string {
	if t == "varchar" {
		return "text"
	}
	return t
}

// typeCategory groups base types the way masks need them.
type typeCategory int

const (
	catOther typeCategory = iota
	catText
	catInteger
	catNumeric
	catDate
	catTimestamp
	catUUID
)

func (col *Column) category() typeCategory {
	if col.array {
		return catOther
	}
	switch col.base {
	case "text", "varchar", "bpchar", "name", "citext", "public.citext":
		return catText
	case "int2", "int4", "int8":
		return catInteger
	case "numeric", "float4", "float8":
		return catNumeric
	case "date":
		return catDate
	case "timestamp", "timestamptz":
		return catTimestamp
	case "uuid":
		return catUUID
	}
	return catOther
}

// isSystemSchema reports schemas whose relations are never protected by
// default: the catalogs and the session's own temp schema.
func isSystemSchema(s string) bool {
	return s == "pg_catalog" || s == "information_schema" || s == "pg_toast" ||
		strings.HasPrefix(s, "pg_temp_") || strings.HasPrefix(s, "pg_toast_temp_")
}
