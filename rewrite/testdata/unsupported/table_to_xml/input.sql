SELECT pg_catalog.table_to_xml('accounts', true, true, '')
