package grant

// Expr is a row predicate over one relation's columns: a small tree that
// policy builds from Cedar residuals and rewrite turns into SQL. Anything
// policy cannot express with these nodes must fail closed (False), never be
// dropped.
type Expr interface{ isExpr() }

// Bool is a constant predicate.
type Bool bool

// True and False are the constant predicates.
const (
	True  Bool = true
	False Bool = false
)

// And is true when every term is true; an empty And is true.
type And struct{ Terms []Expr }

// Or is true when any term is true; an empty Or is false.
type Or struct{ Terms []Expr }

// Not negates X.
type Not struct{ X Expr }

// CmpOp is a comparison operator.
type CmpOp string

// The comparison operators, with their SQL spelling.
const (
	Eq CmpOp = "="
	Ne CmpOp = "<>"
	Lt CmpOp = "<"
	Le CmpOp = "<="
	Gt CmpOp = ">"
	Ge CmpOp = ">="
)

// Compare compares two operands. SQL three-valued logic applies: a comparison
// with NULL is not true, which matches Cedar's error-on-missing (deny).
type Compare struct {
	Op          CmpOp
	Left, Right Operand
}

// In is true when the column's value is one of Values. An empty In is false.
type In struct {
	Column string
	Values []Literal
}

// NotNull is true when the column is not NULL (Cedar's `resource has col`).
type NotNull struct{ Column string }

// Operand is a Column or a Literal.
type Operand interface{ isOperand() }

// Column names a column of the relation the predicate is about.
type Column struct{ Name string }

// Literal is a constant. V is one of: string, int64, bool. Policy renders
// other Cedar types (decimal, datetime) as their canonical string and sets
// Type so the rewriter can cast, e.g. Type "numeric" or "timestamptz".
type Literal struct {
	V    any
	Type string
}

func (Bool) isExpr()    {}
func (And) isExpr()     {}
func (Or) isExpr()      {}
func (Not) isExpr()     {}
func (Compare) isExpr() {}
func (In) isExpr()      {}
func (NotNull) isExpr() {}

func (Column) isOperand()  {}
func (Literal) isOperand() {}

// Columns returns the distinct column names e refers to, in first-seen order.
func Columns(e Expr) []string {
	var out []string
	seen := map[string]bool{}
	add := func(c string) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	var walk func(Expr)
	operand := func(o Operand) {
		if c, ok := o.(Column); ok {
			add(c.Name)
		}
	}
	walk = func(e Expr) {
		switch e := e.(type) {
		case And:
			for _, t := range e.Terms {
				walk(t)
			}
		case Or:
			for _, t := range e.Terms {
				walk(t)
			}
		case Not:
			walk(e.X)
		case Compare:
			operand(e.Left)
			operand(e.Right)
		case In:
			add(e.Column)
		case NotNull:
			add(e.Column)
		}
	}
	walk(e)
	return out
}
