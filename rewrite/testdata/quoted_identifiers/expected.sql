SELECT "Customer", o."Order Id" FROM "Sales"."Orders" o WHERE o."Customer" OPERATOR(pg_catalog.=) E'O''Brien \\ $$x$$'
