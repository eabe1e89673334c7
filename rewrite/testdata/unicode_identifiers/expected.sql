SELECT "Customer" FROM (SELECT _m1."Order Id", _m1."Customer", _m1.amount FROM "Sales"."Orders" _m1 WHERE _m1."Customer" OPERATOR(pg_catalog.=) E'O''Brien \\ $$x$$') "Orders"
