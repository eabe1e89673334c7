SELECT "Customer" FROM "Sales"."Orders" WHERE "Orders"."Customer" OPERATOR(pg_catalog.=) E'O''Brien \\ $$x$$'
