SELECT "Orders"."Order Id", "Orders"."Customer", "Orders".amount FROM "Sales"."Orders" WHERE "Orders"."Customer" OPERATOR(pg_catalog.=) E'O''Brien \\ $$x$$'
