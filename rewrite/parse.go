package rewrite

// This is the only file that calls into libpg_query (cgo). Everything else in
// the package works on the generated protobuf node types, so the parser can be
// swapped or upgraded here alone.

import (
	"errors"
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// treeVersion is the PostgreSQL version of the bundled grammar, which the
// deparser checks.
var treeVersion = func() int32 {
	tree, err := pg.Parse("SELECT")
	if err != nil {
		return 0
	}
	return tree.Version
}()

// Statements is a parsed SQL string: one or more statements. It is immutable
// once returned, so a cache may share it between sessions; Rewrite works on
// copies.
type Statements struct {
	sql  string
	tree *pg.ParseResult
}

// Parse parses sql with PostgreSQL's own grammar (libpg_query). A syntax
// error is an *Error with SQLSTATE 42601.
func Parse(sql string) (*Statements, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		// The parser stops at a NUL; the text after it would be forwarded
		// unread. (The protocol's strings cannot hold one anyway.)
		return nil, &Error{Code: CodeSyntax, Msg: "statement text contains a NUL byte"}
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		msg := err.Error()
		var pe *parser.Error
		if errors.As(err, &pe) {
			msg = pe.Message
		}
		return nil, &Error{Code: CodeSyntax, Msg: msg}
	}
	return &Statements{sql: sql, tree: tree}, nil
}

// Len is the number of statements.
func (s *Statements) Len() int { return len(s.tree.GetStmts()) }

// SQL is the text Parse was given.
func (s *Statements) SQL() string { return s.sql }

// text returns the original text of statement i, so statements the rewriter
// leaves alone are forwarded byte for byte (comments and spelling included),
// except for trailing comments.
func (s *Statements) text(i int) string {
	raw := s.tree.Stmts[i]
	start, end := int(raw.StmtLocation), len(s.sql)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	if start < 0 || start > end || end > len(s.sql) {
		return ""
	}
	// Only PostgreSQL's own spaces: it reads U+00A0 and the like as part of
	// a name ("FROM t\u00a0" is not t).
	text := strings.Trim(s.sql[start:end], pgSpace)
	// Statements are joined by "; ": a trailing line comment would swallow
	// the join, and the next statement's later lines would then continue
	// this one, unchecked. Drop trailing comments, as splice does. Whether
	// to scan must not depend on the literals (a template holds for other
	// values), hence "/*" too.
	if strings.Contains(text, "--") || strings.Contains(text, "/*") {
		toks, err := scan(text)
		last := -1
		if err == nil {
			last = lastToken(toks, 0, len(text))
		}
		if last < 0 {
			return text + "\n" // no tokens to cut at: end the comment instead
		}
		text = text[:toks[last].end]
	}
	return text
}

// pgSpace is what PostgreSQL's scanner takes for white space.
const pgSpace = " \t\n\r\f\v"

// stmtRange is the byte range of statement i in the input.
func (s *Statements) stmtRange(i int) (start, end int, ok bool) {
	raw := s.tree.Stmts[i]
	start, end = int(raw.StmtLocation), len(s.sql)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	return start, end, start >= 0 && start <= end && end <= len(s.sql)
}

// token is one lexical token of the input, for splicing (splice.go).
type token struct {
	start, end int
	id         pg.Token
	// keyword: the token is a keyword; colID: one that may also stand as
	// a bare name or alias (unreserved or column-name keyword).
	keyword, colID bool
}

const (
	tokIdent    = pg.Token_IDENT
	tokOnly     = pg.Token_ONLY
	tokDot      = pg.Token_ASCII_46
	tokStar     = pg.Token_ASCII_42
	tokLParen   = pg.Token_ASCII_40
	tokRParen   = pg.Token_ASCII_41
	tokComment  = pg.Token_SQL_COMMENT
	tokCComment = pg.Token_C_COMMENT
	tokFrom     = pg.Token_FROM
	tokJoin     = pg.Token_JOIN
	tokUsing    = pg.Token_USING
	tokComma    = pg.Token_ASCII_44

	// Literal constants, and the Unicode-escape forms whose meaning a
	// later literal can change (U&"..." UESCAPE '!'): see template.go.
	tokIConst  = pg.Token_ICONST
	tokFConst  = pg.Token_FCONST
	tokSConst  = pg.Token_SCONST
	tokBConst  = pg.Token_BCONST
	tokXConst  = pg.Token_XCONST
	tokUIdent  = pg.Token_UIDENT
	tokUSConst = pg.Token_USCONST
	tokUEscape = pg.Token_UESCAPE
)

// scan splits sql into tokens with their byte offsets, comments included.
func scan(sql string) ([]token, error) {
	res, err := pg.Scan(sql)
	if err != nil {
		return nil, err
	}
	out := make([]token, len(res.Tokens))
	for i, t := range res.Tokens {
		out[i] = token{
			start: int(t.Start), end: int(t.End), id: t.Token,
			keyword: t.KeywordKind != pg.KeywordKind_NO_KEYWORD,
			colID:   t.KeywordKind == pg.KeywordKind_UNRESERVED_KEYWORD || t.KeywordKind == pg.KeywordKind_COL_NAME_KEYWORD,
		}
	}
	return out, nil
}

// bareIdents memoizes which simple names are not keywords of the bundled
// grammar: a fact of the parser version, so sharing it keeps Rewrite pure.
// Only catalog schema and table names reach it, which bounds its size.
var bareIdents sync.Map

// quoteIdent writes name as an identifier that reads back as name in any
// position: bare when it is lower-case and no keyword, double-quoted else.
func quoteIdent(name string) string {
	simple := name != "" && len(name) < 64
	for i := 0; i < len(name) && simple; i++ {
		c := name[i]
		simple = c == '_' || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9')
	}
	if simple {
		if bare, ok := bareIdents.Load(name); ok {
			if bare.(bool) {
				return name
			}
		} else {
			res, err := pg.Scan(name)
			bare := err == nil && len(res.Tokens) == 1 && res.Tokens[0].Token == pg.Token_IDENT
			bareIdents.Store(name, bare)
			if bare {
				return name
			}
		}
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// deparse turns one statement back into SQL, and checks that the SQL parses
// back to the same tree: the deparser writes some names and option values
// verbatim (a named argument, a window name, COPY's HEADER 'x'), so a quoted
// name from the client could otherwise end the statement or comment out a
// filter.
func deparse(stmt *pg.Node) (string, error) {
	out, err := deparseUnchecked(stmt)
	if err != nil {
		return "", err
	}
	back, err := pg.Parse(out)
	if err != nil || len(back.Stmts) != 1 || !sameTree(stmt.ProtoReflect(), back.Stmts[0].Stmt.ProtoReflect()) {
		return "", errors.New("deparse: the SQL does not read back as the statement")
	}
	return out, nil
}

// deparseUnchecked is libpg_query's deparser alone (benchmarks compare with it).
func deparseUnchecked(stmt *pg.Node) (string, error) {
	return pg.Deparse(&pg.ParseResult{Version: treeVersion, Stmts: []*pg.RawStmt{{Stmt: stmt}}})
}

// sameTree reports whether two parse trees are equal, locations aside.
func sameTree(a, b protoreflect.Message) bool {
	if a.Descriptor() != b.Descriptor() {
		return false
	}
	if x, ok := a.Interface().(*pgBoolExpr); ok {
		y := b.Interface().(*pgBoolExpr)
		xs, ys := boolArgs(x), boolArgs(y)
		if x.Boolop != y.Boolop || len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if !sameTree(xs[i].ProtoReflect(), ys[i].ProtoReflect()) {
				return false
			}
		}
		return true
	}
	if x, ok := a.Interface().(*pgDefElem); ok {
		y := b.Interface().(*pgDefElem)
		if x.Defname != y.Defname || x.Defnamespace != y.Defnamespace || x.Defaction != y.Defaction {
			return false
		}
		if bx, ok := optionBool(x.Arg); ok {
			by, ok := optionBool(y.Arg)
			return ok && bx == by
		}
		if x.Arg == nil || y.Arg == nil {
			return x.Arg == y.Arg
		}
		return sameTree(x.Arg.ProtoReflect(), y.Arg.ProtoReflect())
	}
	same, fields := true, 0
	a.Range(func(fd protoreflect.FieldDescriptor, va protoreflect.Value) bool {
		if isLocation(fd) {
			return true
		}
		fields++
		same = b.Has(fd) && sameValue(fd, va, b.Get(fd))
		return same
	})
	if !same {
		return false
	}
	b.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !isLocation(fd) {
			fields--
		}
		return true
	})
	return fields == 0
}

// boolArgs are the terms of an AND (OR), nested ones included: the grammar
// reads the deparsed "(a AND b) AND c" as one AND of three.
func boolArgs(e *pgBoolExpr) []*pgNode {
	var out []*pgNode
	for _, n := range e.Args {
		if c := n.GetBoolExpr(); c != nil && c.Boolop == e.Boolop && e.Boolop != pg.BoolExprType_NOT_EXPR {
			out = append(out, boolArgs(c)...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

func sameValue(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	switch {
	case fd.IsList():
		la, lb := a.List(), b.List()
		if la.Len() != lb.Len() {
			return false
		}
		for i := range la.Len() {
			if fd.Kind() == protoreflect.MessageKind {
				if !sameTree(la.Get(i).Message(), lb.Get(i).Message()) {
					return false
				}
			} else if !la.Get(i).Equal(lb.Get(i)) {
				return false
			}
		}
		return true
	case fd.Kind() == protoreflect.MessageKind:
		return sameTree(a.Message(), b.Message())
	}
	return a.Equal(b)
}

// optionBool is an option's value as a boolean, however spelled: the
// deparser writes COPY's HEADER on as HEADER, which reads back as true.
func optionBool(n *pgNode) (value, ok bool) {
	switch {
	case n == nil:
		return true, true
	case n.GetBoolean() != nil:
		return n.GetBoolean().Boolval, true
	case n.GetInteger() != nil:
		i := n.GetInteger().Ival
		return i == 1, i == 0 || i == 1
	case n.GetString_() != nil:
		switch strings.ToLower(n.GetString_().Sval) {
		case "true", "on":
			return true, true
		case "false", "off":
			return false, true
		}
	}
	return false, false
}

// isLocation reports whether fd is a byte offset into the text, which a
// deparse never preserves.
func isLocation(fd protoreflect.FieldDescriptor) bool {
	name := string(fd.Name())
	return name == "location" || name == "stmt_len" || strings.HasSuffix(name, "_location")
}

// parseTypeName parses a type as format_type prints it ("character
// varying(20)", "numeric(12,2)", "public.status[]"). The catalog calls it once
// per column at construction, never per statement.
func parseTypeName(typ string) (*pg.TypeName, error) {
	if strings.ContainsAny(typ, ";'$") || strings.Contains(typ, "--") || strings.Contains(typ, "/*") {
		return nil, errors.New("invalid type name")
	}
	tree, err := pg.Parse("SELECT NULL::" + typ)
	if err != nil {
		return nil, err
	}
	if len(tree.Stmts) != 1 {
		return nil, errors.New("invalid type name")
	}
	sel := tree.Stmts[0].GetStmt().GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || len(sel.FromClause) != 0 || sel.WhereClause != nil {
		return nil, errors.New("invalid type name")
	}
	tc := sel.TargetList[0].GetResTarget().GetVal().GetTypeCast()
	if tc == nil || tc.TypeName == nil || tc.Arg.GetAConst() == nil || !tc.Arg.GetAConst().Isnull {
		return nil, errors.New("invalid type name")
	}
	return tc.TypeName, nil
}

// The node types and constants the rest of the package uses, re-exported
// here so that this file alone names the libpg_query binding: upgrading or
// replacing it touches one file.
type (
	pgAConst                 = pg.A_Const
	pgAConstBoolval          = pg.A_Const_Boolval
	pgAConstBsval            = pg.A_Const_Bsval
	pgAConstFval             = pg.A_Const_Fval
	pgAConstIval             = pg.A_Const_Ival
	pgAConstSval             = pg.A_Const_Sval
	pgAExpr                  = pg.A_Expr
	pgAExprKind              = pg.A_Expr_Kind
	pgAIndirection           = pg.A_Indirection
	pgAStar                  = pg.A_Star
	pgAlias                  = pg.Alias
	pgBoolExpr               = pg.BoolExpr
	pgBoolExprType           = pg.BoolExprType
	pgBoolean                = pg.Boolean
	pgCaseExpr               = pg.CaseExpr
	pgCaseWhen               = pg.CaseWhen
	pgRowExpr                = pg.RowExpr
	pgCollateClause          = pg.CollateClause
	pgColumnRef              = pg.ColumnRef
	pgCommonTableExpr        = pg.CommonTableExpr
	pgCopyStmt               = pg.CopyStmt
	pgDefElem                = pg.DefElem
	pgDeleteStmt             = pg.DeleteStmt
	pgExplainStmt            = pg.ExplainStmt
	pgFloat                  = pg.Float
	pgFuncCall               = pg.FuncCall
	pgInsertStmt             = pg.InsertStmt
	pgInteger                = pg.Integer
	pgLockingClause          = pg.LockingClause
	pgMultiAssignRef         = pg.MultiAssignRef
	pgNode                   = pg.Node
	pgNodeAArrayExpr         = pg.Node_AArrayExpr
	pgAArrayExpr             = pg.A_ArrayExpr
	pgNodeAConst             = pg.Node_AConst
	pgNodeAExpr              = pg.Node_AExpr
	pgNodeAIndices           = pg.Node_AIndices
	pgNodeAIndirection       = pg.Node_AIndirection
	pgNodeAStar              = pg.Node_AStar
	pgNodeBitString          = pg.Node_BitString
	pgNodeBoolExpr           = pg.Node_BoolExpr
	pgNodeBoolean            = pg.Node_Boolean
	pgNodeBooleanTest        = pg.Node_BooleanTest
	pgNodeCallStmt           = pg.Node_CallStmt
	pgNodeCaseExpr           = pg.Node_CaseExpr
	pgNodeCaseWhen           = pg.Node_CaseWhen
	pgNodeClosePortalStmt    = pg.Node_ClosePortalStmt
	pgNodeCoalesceExpr       = pg.Node_CoalesceExpr
	pgNodeCollateClause      = pg.Node_CollateClause
	pgNodeColumnDef          = pg.Node_ColumnDef
	pgNodeColumnRef          = pg.Node_ColumnRef
	pgNodeCopyStmt           = pg.Node_CopyStmt
	pgNodeCreateFunctionStmt = pg.Node_CreateFunctionStmt
	pgNodeCurrentOfExpr      = pg.Node_CurrentOfExpr
	pgNodeDeallocateStmt     = pg.Node_DeallocateStmt
	pgNodeDeclareCursorStmt  = pg.Node_DeclareCursorStmt
	pgNodeDefElem            = pg.Node_DefElem
	pgNodeDeleteStmt         = pg.Node_DeleteStmt
	pgNodeDiscardStmt        = pg.Node_DiscardStmt
	pgNodeDoStmt             = pg.Node_DoStmt
	pgNodeExecuteStmt        = pg.Node_ExecuteStmt
	pgNodeExplainStmt        = pg.Node_ExplainStmt
	pgNodeFetchStmt          = pg.Node_FetchStmt
	pgNodeFloat              = pg.Node_Float
	pgNodeFuncCall           = pg.Node_FuncCall
	pgNodeGroupingFunc       = pg.Node_GroupingFunc
	pgNodeGroupingSet        = pg.Node_GroupingSet
	pgNodeIndexElem          = pg.Node_IndexElem
	pgNodeInsertStmt         = pg.Node_InsertStmt
	pgNodeInteger            = pg.Node_Integer
	pgNodeJoinExpr           = pg.Node_JoinExpr
	pgJoinExpr               = pg.JoinExpr
	pgNodeList               = pg.Node_List
	pgNodeListenStmt         = pg.Node_ListenStmt
	pgNodeMergeStmt          = pg.Node_MergeStmt
	pgNodeMinMaxExpr         = pg.Node_MinMaxExpr
	pgNodeMultiAssignRef     = pg.Node_MultiAssignRef
	pgNodeNamedArgExpr       = pg.Node_NamedArgExpr
	pgNodeNotifyStmt         = pg.Node_NotifyStmt
	pgNodeNullTest           = pg.Node_NullTest
	pgNodeParamRef           = pg.Node_ParamRef
	pgNodePrepareStmt        = pg.Node_PrepareStmt
	pgNodeRangeFunction      = pg.Node_RangeFunction
	pgNodeRangeSubselect     = pg.Node_RangeSubselect
	pgNodeRangeTableSample   = pg.Node_RangeTableSample
	pgNodeRangeVar           = pg.Node_RangeVar
	pgNodeResTarget          = pg.Node_ResTarget
	pgNodeRowExpr            = pg.Node_RowExpr
	pgNodeSelectStmt         = pg.Node_SelectStmt
	pgNodeSetToDefault       = pg.Node_SetToDefault
	pgNodeSortBy             = pg.Node_SortBy
	pgNodeSqlvalueFunction   = pg.Node_SqlvalueFunction
	pgNodeString             = pg.Node_String_
	pgNodeSubLink            = pg.Node_SubLink
	pgNodeTransactionStmt    = pg.Node_TransactionStmt
	pgNodeTypeCast           = pg.Node_TypeCast
	pgNodeTypeName           = pg.Node_TypeName
	pgNodeUnlistenStmt       = pg.Node_UnlistenStmt
	pgNodeUpdateStmt         = pg.Node_UpdateStmt
	pgNodeVariableSetStmt    = pg.Node_VariableSetStmt
	pgNodeVariableShowStmt   = pg.Node_VariableShowStmt
	pgNodeWindowDef          = pg.Node_WindowDef
	pgNodeXmlExpr            = pg.Node_XmlExpr
	pgNodeXmlSerialize       = pg.Node_XmlSerialize
	pgNullTest               = pg.NullTest
	pgParamRef               = pg.ParamRef
	pgRangeFunction          = pg.RangeFunction
	pgRangeSubselect         = pg.RangeSubselect
	pgRangeTableSample       = pg.RangeTableSample
	pgRangeVar               = pg.RangeVar
	pgResTarget              = pg.ResTarget
	pgSelectStmt             = pg.SelectStmt
	pgSortBy                 = pg.SortBy
	pgString                 = pg.String
	pgSQLValueFunctionOp     = pg.SQLValueFunctionOp
	pgSubLink                = pg.SubLink
	pgTypeCast               = pg.TypeCast
	pgTypeName               = pg.TypeName
	pgUpdateStmt             = pg.UpdateStmt
	pgVariableSetStmt        = pg.VariableSetStmt
	pgWindowDef              = pg.WindowDef
	pgWithClause             = pg.WithClause
)

const (
	pgAExprKindAEXPRBETWEEN              = pg.A_Expr_Kind_AEXPR_BETWEEN
	pgAExprKindAEXPRBETWEENSYM           = pg.A_Expr_Kind_AEXPR_BETWEEN_SYM
	pgAExprKindAEXPRDISTINCT             = pg.A_Expr_Kind_AEXPR_DISTINCT
	pgAExprKindAEXPRILIKE                = pg.A_Expr_Kind_AEXPR_ILIKE
	pgAExprKindAEXPRIN                   = pg.A_Expr_Kind_AEXPR_IN
	pgAExprKindAEXPRLIKE                 = pg.A_Expr_Kind_AEXPR_LIKE
	pgAExprKindAEXPRNOTBETWEEN           = pg.A_Expr_Kind_AEXPR_NOT_BETWEEN
	pgAExprKindAEXPRNOTBETWEENSYM        = pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM
	pgAExprKindAEXPRNOTDISTINCT          = pg.A_Expr_Kind_AEXPR_NOT_DISTINCT
	pgAExprKindAEXPRNULLIF               = pg.A_Expr_Kind_AEXPR_NULLIF
	pgAExprKindAEXPROP                   = pg.A_Expr_Kind_AEXPR_OP
	pgAExprKindAEXPROPALL                = pg.A_Expr_Kind_AEXPR_OP_ALL
	pgAExprKindAEXPROPANY                = pg.A_Expr_Kind_AEXPR_OP_ANY
	pgAExprKindAEXPRSIMILAR              = pg.A_Expr_Kind_AEXPR_SIMILAR
	pgBoolExprTypeANDEXPR                = pg.BoolExprType_AND_EXPR
	pgBoolExprTypeNOTEXPR                = pg.BoolExprType_NOT_EXPR
	pgBoolExprTypeOREXPR                 = pg.BoolExprType_OR_EXPR
	pgCTEMaterializeCTEMaterializeAlways = pg.CTEMaterialize_CTEMaterializeAlways
	pgCoercionFormCOERCEEXPLICITCALL     = pg.CoercionForm_COERCE_EXPLICIT_CALL
	pgLimitOptionLIMITOPTIONCOUNT        = pg.LimitOption_LIMIT_OPTION_COUNT
	pgLimitOptionLIMITOPTIONDEFAULT      = pg.LimitOption_LIMIT_OPTION_DEFAULT
	pgNullTestTypeISNOTNULL              = pg.NullTestType_IS_NOT_NULL
	pgOnConflictUpdate                   = pg.OnConflictAction_ONCONFLICT_UPDATE
	pgOverridingUserValue                = pg.OverridingKind_OVERRIDING_USER_VALUE
	pgSubLinkTypeEXPR                    = pg.SubLinkType_EXPR_SUBLINK
	pgSubLinkTypeMULTIEXPR               = pg.SubLinkType_MULTIEXPR_SUBLINK
	pgSubLinkTypeROWCOMPARE              = pg.SubLinkType_ROWCOMPARE_SUBLINK
	pgSubLinkTypeEXISTS                  = pg.SubLinkType_EXISTS_SUBLINK
	pgSubLinkTypeANY                     = pg.SubLinkType_ANY_SUBLINK
	pgSubLinkTypeARRAY                   = pg.SubLinkType_ARRAY_SUBLINK
	pgMinMaxGreatest                     = pg.MinMaxOp_IS_GREATEST
	pgMinMaxLeast                        = pg.MinMaxOp_IS_LEAST
	pgSetOperationSETOPNONE              = pg.SetOperation_SETOP_NONE
	pgJoinLeft                           = pg.JoinType_JOIN_LEFT
	pgJoinRight                          = pg.JoinType_JOIN_RIGHT
	pgJoinFull                           = pg.JoinType_JOIN_FULL
	pgVariableSetKindVARRESET            = pg.VariableSetKind_VAR_RESET
	pgVariableSetKindVARRESETALL         = pg.VariableSetKind_VAR_RESET_ALL
	pgVariableSetKindVARSETDEFAULT       = pg.VariableSetKind_VAR_SET_DEFAULT
	pgTransStmtBegin                     = pg.TransactionStmtKind_TRANS_STMT_BEGIN
	pgTransStmtStart                     = pg.TransactionStmtKind_TRANS_STMT_START
	pgTransStmtCommit                    = pg.TransactionStmtKind_TRANS_STMT_COMMIT
	pgTransStmtRollback                  = pg.TransactionStmtKind_TRANS_STMT_ROLLBACK
	pgTransStmtSavepoint                 = pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT
	pgTransStmtRelease                   = pg.TransactionStmtKind_TRANS_STMT_RELEASE
	pgTransStmtRollbackTo                = pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO
	pgTransStmtPrepare                   = pg.TransactionStmtKind_TRANS_STMT_PREPARE
	pgTransStmtCommitPrepared            = pg.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED
	pgTransStmtRollbackPrepared          = pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED
	pgDiscardTemp                        = pg.DiscardMode_DISCARD_TEMP
)

// SQL value functions, for the column names of CURRENT_DATE and the like
// (columns.go).
const (
	pgSVFCurrentDate       = pg.SQLValueFunctionOp_SVFOP_CURRENT_DATE
	pgSVFCurrentTime       = pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME
	pgSVFCurrentTimeN      = pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N
	pgSVFCurrentTimestamp  = pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP
	pgSVFCurrentTimestampN = pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N
	pgSVFLocaltime         = pg.SQLValueFunctionOp_SVFOP_LOCALTIME
	pgSVFLocaltimeN        = pg.SQLValueFunctionOp_SVFOP_LOCALTIME_N
	pgSVFLocaltimestamp    = pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP
	pgSVFLocaltimestampN   = pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N
	pgSVFCurrentRole       = pg.SQLValueFunctionOp_SVFOP_CURRENT_ROLE
	pgSVFCurrentUser       = pg.SQLValueFunctionOp_SVFOP_CURRENT_USER
	pgSVFUser              = pg.SQLValueFunctionOp_SVFOP_USER
	pgSVFSessionUser       = pg.SQLValueFunctionOp_SVFOP_SESSION_USER
	pgSVFCurrentCatalog    = pg.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG
	pgSVFCurrentSchema     = pg.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA
)

// Node kinds for MandateSetting (setting.go).
const (
	pgVariableSetKindVARSETVALUE = pg.VariableSetKind_VAR_SET_VALUE
	pgDiscardModeDISCARDALL      = pg.DiscardMode_DISCARD_ALL
)

// Fingerprint identifies a statement text's shape with constants left out
// (libpg_query's fingerprint), for audit records: it never carries a value.
func Fingerprint(sql string) string {
	fp, err := pg.Fingerprint(sql)
	if err != nil {
		return ""
	}
	return fp
}

// Split returns each statement of sql as its own text, so that a proxy can
// decide the statements of a multi-statement query one by one.
func Split(sql string) ([]string, error) {
	return pg.SplitWithParser(sql, true)
}
