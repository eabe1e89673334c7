SELECT "Customer", o."Order Id" FROM "Sales"."Orders" o
