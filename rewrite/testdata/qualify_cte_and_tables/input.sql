WITH countries AS (SELECT code FROM countries), x AS (SELECT * FROM audit_log) SELECT * FROM countries, x, information_schema.tables t WHERE t.table_name = countries.code
