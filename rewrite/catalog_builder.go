package rewrite

import (
	"fmt"
	"strings"
)

// CatalogBuilder assembles a Catalog by hand, for tests and tools. It starts
// with the part of PostgreSQL 15's pg_catalog the rewriter consults: common
// system relations, the built-in functions of DefaultFunctions with their
// kinds, and the comparison and arithmetic operators of common types with
// their real proleakproof flags (int4eq and texteq are leakproof, numeric_eq
// and int4pl are not). The proxy builds its Catalog from the live upstream
// instead.
type CatalogBuilder struct {
	schemas map[string]*Schema
	order   []string
	ops     []*Operator
	casts   []*Cast
	err     error
}

// NewCatalogBuilder returns a builder holding the system catalog subset.
func NewCatalogBuilder() *CatalogBuilder {
	b := &CatalogBuilder{schemas: map[string]*Schema{}}
	for _, name := range systemRelations {
		b.add(&Table{Schema: "pg_catalog", Name: name, Kind: KindView})
	}
	// pg_class is read through a derived table that lists its columns.
	b.relation(KindTable, "pg_catalog.pg_class", nil, pgClassColumns)
	for _, name := range []string{"tables", "columns", "schemata", "views", "routines", "table_constraints", "key_column_usage"} {
		b.add(&Table{Schema: "information_schema", Name: name, Kind: KindView})
	}
	for _, name := range defaultFunctionNames {
		f := &Function{Schema: "pg_catalog", Name: name, NArgs: -1, Volatility: Immutable, Kind: KindFunction}
		switch {
		case builtinLeakproof[name]:
			f.Leakproof = true
		case builtinVolatile[name]:
			f.Volatility = Volatile
		case builtinStable[name]:
			f.Volatility = Stable
		}
		if knownAggregates[name] {
			f.Kind = KindAggregate
		}
		b.function(f)
	}
	for _, line := range strings.Split(strings.TrimSpace(builtinOperators), "\n") {
		var name, left, right, leak string
		if _, err := fmt.Sscan(line, &name, &left, &right, &leak); err != nil {
			b.err = err
			continue
		}
		if left == "-" {
			left = ""
		}
		b.ops = append(b.ops, &Operator{Schema: "pg_catalog", Name: name, Left: left, Right: right, Leakproof: leak == "t"})
	}
	return b
}

// Table adds a table "schema.name" with columns written "name type", e.g.
// "id integer", `"Full Name" character varying(40)`.
func (b *CatalogBuilder) Table(name string, columns ...string) *CatalogBuilder {
	return b.relation(KindTable, name, nil, columns)
}

// View adds a view over the schema-qualified base relations.
func (b *CatalogBuilder) View(name string, bases []string, columns ...string) *CatalogBuilder {
	return b.relation(KindView, name, bases, columns)
}

// Relation adds a prepared Table.
func (b *CatalogBuilder) Relation(t *Table) *CatalogBuilder {
	b.add(t)
	return b
}

// Function adds a function overload.
func (b *CatalogBuilder) Function(f *Function) *CatalogBuilder {
	b.function(f)
	return b
}

// Operator adds an operator.
func (b *CatalogBuilder) Operator(op *Operator) *CatalogBuilder {
	b.ops = append(b.ops, op)
	return b
}

// Build validates and returns the catalog.
func (b *CatalogBuilder) Build() (*Catalog, error) {
	if b.err != nil {
		return nil, b.err
	}
	schemas := make([]*Schema, 0, len(b.order))
	for _, n := range b.order {
		schemas = append(schemas, b.schemas[n])
	}
	c, err := NewCatalog(schemas, b.ops)
	if c != nil {
		c.Casts = b.casts
	}
	return c, err
}

// Cast adds a cast whose function lies outside pg_catalog.
func (b *CatalogBuilder) Cast(c *Cast) *CatalogBuilder {
	b.casts = append(b.casts, c)
	return b
}

func (b *CatalogBuilder) relation(kind RelKind, name string, bases []string, columns []string) *CatalogBuilder {
	schema, rel, ok := strings.Cut(name, ".")
	if !ok {
		b.err = fmt.Errorf("catalog builder: %q is not schema-qualified", name)
		return b
	}
	t := &Table{Schema: schema, Name: rel, Kind: kind, BaseTables: bases}
	for _, c := range columns {
		col, err := parseColumnSpec(c)
		if err != nil {
			b.err = err
			return b
		}
		t.Columns = append(t.Columns, col)
	}
	b.add(t)
	return b
}

func parseColumnSpec(spec string) (*Column, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, `"`) {
		end := strings.Index(spec[1:], `"`)
		if end < 0 {
			return nil, fmt.Errorf("catalog builder: bad column %q", spec)
		}
		return &Column{Name: spec[1 : end+1], Type: strings.TrimSpace(spec[end+2:])}, nil
	}
	name, typ, ok := strings.Cut(spec, " ")
	if !ok {
		return nil, fmt.Errorf("catalog builder: column %q has no type", spec)
	}
	// "id integer PRIMARY KEY": a primary key column.
	typ, pk := strings.CutSuffix(typ, " PRIMARY KEY")
	// "email text COLLATE ci": a column with a non-default collation.
	typ, _, collated := strings.Cut(typ, " COLLATE ")
	return &Column{Name: name, Type: strings.TrimSpace(typ), Collated: collated, PrimaryKey: pk}, nil
}

func (b *CatalogBuilder) schema(name string) *Schema {
	s := b.schemas[name]
	if s == nil {
		s = &Schema{Name: name, Tables: map[string]*Table{}, Functions: map[string][]*Function{}}
		b.schemas[name] = s
		b.order = append(b.order, name)
	}
	return s
}

func (b *CatalogBuilder) add(t *Table) {
	b.schema(t.Schema).Tables[t.Name] = t
}

func (b *CatalogBuilder) function(f *Function) {
	s := b.schema(f.Schema)
	s.Functions[f.Name] = append(s.Functions[f.Name], f)
}

var systemRelations = []string{
	"pg_class", "pg_namespace", "pg_attribute", "pg_type", "pg_index", "pg_constraint",
	"pg_description", "pg_am", "pg_roles", "pg_database", "pg_proc", "pg_settings", "pg_inherits",
	"pg_trigger", "pg_policy", "pg_publication", "pg_publication_rel", "pg_publication_namespace",
	"pg_attrdef", "pg_collation", "pg_tablespace", "pg_foreign_table", "pg_foreign_server",
	"pg_statistic_ext", "pg_partitioned_table", "pg_rewrite", "pg_depend", "pg_sequence",
	"pg_views", "pg_tables", "pg_matviews", "pg_indexes", "pg_user", "pg_auth_members",
	"pg_extension", "pg_enum", "pg_operator", "pg_opclass", "pg_language", "pg_cursors",
	"pg_prepared_statements", "pg_locks", "pg_timezone_names", "pg_available_extensions",
	"pg_event_trigger", "pg_seclabel", "pg_shdescription",
	// side doors, present so that they resolve and are refused by name
	"pg_statistic", "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic_ext_data",
	"pg_stat_activity", "pg_stat_user_tables", "pg_stat_all_tables", "pg_statio_user_tables",
	"pg_largeobject", "pg_largeobject_metadata", "pg_authid", "pg_shadow", "pg_file_settings",
	"pg_hba_file_rules", "pg_user_mappings", "pg_sequences",
}

// pgClassColumns are PostgreSQL 15's pg_class columns.
var pgClassColumns = []string{
	"oid oid", "relname name", "relnamespace oid", "reltype oid", "reloftype oid", "relowner oid",
	"relam oid", "relfilenode oid", "reltablespace oid", "relpages integer", "reltuples real",
	"relallvisible integer", "reltoastrelid oid", "relhasindex boolean", "relisshared boolean",
	`relpersistence "char"`, `relkind "char"`, "relnatts smallint", "relchecks smallint",
	"relhasrules boolean", "relhastriggers boolean", "relhassubclass boolean",
	"relrowsecurity boolean", "relforcerowsecurity boolean", "relispopulated boolean",
	`relreplident "char"`, "relispartition boolean", "relrewrite oid", "relfrozenxid xid",
	"relminmxid xid", "relacl aclitem[]", "reloptions text[]", "relpartbound pg_node_tree",
}

// builtinLeakproof are the allow-listed built-ins PostgreSQL 15 marks
// proleakproof (conversions and hashes that cannot fail).
var builtinLeakproof = map[string]bool{
	"md5": true, "sha224": true, "sha256": true, "sha384": true, "sha512": true,
	"starts_with": true, "text": true, "gen_random_uuid": true,
}

var builtinVolatile = map[string]bool{
	"random": true, "random_normal": true, "setseed": true, "clock_timestamp": true,
	"timeofday": true, "txid_current": true, "pg_current_xact_id": true,
	"array_shuffle": true, "array_sample": true, "pg_notify": true,
}

// builtinStable are the allow-listed built-ins of which PostgreSQL 15 has a
// stable overload (and no volatile one): they are computed at run time
// even of constants (fold.go).
var builtinStable = map[string]bool{
	"aclexplode": true, "age": true, "array_in": true, "array_to_json": true, "array_to_string": true,
	"col_description": true, "concat": true, "concat_ws": true, "convert_from": true, "convert_to": true, "current_database": true, "current_schema": true, "current_schemas": true, "current_setting": true, "current_user": true, "date_part": true, "date_trunc": true, "extract": true, "format": true,
	"format_type": true, "generate_series": true, "has_any_column_privilege": true,
	"has_column_privilege": true, "has_database_privilege": true, "has_foreign_data_wrapper_privilege": true, "has_function_privilege": true, "has_language_privilege": true, "has_parameter_privilege": true, "has_schema_privilege": true, "has_sequence_privilege": true, "has_server_privilege": true,
	"has_table_privilege": true, "has_tablespace_privilege": true, "has_type_privilege": true,
	"inet_client_addr": true, "inet_client_port": true, "inet_server_addr": true, "inet_server_port": true, "json_agg": true, "json_build_array": true, "json_build_object": true, "json_object_agg": true, "json_populate_record": true, "json_to_record": true, "json_to_recordset": true, "jsonb_agg": true, "jsonb_build_array": true, "jsonb_build_object": true, "jsonb_populate_record": true,
	"jsonb_to_record": true, "jsonb_to_recordset": true, "length": true, "make_timestamptz": true,
	"now": true, "numeric": true, "obj_description": true, "overlaps": true, "pg_backend_pid": true,
	"pg_char_to_encoding": true, "pg_client_encoding": true, "pg_collation_for": true,
	"pg_collation_is_visible": true, "pg_column_is_updatable": true, "pg_conf_load_time": true,
	"pg_conversion_is_visible": true, "pg_current_xact_id_if_assigned": true, "pg_describe_object": true, "pg_encoding_to_char": true, "pg_function_is_visible": true, "pg_get_constraintdef": true,
	"pg_get_expr": true, "pg_get_function_arguments": true, "pg_get_function_identity_arguments": true,
	"pg_get_function_result": true, "pg_get_functiondef": true, "pg_get_indexdef": true,
	"pg_get_keywords": true, "pg_get_partition_constraintdef": true, "pg_get_partkeydef": true,
	"pg_get_publication_tables": true, "pg_get_replica_identity_index": true, "pg_get_ruledef": true,
	"pg_get_serial_sequence": true, "pg_get_statisticsobjdef": true, "pg_get_statisticsobjdef_columns": true, "pg_get_statisticsobjdef_expressions": true, "pg_get_triggerdef": true, "pg_get_userbyid": true, "pg_get_viewdef": true, "pg_has_role": true, "pg_identify_object": true,
	"pg_index_column_has_property": true, "pg_index_has_property": true, "pg_indexam_has_property": true, "pg_opclass_is_visible": true, "pg_operator_is_visible": true, "pg_opfamily_is_visible": true,
	"pg_options_to_table": true, "pg_postmaster_start_time": true, "pg_relation_is_publishable": true,
	"pg_relation_is_updatable": true, "pg_sequence_parameters": true, "pg_settings_get_flags": true,
	"pg_statistics_obj_is_visible": true, "pg_table_is_visible": true, "pg_tablespace_location": true,
	"pg_ts_config_is_visible": true, "pg_ts_dict_is_visible": true, "pg_ts_parser_is_visible": true,
	"pg_ts_template_is_visible": true, "pg_type_is_visible": true, "pg_typeof": true, "quote_literal": true, "quote_nullable": true, "regclass": true, "row_to_json": true, "session_user": true,
	"shobj_description": true, "statement_timestamp": true, "timezone": true, "to_char": true,
	"to_date": true, "to_json": true, "to_jsonb": true, "to_number": true, "to_regclass": true,
	"to_regnamespace": true, "to_regoper": true, "to_regproc": true, "to_regprocedure": true,
	"to_regrole": true, "to_regtype": true, "to_timestamp": true, "transaction_timestamp": true,
	"txid_current_if_assigned": true, "version": true,
}

// builtinOperators is "name left right leakproof" from PostgreSQL 15's
// pg_operator ⋈ pg_proc for common types ("-" = no left operand).
const builtinOperators = `
!~ bpchar text f
!~ name text f
!~ text text f
!~* bpchar text f
!~* name text f
!~* text text f
!~~ bpchar text f
!~~ name text f
!~~ text text f
!~~* bpchar text f
!~~* name text f
!~~* text text f
# int2 int2 f
# int4 int4 f
# int8 int8 f
#- jsonb _text f
#> json _text f
#> jsonb _text f
#>> json _text f
#>> jsonb _text f
% int2 int2 f
% int4 int4 f
% int8 int8 f
% numeric numeric f
& int2 int2 f
& int4 int4 f
& int8 int8 f
&& anyarray anyarray f
&& daterange daterange f
&& tstzrange tstzrange f
* float4 float4 f
* float4 float8 f
* float8 float4 f
* float8 float8 f
* float8 interval f
* int2 int2 f
* int2 int4 f
* int2 int8 f
* int4 int2 f
* int4 int4 f
* int4 int8 f
* int8 int2 f
* int8 int4 f
* int8 int8 f
* interval float8 f
* numeric numeric f
+ date int4 f
+ date interval f
+ float4 float4 f
+ float4 float8 f
+ float8 float4 f
+ float8 float8 f
+ int2 int2 f
+ int2 int4 f
+ int2 int8 f
+ int4 date f
+ int4 int2 f
+ int4 int4 f
+ int4 int8 f
+ int8 int2 f
+ int8 int4 f
+ int8 int8 f
+ interval date f
+ interval interval f
+ interval timestamp f
+ interval timestamptz f
+ numeric numeric f
+ timestamp interval f
+ timestamptz interval f
+ - float4 f
+ - float8 f
+ - int2 f
+ - int4 f
+ - int8 f
+ - numeric f
- date date f
- date int4 f
- date interval f
- float4 float4 f
- float4 float8 f
- float8 float4 f
- float8 float8 f
- int2 int2 f
- int2 int4 f
- int2 int8 f
- int4 int2 f
- int4 int4 f
- int4 int8 f
- int8 int2 f
- int8 int4 f
- int8 int8 f
- interval interval f
- jsonb _text f
- jsonb int4 f
- jsonb text f
- numeric numeric f
- timestamp interval f
- timestamp timestamp f
- timestamptz interval f
- timestamptz timestamptz f
- - float4 f
- - float8 f
- - int2 f
- - int4 f
- - int8 f
- - interval f
- - numeric f
-> json int4 f
-> json text f
-> jsonb int4 f
-> jsonb text f
->> json int4 f
->> json text f
->> jsonb int4 f
->> jsonb text f
/ float4 float4 f
/ float4 float8 f
/ float8 float4 f
/ float8 float8 f
/ int2 int2 f
/ int2 int4 f
/ int2 int8 f
/ int4 int2 f
/ int4 int4 f
/ int4 int8 f
/ int8 int2 f
/ int8 int4 f
/ int8 int8 f
/ interval float8 f
/ numeric numeric f
< bool bool t
< bpchar bpchar t
< char char t
< date date t
< date timestamp f
< date timestamptz f
< float4 float4 t
< float4 float8 t
< float8 float4 t
< float8 float8 t
< int2 int2 t
< int2 int4 t
< int2 int8 t
< int4 int2 t
< int4 int4 t
< int4 int8 t
< int8 int2 t
< int8 int4 t
< int8 int8 t
< interval interval t
< jsonb jsonb f
< name name t
< name text t
< numeric numeric f
< oid oid t
< record record f
< text name t
< text text t
< timestamp date f
< timestamp timestamp t
< timestamp timestamptz f
< timestamptz date f
< timestamptz timestamp f
< timestamptz timestamptz t
< uuid uuid t
<< int2 int4 f
<< int4 int4 f
<< int8 int4 f
<= bool bool t
<= bpchar bpchar t
<= char char t
<= date date t
<= date timestamp f
<= date timestamptz f
<= float4 float4 t
<= float4 float8 t
<= float8 float4 t
<= float8 float8 t
<= int2 int2 t
<= int2 int4 t
<= int2 int8 t
<= int4 int2 t
<= int4 int4 t
<= int4 int8 t
<= int8 int2 t
<= int8 int4 t
<= int8 int8 t
<= interval interval t
<= jsonb jsonb f
<= name name t
<= name text t
<= numeric numeric f
<= oid oid t
<= record record f
<= text name t
<= text text t
<= timestamp date f
<= timestamp timestamp t
<= timestamp timestamptz f
<= timestamptz date f
<= timestamptz timestamp f
<= timestamptz timestamptz t
<= uuid uuid t
<> anyarray anyarray f
<> bool bool t
<> bpchar bpchar t
<> bytea bytea t
<> char char t
<> date date t
<> date timestamp f
<> date timestamptz f
<> float4 float4 t
<> float4 float8 t
<> float8 float4 t
<> float8 float8 t
<> inet inet t
<> int2 int2 t
<> int2 int4 t
<> int2 int8 t
<> int4 int2 t
<> int4 int4 t
<> int4 int8 t
<> int8 int2 t
<> int8 int4 t
<> int8 int8 t
<> interval interval t
<> jsonb jsonb f
<> name name t
<> name text t
<> numeric numeric f
<> oid oid t
<> record record f
<> text name t
<> text text t
<> timestamp date f
<> timestamp timestamp t
<> timestamp timestamptz f
<> timestamptz date f
<> timestamptz timestamp f
<> timestamptz timestamptz t
<> uuid uuid t
<@ anyarray anyarray f
<@ jsonb jsonb f
= anyarray anyarray f
= bool bool t
= bpchar bpchar t
= bytea bytea t
= char char t
= date date t
= date timestamp f
= date timestamptz f
= float4 float4 t
= float4 float8 t
= float8 float4 t
= float8 float8 t
= inet inet t
= int2 int2 t
= int2 int4 t
= int2 int8 t
= int4 int2 t
= int4 int4 t
= int4 int8 t
= int8 int2 t
= int8 int4 t
= int8 int8 t
= interval interval t
= jsonb jsonb f
= name name t
= name text t
= numeric numeric f
= oid oid t
= record record f
= text name t
= text text t
= timestamp date f
= timestamp timestamp t
= timestamp timestamptz f
= timestamptz date f
= timestamptz timestamp f
= timestamptz timestamptz t
= uuid uuid t
> bool bool t
> bpchar bpchar t
> char char t
> date date t
> date timestamp f
> date timestamptz f
> float4 float4 t
> float4 float8 t
> float8 float4 t
> float8 float8 t
> int2 int2 t
> int2 int4 t
> int2 int8 t
> int4 int2 t
> int4 int4 t
> int4 int8 t
> int8 int2 t
> int8 int4 t
> int8 int8 t
> interval interval t
> jsonb jsonb f
> name name t
> name text t
> numeric numeric f
> oid oid t
> record record f
> text name t
> text text t
> timestamp date f
> timestamp timestamp t
> timestamp timestamptz f
> timestamptz date f
> timestamptz timestamp f
> timestamptz timestamptz t
> uuid uuid t
>= bool bool t
>= bpchar bpchar t
>= char char t
>= date date t
>= date timestamp f
>= date timestamptz f
>= float4 float4 t
>= float4 float8 t
>= float8 float4 t
>= float8 float8 t
>= int2 int2 t
>= int2 int4 t
>= int2 int8 t
>= int4 int2 t
>= int4 int4 t
>= int4 int8 t
>= int8 int2 t
>= int8 int4 t
>= int8 int8 t
>= interval interval t
>= jsonb jsonb f
>= name name t
>= name text t
>= numeric numeric f
>= oid oid t
>= record record f
>= text name t
>= text text t
>= timestamp date f
>= timestamp timestamp t
>= timestamp timestamptz f
>= timestamptz date f
>= timestamptz timestamp f
>= timestamptz timestamptz t
>= uuid uuid t
>> int2 int4 f
>> int4 int4 f
>> int8 int4 f
? jsonb text f
?& jsonb _text f
?| jsonb _text f
@ - float8 f
@ - int4 f
@ - int8 f
@ - numeric f
@> anyarray anyarray f
@> daterange date f
@> jsonb jsonb f
@> tstzrange timestamptz f
@? jsonb jsonpath f
@@ jsonb jsonpath f
@@ text tsquery f
@@ tsvector tsquery f
^ float8 float8 f
^ numeric numeric f
| int2 int2 f
| int4 int4 f
| int8 int8 f
|/ - float8 f
|| anyarray anyarray f
|| anycompatible anycompatiblearray f
|| anycompatiblearray anycompatible f
|| anynonarray text f
|| jsonb jsonb f
|| text anynonarray f
|| text text f
||/ - float8 f
~ bpchar text f
~ name text f
~ text text f
~ - int2 f
~ - int4 f
~ - int8 f
~* bpchar text f
~* name text f
~* text text f
~<~ text text f
~>=~ text text f
~~ bpchar text f
~~ name text f
~~ text text f
~~* bpchar text f
~~* name text f
~~* text text f
`
