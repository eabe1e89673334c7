package rewrite

import "strings"

// DefaultFunctions is the allow-list of functions a statement may call:
// pg_catalog built-ins by bare name, anything else as "schema.name". It covers
// ordinary SQL (string, numeric, date/time, JSON, aggregates, window functions,
// set-returning helpers) and what psql and drivers use for introspection.
// Anything missing is refused with 42501; extend it with Options.Functions.
// A function that can read a relation by name or text, touch files, large
// objects or server state never belongs here.
func DefaultFunctions() map[string]bool {
	m := make(map[string]bool, len(defaultFunctionNames))
	for _, n := range defaultFunctionNames {
		m[n] = true
	}
	return m
}

var defaultFunctionNames = []string{
	// strings
	"ascii", "bit_length", "btrim", "char_length", "character_length", "chr", "concat", "concat_ws",
	"convert_from", "convert_to", "decode", "encode", "format", "initcap", "left", "length", "lower",
	"lpad", "ltrim", "md5", "normalize", "is_normalized", "octet_length", "overlay", "position",
	"quote_ident", "quote_literal", "quote_nullable", "regexp_count", "regexp_instr", "regexp_like",
	"regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array",
	"regexp_split_to_table", "regexp_substr", "repeat", "replace", "reverse", "right", "rpad", "rtrim",
	"split_part", "starts_with", "string_to_array", "string_to_table", "strpos", "substr", "substring",
	"to_ascii", "to_hex", "translate", "trim", "unistr", "upper", "like_escape", "similar_to_escape",
	"similar_escape", "sha224", "sha256", "sha384", "sha512", "to_char", "to_number", "to_date",
	"to_timestamp", "text", "textlen",
	// numbers
	"abs", "cbrt", "ceil", "ceiling", "degrees", "div", "exp", "factorial", "floor", "gcd", "lcm",
	"ln", "log", "log10", "min_scale", "mod", "pi", "power", "radians", "random", "random_normal",
	"round", "scale", "sign", "sqrt", "trim_scale", "trunc", "width_bucket", "setseed", "acos",
	"asin", "atan", "atan2", "cos", "cot", "sin", "tan", "numeric", "int4", "int8", "float8",
	// date/time
	"age", "clock_timestamp", "current_date", "date_bin", "date_part", "date_trunc", "extract",
	"isfinite", "justify_days", "justify_hours", "justify_interval", "localtime", "localtimestamp",
	"make_date", "make_interval", "make_time", "make_timestamp", "make_timestamptz", "now",
	"statement_timestamp", "timeofday", "transaction_timestamp", "timezone", "overlaps",
	// uuid, misc
	"gen_random_uuid", "coalesce", "nullif", "greatest", "least", "num_nulls", "num_nonnulls",
	// arrays
	"array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
	"array_ndims", "array_position", "array_positions", "array_prepend", "array_remove",
	"array_replace", "array_to_string", "array_upper", "cardinality", "unnest", "generate_series",
	"generate_subscripts", "trim_array", "array_sample", "array_shuffle",
	// json
	"to_json", "to_jsonb", "array_to_json", "row_to_json", "json_build_array", "jsonb_build_array",
	"json_build_object", "jsonb_build_object", "json_object", "jsonb_object", "json_array_length",
	"jsonb_array_length", "json_each", "jsonb_each", "json_each_text", "jsonb_each_text",
	"json_extract_path", "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
	"json_object_keys", "jsonb_object_keys", "json_array_elements", "jsonb_array_elements",
	"json_array_elements_text", "jsonb_array_elements_text", "json_typeof", "jsonb_typeof",
	"json_strip_nulls", "jsonb_strip_nulls", "jsonb_set", "jsonb_insert", "jsonb_pretty",
	"jsonb_path_exists", "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array",
	"jsonb_path_query_first", "json_populate_record", "jsonb_populate_record", "json_to_record",
	"jsonb_to_record", "json_to_recordset", "jsonb_to_recordset",
	// aggregates
	"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
	"bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
	"stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
	"covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2",
	"regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "mode", "percentile_cont",
	"percentile_disc", "any_value", "range_agg", "range_intersect_agg",
	// window
	"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
	"first_value", "last_value", "nth_value",
	// session and server information (psql, drivers, ORMs)
	"version", "current_database", "current_catalog", "current_schema", "current_schemas",
	"current_user", "session_user", "current_role", "user", "current_setting", "pg_backend_pid",
	"inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port",
	"pg_postmaster_start_time", "pg_conf_load_time", "pg_is_in_recovery", "pg_is_wal_replay_paused",
	// (Not txid_current and pg_current_xact_id: the transaction counter
	// moves with every other session's writes, protected tables' included,
	// as a sequence's value does; add them with --allow-functions.)
	"pg_encoding_to_char", "pg_char_to_encoding", "pg_client_encoding", "pg_jit_available",
	"pg_typeof", "pg_collation_for", "pg_get_keywords",
	// NOTIFY as a function; the channel must be a constant outside mandate's
	// own (checkFunction).
	"pg_notify",
	// JDBC DatabaseMetaData.getPrimaryKeys/getIndexInfo expand index key arrays.
	"information_schema._pg_expandarray",
	// catalog introspection (psql \d and friends): metadata, not row data
	"format_type", "pg_get_userbyid", "pg_table_is_visible", "pg_type_is_visible",
	"pg_function_is_visible", "pg_operator_is_visible", "pg_opclass_is_visible",
	"pg_opfamily_is_visible", "pg_collation_is_visible", "pg_conversion_is_visible",
	"pg_statistics_obj_is_visible", "pg_ts_config_is_visible", "pg_ts_dict_is_visible",
	"pg_ts_parser_is_visible", "pg_ts_template_is_visible", "pg_get_expr", "pg_get_indexdef",
	"pg_get_constraintdef", "pg_get_triggerdef", "pg_get_ruledef", "pg_get_viewdef",
	"pg_get_functiondef", "pg_get_function_arguments", "pg_get_function_identity_arguments",
	"pg_get_function_result", "pg_get_partkeydef", "pg_get_partition_constraintdef",
	"pg_get_serial_sequence", "pg_get_statisticsobjdef", "pg_get_statisticsobjdef_columns",
	"pg_get_statisticsobjdef_expressions", "pg_get_publication_tables", "pg_relation_is_publishable",
	"pg_tablespace_location", "pg_get_replica_identity_index", "obj_description", "col_description",
	"shobj_description", "pg_describe_object", "pg_identify_object", "pg_has_role",
	"has_table_privilege", "has_column_privilege", "has_any_column_privilege",
	"has_schema_privilege", "has_database_privilege", "has_function_privilege",
	"has_sequence_privilege", "has_type_privilege", "has_language_privilege",
	"has_tablespace_privilege", "has_foreign_data_wrapper_privilege", "has_server_privilege",
	"has_parameter_privilege", "pg_options_to_table", "pg_partition_tree", "pg_partition_root",
	"pg_partition_ancestors", "array_in", "regclass", "to_regclass", "to_regtype", "to_regproc",
	"to_regprocedure", "to_regnamespace", "to_regrole", "to_regoper", "to_regtypemod",
	"pg_get_constraintdef", "pg_index_column_has_property", "pg_index_has_property",
	"pg_indexam_has_property", "pg_size_pretty", "pg_size_bytes", "pg_column_is_updatable",
	"pg_relation_is_updatable", "pg_get_triggerdef", "aclexplode", "acldefault", "makeaclitem",
	"pg_sequence_parameters", "pg_get_userbyid", "pg_char_to_encoding", "pg_settings_get_flags",
	"pg_get_function_sqlbody", "pg_my_temp_schema", // psql \df+; the session's own schema
}

// deniedFunctions gives the reason a well-known dangerous function is
// refused, so the error is actionable rather than "not on the allow-list".
// The allow-list alone already refuses them; this only shapes the message
// and refuses them even if an operator adds them by mistake.
func deniedFunction(name string) (reason string, denied bool) {
	switch {
	case strings.HasSuffix(name, "_to_xml") || strings.HasSuffix(name, "_to_xmlschema") ||
		strings.HasSuffix(name, "_to_xml_and_xmlschema") || name == "ts_stat" || name == "ts_rewrite":
		return "it runs SQL given as text, which cannot be filtered", true
	case strings.HasPrefix(name, "dblink"):
		return "it runs SQL on another connection, which cannot be filtered", true
	case strings.HasPrefix(name, "lo_") || name == "loread" || name == "lowrite":
		return "large objects are not filtered", true
	case strings.HasPrefix(name, "pg_read_") || strings.HasPrefix(name, "pg_ls_") ||
		name == "pg_stat_file" || strings.HasPrefix(name, "pg_file_"):
		return "it reads server files", true
	case strings.HasPrefix(name, "pg_stat_") || strings.HasPrefix(name, "pg_statio_") ||
		name == "pg_mcv_list_items":
		return "statistics reveal rows the caller may not see", true
	case name == "pg_prepared_statement" || name == "pg_cursor":
		return "it shows statements as rewritten, with the injected filters and masks", true
	case name == "pg_lock_status" || name == "pg_blocking_pids" || name == "pg_safe_snapshot_blocking_pids":
		return "it reveals other sessions and the relations they use", true
	case name == "pg_terminate_backend" || name == "pg_cancel_backend" || name == "pg_reload_conf":
		return "it acts on the server", true
	case name == "pg_sequence_last_value" || name == "pg_get_sequence_data":
		// (currval and lastval return what this session's own nextval got.)
		return sequenceValues, true
	}
	return "", false
}

// sequenceValues is why a sequence's current value is not shown through the
// catalog: the policy store's sequences (mandate.consent_history_seq_seq)
// count other users' consent and delegation changes.
const sequenceValues = "sequence values reveal activity of other users, the policy store's own sequences included"

// deniedRelation gives the reason a catalog side door is refused. Ordinary
// catalogs (pg_class, pg_attribute, …) stay readable for introspection.
func deniedRelation(schema, name string) (reason string, denied bool) {
	switch {
	case schema == mandateSchema:
		return "relations in schema mandate are internal to the proxy", true
	case name == "pg_stat_statements" || name == "pg_stat_statements_info":
		return "it shows other sessions' statements", true
	case schema != "pg_catalog":
		return "", false
	case name == "pg_statistic" || name == "pg_statistic_ext_data" || name == "pg_stats" ||
		name == "pg_stats_ext" || name == "pg_stats_ext_exprs":
		return "planner statistics reveal values of rows the caller may not see", true
	case strings.HasPrefix(name, "pg_stat_") || strings.HasPrefix(name, "pg_statio_"):
		return "activity statistics reveal other sessions and row counts", true
	case name == "pg_prepared_statements" || name == "pg_cursors":
		return "it shows statements as rewritten, with the injected filters and masks", true
	case name == "pg_locks":
		return "it reveals other sessions and the relations they use", true
	case name == "pg_prepared_xacts":
		return "it shows other sessions' prepared transactions", true
	case name == "pg_sequences":
		return sequenceValues, true
	case name == "pg_largeobject" || name == "pg_largeobject_metadata":
		return "large objects are not filtered", true
	case name == "pg_authid" || name == "pg_shadow" || name == "pg_user_mapping" ||
		name == "pg_user_mappings" || name == "pg_hba_file_rules" || name == "pg_ident_file_mappings" ||
		name == "pg_file_settings":
		return "it exposes server credentials or configuration", true
	}
	return "", false
}

// statisticsColumns are the planner statistics pg_class keeps per relation,
// which tell how many rows and pages a protected table has (reltuples of a
// table or of its indexes is its row count), with the values they have
// before a relation is first vacuumed or analyzed. The rest of pg_class is
// what introspection (psql \d, drivers' metadata queries) needs, so pg_class
// is read through a derived table that returns these values instead
// (hideStatistics) rather than refused. relallfrozen is PostgreSQL 18's.
var statisticsColumns = map[string]int64{"relpages": 0, "reltuples": -1, "relallvisible": 0, "relallfrozen": 0}

// hidesStatistics reports whether reads of t go through hideStatistics.
func hidesStatistics(t *Table) bool { return t.Schema == "pg_catalog" && t.Name == "pg_class" }

// mandateSchema holds the mask helper functions and keys. Only injected SQL
// may call into it.
const mandateSchema = "mandate"
