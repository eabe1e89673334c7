SELECT count(*) FROM "Sales"."Orders"
